#!/usr/bin/env bash
# FHIR comparison (issue 7, "Conformance and speed"): Sluice vs fhir.resources (pydantic models,
# R4B) doing parse + structural validation + reference resolution on the same files:
#   S1: ../shared/corpus/fhir/synthea/*.json (8 Synthea patient Bundles, 7 MB);
#   S2: `synth.py fhir --bundle` output (one collection Bundle) and `synth.py fhir` NDJSON;
#   S3: a 1,000-entry Bundle of 6.0 MB (the 1,000 largest Synthea entries, pretty-printed;
#       larger than the issue's 5 MB target size);
#   S4: a 1,000-entry Bundle of 5.0 MB, the issue's target size (the 51st to the 1,050th
#       largest Synthea entries, pretty-printed: 4.99 MB).
#
#   bench/fhir.sh [REPS] [PATIENTS]     (defaults: 5 runs, 2000 synthetic patients)
#
# Sluice runs as specs/fhir/examples/fhir_bench.rs (release), fhir.resources as
# bench/fhir_bench.py in a venv the script creates under bench/work/fhir-venv. Medians (and
# minima) of REPS wall times per file, and the mean CPU time per run (robust on a loaded
# machine); files in memory (no disk time). Measures, asserts nothing.
set -euo pipefail

REPS=${1:-5}
PATIENTS=${2:-2000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work"
CORPUS="$ROOT/../shared/corpus/fhir/synthea"
SYNTH="$ROOT/../shared/bench/synth.py"
mkdir -p "$WORK"

if [[ ! -d "$CORPUS" || ! -f "$SYNTH" ]]; then
    echo "SKIPPED: ../shared/corpus/fhir/synthea or ../shared/bench/synth.py not found" >&2
    exit 0
fi

# 1. Inputs.
python3 "$SYNTH" fhir --patients "$PATIENTS" --bundle --seed 1 "$WORK/synth-bundle.json"
python3 "$SYNTH" fhir --patients "$PATIENTS" --seed 1 "$WORK/synth.ndjson"
python3 - "$CORPUS" "$WORK/bundle-1000.json" "$WORK/bundle-1000-5mb.json" <<'PY'
import glob, json, sys
entries = []
for f in sorted(glob.glob(sys.argv[1] + "/*.json")):
    entries += json.load(open(f))["entry"]
entries.sort(key=lambda e: len(json.dumps(e)), reverse=True)
# Synthea Bundles are transactions (entries carry `request`, references are conditional).
for path, chosen in ((sys.argv[2], entries[:1000]), (sys.argv[3], entries[50:1050])):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": chosen}
    open(path, "w").write(json.dumps(bundle, indent=2))
PY

# 2. Tools.
echo "building specs/fhir/examples/fhir_bench.rs (release) ..." >&2
cargo build --release --quiet -p sluice-fhir --example fhir_bench
SLUICE="$ROOT/target/release/examples/fhir_bench"
VENV="$WORK/fhir-venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import fhir.resources" 2>/dev/null; then
    echo "creating $VENV (pip install fhir.resources) ..." >&2
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "fhir.resources>=7"
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
    "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$VENV/bin/python" -c "import importlib.metadata as m, platform;
print('python', platform.python_version(), '| fhir.resources', m.version('fhir.resources'), '| pydantic', m.version('pydantic'))"

# 3. Both tools on each set; ratios of total medians.
run_set() {
    local name=$1
    shift
    "$SLUICE" "$REPS" "$@" >"$WORK/fhir-$name-sluice.jsonl"
    "$VENV/bin/python" "$BENCH/fhir_bench.py" "$REPS" "$@" >"$WORK/fhir-$name-py.jsonl"
    python3 - "$name" "$WORK/fhir-$name-sluice.jsonl" "$WORK/fhir-$name-py.jsonl" <<'PY'
import json, sys
name, s, p = sys.argv[1:]
s = [json.loads(l) for l in open(s)]
p = [json.loads(l) for l in open(p)]
for x in p:
    if "error" in x:
        print(f"  fhir.resources rejected {x['file']}: {x['error']} (left out of both totals)")
bad = {x["file"] for x in p if "error" in x}
st = sum(x["median_ms"] for x in s if not x.get("total") and x["file"] not in bad)
pt = sum(x["median_ms"] for x in p if not x.get("total") and "error" not in x)
sc = sum(x["cpu_ms"] for x in s if not x.get("total") and x["file"] not in bad)
pc = sum(x["cpu_ms"] for x in p if not x.get("total") and "error" not in x)
smin = sum(x["min_ms"] for x in s if not x.get("total") and x["file"] not in bad)
mb = sum(x["bytes"] for x in s if not x.get("total") and x["file"] not in bad) / 1e6
res = sum(x["resources"] for x in s if not x.get("total") and x["file"] not in bad)
print(f"{name:<20} {mb:6.2f} MB {res:6d} res | wall median: sluice {st:8.1f} ms (min {smin:7.1f}), fhir.resources {pt:9.1f} ms, ratio {pt / st:5.1f}x"
      f" | CPU per run: sluice {sc:7.1f} ms, fhir.resources {pc:9.1f} ms, ratio {pc / max(sc, 0.1):5.1f}x")
PY
}
echo
run_set "synthea" "$CORPUS"/*.json
run_set "synth-bundle" "$WORK/synth-bundle.json"
run_set "synth-ndjson" "$WORK/synth.ndjson"
run_set "bundle-1000-entries" "$WORK/bundle-1000.json"
run_set "bundle-1000-5mb" "$WORK/bundle-1000-5mb.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
