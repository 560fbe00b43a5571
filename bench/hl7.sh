#!/usr/bin/env bash
# HL7 v2 parser comparison (issue 3, "Speed"): Sluice, python-hl7, hl7apy, and the Rust crates
# `hl7-parser` and `rust-hl7`, on the same file in one go, each doing
#   B1: parse only;
#   B2: parse + extract MSH-9.1, MSH-9.2, MSH-10, PID-3.1, PID-5.1, PID-5.2, PID-7, PID-8 with
#       escapes decoded, writing JSON lines (outputs compared with Sluice's for equality);
# plus the 5 MB OBX-5 message parse time.
#
#   bench/hl7.sh [N] [REPS] [APY_N]     (defaults: 100000 messages, 3 runs, hl7apy on 2000)
#
# Input: `python3 ../shared/bench/synth.py hl7 --count N --seed 1` (or, if ../shared is missing,
# examples/hl7/feed-2024-01-15.hl7 repeated to N messages, with a NOTICE: the numbers are then
# not comparable with docs/benchmarks.md). The Rust peers live in bench/rust-peer, a separate
# Cargo project outside the product's dependency tree; the Python peers are pip-installed in
# bench/.venv. Generated files go to bench/work/ (gitignored). Measures, asserts nothing.
set -euo pipefail

N=${1:-100000}
REPS=${2:-3}
APY_N=${3:-2000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work"
mkdir -p "$WORK"

# 1. Inputs.
source "$BENCH/input.sh"
bench_input "$N"
APY_DATA="$WORK/hl7-$N-head$APY_N.hl7"
head -n "$APY_N" "$DATA" >"$APY_DATA"
# B2 fields with escape sequences (synth.py writes none there): \T\ \S\ \E\ \F\ \R\, hex, and a
# formatting escape that Sluice keeps as written.
ESCAPES="$WORK/escapes.hl7"
printf '%s\r%s\r\n' \
    'MSH|^~\&|A|B|C|D|20240101||ADT^A01|ESC\T\1|P|2.5.1' 'PID|1||ID\S\9^^^H||O\T\BRIEN^ANN\R\MARIE||19800101|F' \
    'MSH|^~\&|A|B|C|D|20240101||ADT^A01|ESC2|P|2.5.1' 'PID|1||X||SMITH\E\JONES^\X41\NA||19800101|M' \
    'MSH|^~\&|A|B|C|D|20240101||ADT^A01|ESC3|P|2.5.1' 'PID|1||X||LINE\.br\TWO^JO\F\||19800101|F' >"$ESCAPES"

# 2. Peers.
echo "building bench/rust-peer (release) ..." >&2
cargo build --release --quiet --manifest-path "$BENCH/rust-peer/Cargo.toml"
if [[ ! -x "$BENCH/.venv/bin/python" ]]; then
    echo "creating bench/.venv (pip install hl7 hl7apy) ..." >&2
    python3 -m venv "$BENCH/.venv" && "$BENCH/.venv/bin/pip" install -q hl7 hl7apy ||
        echo "SKIP Python peers: could not set up bench/.venv" >&2
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BENCH/.venv/bin/python" -c "import importlib.metadata as m, platform;
print('python', platform.python_version(), '| hl7', m.version('hl7'), '| hl7apy', m.version('hl7apy'))" 2>/dev/null || true

# 3. B1/B2 for every parser, outputs compared.
python3 "$BENCH/hl7_bench.py" "$DATA" "$APY_DATA" "$ESCAPES" "$REPS" 3 "$SOURCE"

# 4. The 5 MB OBX-5 message (min of 20 parses, tree and view).
echo
"$BENCH/rust-peer/target/release/hl7-peer" obx5 5242880
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
