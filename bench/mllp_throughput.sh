#!/usr/bin/env bash
# MLLP listener throughput: `sluice run` of pipelines/mllp-listener.yaml (the quick-start
# pipeline fed over MLLP) receiving N synthetic messages from bench/mllp_feed.py over C
# concurrent connections, once with ACK timing on_commit and once with on_receipt.
#
#   bench/mllp_throughput.sh [N] [CONNS]      (defaults: 20000 messages, 16 connections)
#
# Input: `python3 ../shared/bench/synth.py hl7 --count N --seed 1` (or, if ../shared is
# missing, examples/hl7/feed-2024-01-15.hl7 repeated, with a notice). Builds the release binary.
# Reports, per timing: messages, AA count, other ACKs, seconds from the first send to the last
# ACK, messages/s, and the run summary after SIGINT. Measures, asserts nothing.
set -euo pipefail

N=${1:-20000}
CONNS=${2:-16}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/bench/input.sh"
bench_input "$N"
(cd "$ROOT" && cargo build --release --locked --quiet --bin sluice)
SLUICE="$ROOT/target/release/sluice"

for TIMING in on_commit on_receipt; do
    DIR=$(mktemp -d)
    cp -r "$ROOT/pipelines" "$ROOT/mappings" "$ROOT/examples" "$DIR/"
    sed -i -e 's/listen: 127.0.0.1:2575/listen: 127.0.0.1:0/' -e "s/timing: on_commit/timing: $TIMING/" \
        "$DIR/pipelines/mllp-listener.yaml"
    (cd "$DIR" && exec "$SLUICE" run pipelines/mllp-listener.yaml --summary json > summary.json 2> stderr.log) &
    PID=$!
    PORT=""
    for _ in $(seq 100); do
        PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$DIR/stderr.log" 2>/dev/null | cut -d: -f2 || true)
        [[ -n $PORT ]] && break
        sleep 0.1
    done
    read -r MSGS AA OTHER SECS < <(python3 "$ROOT/bench/mllp_feed.py" 127.0.0.1 "$PORT" "$DATA" "$CONNS")
    kill -INT "$PID"
    wait "$PID"
    RATE=$(python3 -c "print(round($MSGS / $SECS))")
    echo "timing=$TIMING conns=$CONNS messages=$MSGS AA=$AA other=$OTHER seconds=$SECS messages/s=$RATE"
    echo "  summary: $(cat "$DIR/summary.json")"
    rm -rf "$DIR"
done
