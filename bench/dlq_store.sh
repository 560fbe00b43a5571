#!/usr/bin/env bash
# The DLQ in a file or in the state store, on a run with many rejects: the quick-start pipeline
# over the bundled examples repeated (66 records a copy, 6 of them rejected: 9.1%), once with
# `dlq: {path: ...}` and once with `dlq: {store: state}` (SQLite), REPS times each, alternating.
#
#   bench/dlq_store.sh [COPIES] [REPS]   (defaults: 3031 copies = 200,046 messages, 3 runs)
#
# Reports per run and as the median: wall seconds (process start to exit), the runtime's
# records/s from its JSON summary, CPU seconds (user + system), and the DLQ's entries.
# Measures, asserts nothing.
set -euo pipefail

COPIES=${1:-3031}
REPS=${2:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

echo "building sluice (cargo build --release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet)
SLUICE="$ROOT/target/release/sluice"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-dlq-store.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/input" "$TMP/pipelines"
python3 - "$ROOT" "$TMP/input/feed.hl7" "$COPIES" <<'PY'
import sys
root, out, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
one = b""
for f in ["feed-2024-01-15.hl7", "rejects.hl7"]:
    one += open(f"{root}/examples/hl7/{f}", "rb").read() + b"\r\n"
open(out, "wb").write(one * copies)
PY
for kind in file store; do
  sed -e "s#\.\./examples/hl7/\*\.hl7#$TMP/input/*.hl7#" \
      -e "s#\.\./mappings/#$ROOT/mappings/#g" \
      -e "s#\.\./examples/dlq-example.key#$ROOT/examples/dlq-example.key#" \
      -e "s#\.\./out/quickstart/#$TMP/out-$kind/#g" \
      "$ROOT/pipelines/quickstart.yaml" >"$TMP/pipelines/$kind.yaml"
done
sed -i "s#^  path: $TMP/out-store/dlq.jsonl#  store: state#" "$TMP/pipelines/store.yaml"
grep -q "store: state" "$TMP/pipelines/store.yaml"

printf "%-6s %4s %8s %12s %8s %10s\n" dlq run "wall s" "records/s" "CPU s" "dlq entries"
for rep in $(seq 1 "$REPS"); do
  for kind in file store; do
    rm -rf "$TMP/out-$kind"
    start=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$TMP/time" "$SLUICE" run "$TMP/pipelines/$kind.yaml" --summary json --quiet >"$TMP/summary.json"
    end=$(date +%s.%N)
    wall=$(python3 -c "print(f'{$end - $start:.2f}')")
    rps=$(python3 -c "import json; print(round(json.load(open('$TMP/summary.json'))['records_per_second']))")
    cpu=$(awk '{printf "%.2f", $1 + $2}' "$TMP/time")
    entries=$("$SLUICE" dlq list "$TMP/pipelines/$kind.yaml" --output json | python3 -c "import sys, json; print(sum(json.loads(l)['entries'] for l in sys.stdin))")
    printf "%-6s %4s %8s %12s %8s %10s\n" "$kind" "$rep" "$wall" "$rps" "$cpu" "$entries"
    echo "$kind $wall $rps $cpu" >>"$TMP/results"
  done
done
echo
python3 - "$TMP/results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
for kind in ["file", "store"]:
    mine = [r for r in rows if r[0] == kind]
    med = lambda i: statistics.median(float(r[i]) for r in mine)
    print(f"median {kind:5}: wall {med(1):.2f} s, {med(2):.0f} records/s, CPU {med(3):.2f} s")
PY
