#!/usr/bin/env bash
# `sluice check` over many customer packs: N folders (default 100), each with a manifest
# (pack.yaml, extending the base pack), a customer's overlay
# of the base patient-event mapping (a swapped code table and two changed fields), its masking
# policy extending the built-in Safe Harbor policy, and a pipeline using both; checked in one
# run together with the base pack (`mappings/`). Reports the wall time of each of REPS runs and
# the median. Measures, asserts nothing.
#
#   bench/check_packs.sh [N] [REPS]      (defaults: 100 packs, 5 runs)
#   SLUICE_BIN=target/debug/sluice bench/check_packs.sh   (another binary, no release build)
set -euo pipefail
N=${1:-100}
REPS=${2:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ -z "${SLUICE_BIN:-}" ]]; then
  echo "building sluice (cargo build --release) ..." >&2
  (cd "$ROOT" && cargo build --release --locked -q)
fi
SLUICE="${SLUICE_BIN:-$ROOT/target/release/sluice}"

cp -r "$ROOT/mappings" "$ROOT/examples" "$WORK/"
mkdir -p "$WORK/packs"
for i in $(seq 1 "$N"); do
  d="$WORK/packs/customer-$i"
  mkdir -p "$d"
  cat > "$d/pack.yaml" <<YAML
kind: pack
name: customer-$i
version: 1.0.$i
extends: ../../mappings/base
schemas: [hl7v2/2.5.1, canonical/patient-event@1]
YAML
  cat > "$d/patient-event.yaml" <<YAML
kind: mapping
name: customer-$i-patient-event
extends: ../../mappings/base/hl7v2-patient-event.yaml
tables:
  patient_class: {I: inpatient-$i, O: outpatient, E: emergency}
fields:
  encounter:
    type: lookup(PV1-2, patient_class, default="other")
  patient:
    gender: lookup(PID-8, gender, default="unknown")
YAML
  cat > "$d/policy.yaml" <<YAML
kind: masking
name: customer-$i
extends: hipaa_safe_harbor
YAML
  cat > "$d/pipeline.yaml" <<YAML
kind: pipeline
name: customer-$i
sources:
  hl7_files:
    type: files
    format: hl7v2
    path: ../../examples/hl7/*.hl7
    profile: ../../mappings/base/profiles/default.yaml
stages:
  to_event:
    type: map
    inputs: [hl7_files]
    mapping: patient-event.yaml
  mask:
    type: mask
    inputs: [to_event]
    policy: policy.yaml
sinks:
  events:
    type: jsonl
    inputs: [mask]
    path: ../../out/customer-$i/events.jsonl
dlq:
  path: ../../out/customer-$i/dlq.jsonl
  plaintext_reason: synthetic benchmark data
YAML
done
files=$(find "$WORK/packs" "$WORK/mappings" -name '*.yaml' | wc -l)
echo "checking $N packs plus the base ($files files, $N pipelines), $REPS runs:"
times=()
for r in $(seq 1 "$REPS"); do
  start=$(date +%s%N)
  (cd "$WORK" && "$SLUICE" check packs mappings > /dev/null 2> "$WORK/check.err") || { cat "$WORK/check.err"; exit 1; }
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  times+=("$ms")
  echo "  run $r: $ms ms"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median: $median ms  ($(tail -1 "$WORK/check.err"))"
