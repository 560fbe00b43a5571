#!/usr/bin/env bash
# Throughput of the Kafka path, against tansu 0.6.0 (memory storage) on 127.0.0.1:
# - source: N synthetic HL7 messages already in a 3-partition topic, consumed by `sluice run`
#   with a `kafka` source (a new consumer group per run) through the quick-start stages (filter
#   ADT/ORU, validate, map to canonical patient events, mask) into a JSON Lines sink; the wall
#   time is from process start until every record's audit entry is written (the run is then
#   stopped with SIGTERM: a live source does not end by itself);
# - sink: the same messages from a file through the same stages into a `kafka` sink (keyed by
#   `patient.id`, idempotent producer, each batch acknowledged), then into a `jsonl` sink for
#   comparison; the wall time is the run's.
#
#   bench/kafka.sh [N] [REPS] [BATCH]        (defaults: 100000 messages, 3 runs, batch_size 256)
#   SLUICE_BIN=target/debug/sluice ...       (another binary, no release build)
#
# The input is loaded with confluent-kafka (PyPI, into target/venv-kafka-bench), one message
# per record batch (see the user guide on tansu's mid-batch fetches). Measures, asserts nothing.
set -euo pipefail

N=${1:-100000}
REPS=${2:-3}
BATCH=${3:-256}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

source "$ROOT/bench/input.sh"
bench_input "$N"

if [[ -z "${SLUICE_BIN:-}" ]]; then
  echo "building sluice (cargo build --release) ..." >&2
  (cd "$ROOT" && cargo build --release --locked --quiet)
fi
SLUICE="${SLUICE_BIN:-$ROOT/target/release/sluice}"
TANSU=$("$ROOT/scripts/setup-tansu")

VENV="$ROOT/target/venv-kafka-bench"
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c "import confluent_kafka" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "confluent-kafka==2.12.1"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BROKERS="127.0.0.1:$PORT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kafka-bench.XXXXXX")
"$TANSU" broker --listener-url "tcp://$BROKERS" --advertised-listener-url "tcp://$BROKERS" \
  --storage-engine memory://tansu/ >"$TMP/tansu.log" 2>&1 &
TANSU_PID=$!
trap 'kill $TANSU_PID 2>/dev/null; wait $TANSU_PID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"$TANSU" topic create in --partitions 3 --broker "tcp://$BROKERS" >/dev/null
"$TANSU" topic create out --partitions 3 --broker "tcp://$BROKERS" >/dev/null

# The messages of $DATA (one per line, segments split by CR) into topic `in`, keyed by PID-3.1.
"$VENV/bin/python" - "$BROKERS" "$DATA" <<'PY'
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "enable.idempotence": True,
              "batch.num.messages": 1, "linger.ms": 0})
n = 0
for line in open(sys.argv[2], "rb"):
    m = line.rstrip(b"\n")
    if not m.strip():
        continue
    key = b"none"
    for seg in m.split(b"\r"):
        if seg.startswith(b"PID|"):
            f = seg.split(b"|")
            key = f[3].split(b"^")[0] if len(f) > 3 else key
    while True:
        try:
            p.produce("in", m, key)
            break
        except BufferError:
            p.poll(0.05)
    n += 1
p.flush(120)
print(f"loaded {n} messages", file=sys.stderr)
PY

M="$ROOT/mappings/base"
write_pipeline() {  # $1: source block, $2: sink block
  cat >"$TMP/k.yaml" <<YAML
kind: pipeline
name: kafka-bench
sources:
$1
stages:
  adt_and_oru:
    type: filter
    inputs: [hl7_in]
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
$2
dlq:
  path: '$TMP/out/dlq.jsonl'
  encryption_key: '\${file:$ROOT/examples/dlq-example.key}'
audit:
  path: '$TMP/out/audit.jsonl'
defaults:
  batch_size: $BATCH
YAML
}
JSONL="  patient_events:
    type: jsonl
    inputs: [mask]
    path: '$TMP/out/patient-events.jsonl'"
KAFKA_SINK="  bus:
    type: kafka
    inputs: [mask]
    brokers: $BROKERS
    topic: out
    key: patient.id"
FILES="  hl7_in:
    type: files
    format: hl7v2
    path: '$DATA'
    profile: '$M/profiles/default.yaml'"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "input: $N messages from \`$SOURCE\`; batch_size $BATCH; broker: $("$TANSU" --version), memory storage"
echo "sluice: $("$SLUICE" --version)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| path | run | wall s | records in | delivered | records/s (wall) |"
echo "|---|---|---:|---:|---:|---:|"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

walls=()
for ((r = 1; r <= REPS; r++)); do
  rm -rf "$TMP/out"
  write_pipeline "  hl7_in:
    type: kafka
    brokers: $BROKERS
    topics: [in]
    group: bench-$r
    profile: '$M/profiles/default.yaml'" "$JSONL"
  start=$(date +%s.%N)
  "$SLUICE" run "$TMP/k.yaml" --summary json >"$TMP/summary.json" 2>"$TMP/err.log" &
  pid=$!
  # run_started, then one audit entry per record.
  until [[ -f $TMP/out/audit.jsonl && $(wc -l <"$TMP/out/audit.jsonl") -gt $N ]]; do
    kill -0 $pid 2>/dev/null || { cat "$TMP/err.log" >&2; exit 1; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  kill -TERM $pid
  wait $pid
  wall=$(echo "$end - $start" | bc -l)
  read -r rin deliv < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["records_in"], s["delivered"])' "$TMP/summary.json")
  printf '| kafka source -> jsonl | %d | %.3f | %d | %d | %.0f |\n' "$r" "$wall" "$rin" "$deliv" "$(echo "$rin / $wall" | bc -l)"
  walls+=("$wall")
done
m=$(median "${walls[@]}")
printf '| kafka source -> jsonl | median | %.3f | | | %.0f |\n' "$m" "$(echo "$N / $m" | bc -l)"

for sink in kafka jsonl; do
  if [[ $sink == kafka ]]; then write_pipeline "$FILES" "$KAFKA_SINK"; else write_pipeline "$FILES" "$JSONL"; fi
  walls=()
  for ((r = 1; r <= REPS; r++)); do
    rm -rf "$TMP/out"
    start=$(date +%s.%N)
    summary=$("$SLUICE" run "$TMP/k.yaml" --summary json)
    end=$(date +%s.%N)
    wall=$(echo "$end - $start" | bc -l)
    read -r rin deliv < <(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["records_in"], s["delivered"])' "$summary")
    printf '| files -> %s sink | %d | %.3f | %d | %d | %.0f |\n' "$sink" "$r" "$wall" "$rin" "$deliv" "$(echo "$rin / $wall" | bc -l)"
    walls+=("$wall")
  done
  m=$(median "${walls[@]}")
  printf '| files -> %s sink | median | %.3f | | | %.0f |\n' "$sink" "$m" "$(echo "$N / $m" | bc -l)"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
