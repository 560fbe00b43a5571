#!/usr/bin/env bash
# End-to-end throughput of `sluice run`: the quick-start pipeline (filter ADT/ORU, validate,
# map to canonical patient events, mask, write JSONL + DLQ + audit) over N synthetic messages.
#
#   bench/run_throughput.sh [N] [REPS] [PIPELINE]   (defaults: 100000 messages, 3 runs, quickstart)
#
# PIPELINE other than `quickstart` names a bundled pipeline (`hl7-message-tables` runs the
# message tables: route, three maps with segment-group iteration, three masks, three sinks);
# it is copied with its source pointed at the generated file and its outputs at the temp dir.
#
# Input: `python3 ../shared/bench/synth.py hl7 --count N --seed 1` (or, if ../shared is missing,
# examples/hl7/feed-2024-01-15.hl7 repeated to N messages, with a notice). The pipeline is a
# copy of pipelines/quickstart.yaml written into a temp dir, pointing at the generated file,
# at the repository's mappings/ and at outputs in the temp dir. Reports, per run and as the
# median: wall time, records/s (records in / wall time, process start to exit, compile
# included), the runtime's own records/s from its JSON summary, CPU seconds (user + system) and
# records per CPU second (steadier than wall time when other processes share the CPUs), and
# peak RSS (`/usr/bin/time -v` if present, else VmHWM polled from /proc). Measures, asserts
# nothing.
set -euo pipefail

N=${1:-100000}
REPS=${2:-3}
PIPELINE=${3:-quickstart}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

source "$ROOT/bench/input.sh"
bench_input "$N"

echo "building sluice (cargo build --release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet)
SLUICE="$ROOT/target/release/sluice"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-throughput.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
M="$ROOT/mappings/base"
cat >"$TMP/throughput.yaml" <<EOF
kind: pipeline
name: throughput
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
  patient_events:
    type: jsonl
    inputs: [mask]
    path: '$TMP/out/patient-events.jsonl'
dlq:
  path: '$TMP/out/dlq.jsonl'
  encryption_key: '\${file:$ROOT/examples/dlq-example.key}'
audit:
  path: '$TMP/out/audit.jsonl'
defaults:
  batch_size: 64
EOF

if [[ "$PIPELINE" != quickstart ]]; then
    python3 - "$ROOT/pipelines/$PIPELINE.yaml" "$DATA" "$ROOT" "$TMP" >"$TMP/throughput.yaml" <<'PY'
import re, sys
text, data, root, tmp = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4]
source = r"(?m)^(\s+path:\s*)(\[[^\]]*\.\./examples[^\]]*\]|\S*\.\./examples\S*)"
text = re.sub(source, lambda m: m.group(1) + repr(data), text)
text = text.replace("../mappings/", root + "/mappings/")
text = text.replace("${file:../examples/", "${file:" + root + "/examples/")
text = re.sub(r"\.\./out/[^/\s]+/", tmp + "/out/", text)
print(text)
PY
fi

# Runs sluice once; prints "wall_s peak_rss_kib summary_json".
run_once() {
    local start end rss summary
    start=$(date +%s.%N)
    if [[ -x /usr/bin/time ]]; then
        summary=$(/usr/bin/time -v -o "$TMP/time.txt" "$SLUICE" run "$TMP/throughput.yaml" --summary json)
        end=$(date +%s.%N)
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$TMP/time.txt")
        # CPU seconds (user + system): less sensitive than wall time to other processes.
        rss="$rss $(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$TMP/time.txt")"
    else
        "$SLUICE" run "$TMP/throughput.yaml" --summary json >"$TMP/summary.json" &
        local pid=$! hwm=0 v
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n "$v" && "$v" -gt "$hwm" ]] && hwm=$v
            sleep 0.01
        done
        wait "$pid"
        end=$(date +%s.%N)
        rss="$hwm n/a"
        summary=$(cat "$TMP/summary.json")
    fi
    echo "$(echo "$end - $start" | bc -l) $rss $summary"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "input: $N messages, $(du -m "$DATA" | cut -f1) MB, from \`$SOURCE\`; pipeline: $PIPELINE"
echo "sluice: $("$SLUICE" --version)"
echo
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | wall s | records in | delivered | dlq | filtered | records/s (wall) | records/s (summary) | CPU s (user+sys) | records per CPU s | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
walls=()
for ((r = 1; r <= REPS; r++)); do
    read -r wall rss cpu summary < <(run_once)
    fields=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(s["records_in"], s["delivered"], s["dlq"], s["filtered"], "%.0f" % s["records_per_second"], s["balanced"])
' "$summary")
    read -r rin deliv dlq filt rps balanced <<<"$fields"
    [[ "$balanced" == "True" ]] || echo "WARNING: run $r is not balanced: $summary" >&2
    printf '| %d | %.3f | %d | %d | %d | %d | %.0f | %s | %s | %s | %.1f |\n' "$r" "$wall" "$rin" "$deliv" "$dlq" \
        "$filt" "$(echo "$rin / $wall" | bc -l)" "$rps" "$cpu" \
        "$( [[ "$cpu" != n/a ]] && printf '%.0f' "$(echo "$rin / $cpu" | bc -l)" || echo n/a)" \
        "$(echo "${rss%% *} / 1024" | bc -l)"
    walls+=("$wall")
done
median=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
[[ -x /usr/bin/time ]] || echo "(peak RSS: /usr/bin/time missing; VmHWM polled every 10 ms from /proc, a lower bound)"
printf '\nmedian wall %.3f s over %d runs: %.0f records/s\n' "$median" "$REPS" "$(echo "$N / $median" | bc -l)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
