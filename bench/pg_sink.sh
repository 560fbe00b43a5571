#!/usr/bin/env bash
# Throughput of the `postgres` sink: the quick-start pipeline shape (filter ADT/ORU, validate,
# map to canonical patient events, mask) over N synthetic HL7 messages, written into a
# PostgreSQL table (`write: append`, or `upsert` by `patient.id` with MODE=upsert), with the DLQ
# and audit in files; then the same pipeline with a JSON Lines sink instead, for comparison.
#
#   bench/pg_sink.sh [N] [REPS] [BATCH]   (defaults: 100000 messages, 3 runs, batch_size 256)
#   MODE=upsert bench/pg_sink.sh          (the upsert sink)
#   SLUICE_BIN=target/debug/sluice ...    (another binary, no release build)
#
# PostgreSQL: the throwaway server of scripts/start-postgres (started and stopped here; it runs
# with fsync=off, so commits cost no disk flush: the figures are the sink's own cost, not a
# durable server's). Each run gets an empty table. Reports, per run and as the median: wall
# seconds (process start to exit), records in, rows in the table, records/s. Measures, asserts
# nothing.
set -euo pipefail

N=${1:-100000}
REPS=${2:-3}
BATCH=${3:-256}
MODE=${MODE:-append}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

source "$ROOT/bench/input.sh"
bench_input "$N"

if [[ -z "${SLUICE_BIN:-}" ]]; then
  echo "building sluice (cargo build --release) ..." >&2
  (cd "$ROOT" && cargo build --release --locked --quiet)
fi
SLUICE="${SLUICE_BIN:-$ROOT/target/release/sluice}"

eval "$("$ROOT/scripts/start-postgres" start)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pg-sink.XXXXXX")
trap '"$ROOT/scripts/start-postgres" stop; rm -rf "$TMP"' EXIT
export SLUICE_SINK_URL=$SLUICE_TEST_PG_URL
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
[[ -x "$PSQL" ]] || { echo "psql not found next to the server" >&2; exit 1; }
sql() { PGOPTIONS=--client-min-messages=warning "$PSQL" -X -q -t -A "$SLUICE_TEST_PG_URL" -c "$1"; }

M="$ROOT/mappings/base"
write_pipeline() {  # $1: sink block
  cat >"$TMP/pg.yaml" <<YAML
kind: pipeline
name: pg-sink-bench
sources:
  hl7_files:
    type: files
    format: hl7v2
    path: '$DATA'
    profile: '$M/profiles/default.yaml'
stages:
  adt_and_oru:
    type: filter
    inputs: [hl7_files]
    keep: 'MSH-9.1 == "ADT" or MSH-9.1 == "ORU"'
  validate:
    type: validate
    inputs: [adt_and_oru]
    rules: '$M/rules/patient-event.yaml'
  to_patient_event:
    type: map
    inputs: [validate]
    mapping: '$M/hl7v2-patient-event.yaml'
  mask:
    type: mask
    inputs: [to_patient_event]
    policy: '$M/policies/quickstart.yaml'
sinks:
$1
dlq:
  path: '$TMP/out/dlq.jsonl'
  encryption_key: '\${file:$ROOT/examples/dlq-example.key}'
audit:
  path: '$TMP/out/audit.jsonl'
defaults:
  batch_size: $BATCH
YAML
}

KEY=""
[[ "$MODE" == upsert ]] && KEY="    key: [patient.id]"
PG_SINK="  warehouse:
    type: postgres
    inputs: [mask]
    url: \${SLUICE_SINK_URL}
    write: $MODE
$KEY"
JSONL_SINK="  patient_events:
    type: jsonl
    inputs: [mask]
    path: '$TMP/out/patient-events.jsonl'"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "input: $N messages from \`$SOURCE\`; sink: postgres, write: $MODE, batch_size $BATCH"
echo "sluice: $("$SLUICE" --version); PostgreSQL: $("$PSQL" --version)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| sink | run | wall s | records in | delivered | rows in table | records/s (wall) |"
echo "|---|---|---:|---:|---:|---:|---:|"
for sink in postgres jsonl; do
  if [[ $sink == postgres ]]; then write_pipeline "$PG_SINK"; else write_pipeline "$JSONL_SINK"; fi
  walls=()
  for ((r = 1; r <= REPS; r++)); do
    sql "DROP TABLE IF EXISTS patient_event_v1"
    start=$(date +%s.%N)
    summary=$("$SLUICE" run "$TMP/pg.yaml" --summary json)
    end=$(date +%s.%N)
    wall=$(echo "$end - $start" | bc -l)
    read -r rin deliv < <(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["records_in"], s["delivered"])' "$summary")
    rows=n/a
    [[ $sink == postgres ]] && rows=$(sql "SELECT count(*) FROM patient_event_v1")
    printf '| %s | %d | %.3f | %d | %d | %s | %.0f |\n' "$sink" "$r" "$wall" "$rin" "$deliv" "$rows" "$(echo "$rin / $wall" | bc -l)"
    walls+=("$wall")
  done
  median=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
  printf '| %s | median | %.3f | | | | %.0f |\n' "$sink" "$median" "$(echo "$N / $median" | bc -l)"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
