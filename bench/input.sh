# Sourced by the bench scripts: `bench_input N` makes the input file of N messages and sets
# DATA (its path) and SOURCE (how it was made, for the report).
#
# With ../shared: `python3 ../shared/bench/synth.py hl7 --count N --seed 1`, generated once into
# bench/work/hl7-N.hl7 (deterministic, so reused). Without it: a NOTICE, and
# examples/hl7/feed-2024-01-15.hl7 repeated to N messages in bench/work/hl7-N-fallback.hl7
# (a different name, so a fallback file is never taken for synth.py output).
bench_input() {
    local n=$1 root synth work
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    synth="$root/../shared/bench/synth.py"
    work="$root/bench/work"
    mkdir -p "$work"
    if [[ -f "$synth" ]]; then
        DATA="$work/hl7-$n.hl7"
        SOURCE="python3 ../shared/bench/synth.py hl7 --count $n --seed 1"
        [[ -f "$DATA" ]] || python3 "$synth" hl7 --count "$n" --seed 1 "$DATA"
    else
        echo "NOTICE: $synth is missing (no ../shared checkout); repeating examples/hl7/feed-2024-01-15.hl7" \
            "to $n messages instead. These numbers are NOT comparable with docs/benchmarks.md." >&2
        DATA="$work/hl7-$n-fallback.hl7"
        SOURCE="examples/hl7/feed-2024-01-15.hl7 repeated to $n messages (fallback)"
        python3 - "$root/examples/hl7/feed-2024-01-15.hl7" "$DATA" "$n" <<'PY'
import sys
seeds = [m for m in open(sys.argv[1], "rb").read().split(b"\n") if m.strip()]
with open(sys.argv[2], "wb") as f:
    for i in range(int(sys.argv[3])):
        f.write(seeds[i % len(seeds)] + b"\n")
PY
    fi
}
