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
# Times are medians of several runs (SLUICE_RUNS, PYX12_RUNS below). Measures, asserts nothing.
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

# run NAME N CMD...: the median wall seconds of N runs and the largest peak RSS (KiB), output
# discarded. One run of a 10-50 ms process says more about what else the machine was doing (a
# first exec reading the binary into the page cache took 51 ms where later ones took 10), so
# Sluice runs SLUICE_RUNS times (default 5) and pyx12 PYX12_RUNS times (default 3, once above
# 1,000 claims, where a run takes minutes).
run() {
  local name=$1 n=$2; shift 2
  local t0 t1 times=()
  for ((i = 0; i < n; i++)); do
    # $EPOCHREALTIME: no process started to read the clock (a `date` each side added ~5 ms).
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$WORK/$name.err" || true
    t1=$EPOCHREALTIME
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  # Peak memory from one more run under /usr/bin/time (its own start-up kept out of the times).
  /usr/bin/time -o "$WORK/time.out" -f '%M' "$@" >/dev/null 2>&1 || true
  printf '%s %.3f %s\n' "$name" "$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((n + 1) / 2))p")" \
    "$(tail -1 "$WORK/time.out")"
}
SLUICE_RUNS=${SLUICE_RUNS:-5}

printf '%-6s %8s %10s | %-28s | %-28s | %-28s | %s\n' set claims MB "sluice validate s (MB/s, RSS)" \
  "sluice parse s (MB/s, RSS)" "pyx12 x12valid s (RSS)" "ratio"
for set in 837P 835; do
  for n in "${SIZES[@]}"; do
    f="$WORK/x12-$set-$n.x12"
    [[ -f "$f" ]] || python3 "$SYNTH" x12 --claims "$n" --set "$set" --seed 1 "$f"
    mb=$(echo "scale=2; $(stat -c %s "$f") / 1000000" | bc)
    read -r _ sv_t sv_rss < <(run validate "$SLUICE_RUNS" "$SLUICE" validate --format x12 "$f")
    read -r _ sp_t sp_rss < <(run parse "$SLUICE_RUNS" "$SLUICE" parse --format x12 "$f")
    py="-"; ratio="-"
    if [[ -x "$VENV/bin/x12valid" && "$n" -le "$PYX12_MAX" ]]; then
      py_runs=${PYX12_RUNS:-$([[ "$n" -le 1000 ]] && echo 3 || echo 1)}
      read -r _ py_t py_rss < <(run pyx12 "$py_runs" "$VENV/bin/x12valid" "$f")
      py="$py_t ($((py_rss / 1024)) MB)"
      ratio=$(echo "scale=1; $py_t / $sv_t" | bc)x
    fi
    printf '%-6s %8s %10s | %-28s | %-28s | %-28s | %s\n' "$set" "$n" "$mb" \
      "$sv_t ($(echo "scale=1; $mb / $sv_t" | bc) MB/s, $((sv_rss / 1024)) MB)" \
      "$sp_t ($(echo "scale=1; $mb / $sp_t" | bc) MB/s, $((sp_rss / 1024)) MB)" "$py" "$ratio"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
