#!/usr/bin/env bash
# The scale bench (issue 24), in one command (separate from the test command):
#
#   ./bench/scale.sh [extra bench/scale.py flags, e.g. --baseline-sidecar OLD --partitions-list 1,1000]
#
# 1. builds the sidecar and the bench tools in release mode;
# 2. starts a fresh 1-node Kafka (scripts/kafka.sh, Maven Central);
# 3. runs bench/scale.py: for 1, 10, 100 and 1,000 partitions, 20 topics × 50 partitions,
#    record sizes from 100 B to 8 MiB and 1 or 100,000 keys in key mode: peak and idle RSS,
#    idle CPU, metric series, time to the first delivery, the backlog's drain, a second
#    member's join and leave, SIGTERM-to-exit; prints the table and writes
#    bench/results/scale.json (+ .md);
# 4. stops Kafka on any exit.
#
# Takes ~25 minutes on 2 cores after the first build. Method and figures: bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_SH="$ROOT/scripts/kafka.sh"
OUT_DIR="$ROOT/bench/results"

log() { printf '[bench] %s\n' "$*" >&2; }

log "building the sidecar and the bench tools (release)"
(cd "$ROOT" && cargo build --release --locked --bin kafka-webhook-sidecar --example kws-bench)

KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kws-scale-kafka.XXXXXX")
cleanup() { bash "$KAFKA_SH" stop --dir "$KAFKA_DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting Kafka"
BOOTSTRAP=$(KWS_KAFKA_HEAP="-Xmx2g -Xms1g" bash "$KAFKA_SH" start --dir "$KAFKA_DIR" | tail -n 1)
BROKER_PID=$(cat "$KAFKA_DIR/node-1/pid")

mkdir -p "$OUT_DIR"
python3 "$ROOT/bench/scale.py" \
    --bootstrap "$BOOTSTRAP" --broker-pid "$BROKER_PID" \
    --tool "$ROOT/target/release/examples/kws-bench" \
    --sidecar "$ROOT/target/release/kafka-webhook-sidecar" \
    --out "$OUT_DIR/scale.json" "$@"
