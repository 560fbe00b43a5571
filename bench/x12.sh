#!/usr/bin/env bash
# X12 validation speed and memory (issue 6, "Conformance and speed"): `sluice validate --format
# x12` against pyx12's `x12valid` on the same synthetic 837P and 835 files, and `sluice parse
# --format x12` (split + tokenize + JSON) throughput, with each run's peak memory.
#
#   bench/x12.sh [CLAIMS...]          (default: 1000 10000 100000)
#   SLUICE_BIN=target/debug/sluice bench/x12.sh 1000   (another binary, no release build)
#   PYX12_MAX=10000 bench/x12.sh      (largest claim count given to pyx12; default 10000)
#
# Inputs: `python3 ../shared/bench/synth.py x12 --claims N --set 837P|835 --seed 1`, into
# bench/work/ (gitignored). pyx12 is pip-installed into bench/work/pyx12-venv by this script.
# Both validate against implementation guides: pyx12 with its maps, Sluice with its bundled
# 5010 837P/835 guides (envelopes, loops, segment usage and repeats, elements, key codes).
# Measures, asserts nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK="$ROOT/bench/work"
SYNTH="$ROOT/../shared/bench/synth.py"
PYX12_MAX=${PYX12_MAX:-10000}
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(1000 10000 100000)
mkdir -p "$WORK"
[[ -f "$SYNTH" ]] || { echo "SKIP: $SYNTH not found (no ../shared checkout)" >&2; exit 0; }

if [[ -z "${SLUICE_BIN:-}" ]]; then
  echo "building sluice (cargo build --release) ..." >&2
  (cd "$ROOT" && cargo build --release --locked -q)
fi
SLUICE="${SLUICE_BIN:-$ROOT/target/release/sluice}"

VENV="$WORK/pyx12-venv"
if [[ ! -x "$VENV/bin/x12valid" ]]; then
  echo "creating $VENV (pip install pyx12) ..." >&2
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q pyx12 || echo "SKIP pyx12: could not install it" >&2
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');" \
  "load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$VENV/bin/python" -c "import importlib.metadata as m; print('pyx12', m.version('pyx12'))" 2>/dev/null || true

# run NAME CMD...: wall seconds and peak RSS (KiB) of one run, output discarded.
run() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -o "$WORK/time.out" -f '%M' "$@" >/dev/null 2>"$WORK/$name.err" || true
  t1=$(date +%s.%N)
  printf '%s %.3f %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$(tail -1 "$WORK/time.out")"
}

printf '%-6s %8s %10s | %-28s | %-28s | %-28s | %s\n' set claims MB "sluice validate s (MB/s, RSS)" \
  "sluice parse s (MB/s, RSS)" "pyx12 x12valid s (RSS)" "ratio"
for set in 837P 835; do
  for n in "${SIZES[@]}"; do
    f="$WORK/x12-$set-$n.x12"
    [[ -f "$f" ]] || python3 "$SYNTH" x12 --claims "$n" --set "$set" --seed 1 "$f"
    mb=$(echo "scale=2; $(stat -c %s "$f") / 1000000" | bc)
    read -r _ sv_t sv_rss < <(run validate "$SLUICE" validate --format x12 "$f")
    read -r _ sp_t sp_rss < <(run parse "$SLUICE" parse --format x12 "$f")
    py="-"; ratio="-"
    if [[ -x "$VENV/bin/x12valid" && "$n" -le "$PYX12_MAX" ]]; then
      read -r _ py_t py_rss < <(run pyx12 "$VENV/bin/x12valid" "$f")
      py="$py_t ($((py_rss / 1024)) MB)"
      ratio=$(echo "scale=1; $py_t / $sv_t" | bc)x
    fi
    printf '%-6s %8s %10s | %-28s | %-28s | %-28s | %s\n' "$set" "$n" "$mb" \
      "$sv_t ($(echo "scale=1; $mb / $sv_t" | bc) MB/s, $((sv_rss / 1024)) MB)" \
      "$sp_t ($(echo "scale=1; $mb / $sp_t" | bc) MB/s, $((sp_rss / 1024)) MB)" "$py" "$ratio"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
