#!/usr/bin/env bash
# Peak memory of `sluice run` over one X12 file of one interchange as the file grows (issue 6:
# "memory flat from 10 MB to 500 MB inputs"): the base pack's 837P claim mapping cut at 2300
# (one record per claim, masked, to JSON Lines), as in pipelines/x12-claims-per-claim.yaml with
# its claims source only, over `synth.py x12 --claims N --set 837P --seed 1` (100 claims per
# set, all sets in one interchange: the shape that made the source hold the whole file before
# its spill file).
#
#   bench/x12_run_memory.sh [CLAIMS...]      (default: 28000 100000 1400000: 10, 36, 505 MB)
#   SLUICE_BIN=target/debug/sluice bench/x12_run_memory.sh 1000
#   PER_ST=all bench/x12_run_memory.sh 20000 200000   (one transaction set holding every claim)
#
# Inputs go to bench/work/ (gitignored). Peak RSS by `/usr/bin/time -f %M`. Measures, asserts
# nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK="$ROOT/bench/work"
SYNTH="$ROOT/../shared/bench/synth.py"
SIZES=("$@")
# Claims per transaction set (synth.py --per-st); "all": one set holds every claim.
PER_ST=${PER_ST:-100}
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(28000 100000 1400000)
mkdir -p "$WORK"
[[ -f "$SYNTH" ]] || { echo "SKIP: $SYNTH not found (no ../shared checkout)" >&2; exit 0; }
[[ -x /usr/bin/time ]] || { echo "SKIP: /usr/bin/time not found (apt install time)" >&2; exit 0; }

if [[ -z "${SLUICE_BIN:-}" ]]; then
  echo "building sluice (cargo build --release) ..." >&2
  (cd "$ROOT" && cargo build --release --locked -q)
fi
SLUICE="${SLUICE_BIN:-$ROOT/target/release/sluice}"
# Absolute: the runs start in a temporary directory.
SLUICE="$(cd "$(dirname "$SLUICE")" && pwd)/$(basename "$SLUICE")"

RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$RUN/data"
cat > "$RUN/claims.yaml" <<EOF
kind: pipeline
name: x12-run-memory
sources:
  claims:
    type: files
    format: x12
    path: data/*.x12
    guides: [005010X222A1]
    mode: strict
stages:
  to_claims:
    type: map
    inputs: [claims]
    mapping: $ROOT/mappings/base/x12-837p-claim.yaml
  mask_claims:
    type: mask
    inputs: [to_claims]
    policy: $ROOT/mappings/base/policies/x12-claims.yaml
sinks:
  claims_out:
    type: jsonl
    inputs: [mask_claims]
    path: out/claims.jsonl
dlq:
  path: out/dlq.jsonl
  encryption_key: \${file:$ROOT/examples/dlq-example.key}
audit:
  path: out/audit.jsonl
EOF

echo "machine: $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg); binary: $SLUICE; claims per set: $PER_ST"
echo
echo "| claims | MB | records delivered | wall s | peak RSS MB |"
echo "|---:|---:|---:|---:|---:|"
for n in "${SIZES[@]}"; do
  per=$PER_ST
  [[ $per == all ]] && per=$n
  file="$WORK/x12-837P-$n.x12"
  [[ $per == 100 ]] || file="$WORK/x12-837P-$n-per-st-$per.x12"
  [[ -f "$file" ]] || python3 "$SYNTH" x12 --claims "$n" --set 837P --per-st "$per" --seed 1 "$file"
  ln -sf "$file" "$RUN/data/in.x12"
  rm -rf "$RUN/out"
  (cd "$RUN" && /usr/bin/time -f "%e %M" -o "$RUN/time" "$SLUICE" run claims.yaml > "$RUN/log" 2>&1) \
    || { echo "run failed:" >&2; tail -5 "$RUN/log" >&2; exit 1; }
  read -r wall kb < "$RUN/time"
  delivered=$(wc -l < "$RUN/out/claims.jsonl")
  mb=$(awk -v b="$(stat -c %s "$file")" 'BEGIN { printf "%.1f", b / 1e6 }')
  printf '| %s | %s | %s | %s | %.0f |\n' "$n" "$mb" "$delivered" "$wall" "$((kb / 1024))"
done
