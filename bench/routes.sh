#!/usr/bin/env bash
# The routes bench (issue 25), in one command (separate from the test command):
#
#   ./bench/routes.sh [extra bench/routes.py flags, e.g. --rounds 5]
#
# 1. builds the sidecar and the bench tools in release mode;
# 2. starts a fresh 1-node Kafka (scripts/kafka.sh, Maven Central);
# 3. runs bench/routes.py: one backlog drained with no routes, 1 route with a filter,
#    1 route with 10 rules and 10 routes with a filter each, in alternation; prints CPU per
#    record and its ratio to no routes, and writes bench/results/routes.json (+ .md);
# 4. stops Kafka on any exit.
#
# Takes ~5 minutes on 2 cores after the first build. Method and figures: bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_SH="$ROOT/scripts/kafka.sh"
OUT_DIR="$ROOT/bench/results"

log() { printf '[bench] %s\n' "$*" >&2; }

log "building the sidecar and the bench tools (release)"
(cd "$ROOT" && cargo build --release --locked --bin kafka-webhook-sidecar --example kws-bench)

KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kws-routes-kafka.XXXXXX")
cleanup() { bash "$KAFKA_SH" stop --dir "$KAFKA_DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting Kafka"
BOOTSTRAP=$(KWS_KAFKA_HEAP="-Xmx2g -Xms1g" bash "$KAFKA_SH" start --dir "$KAFKA_DIR" | tail -n 1)
BROKER_PID=$(cat "$KAFKA_DIR/node-1/pid")

mkdir -p "$OUT_DIR"
python3 "$ROOT/bench/routes.py" \
    --bootstrap "$BOOTSTRAP" --broker-pid "$BROKER_PID" \
    --tool "$ROOT/target/release/examples/kws-bench" \
    --sidecar "$ROOT/target/release/kafka-webhook-sidecar" \
    --out "$OUT_DIR/routes.json" "$@"
