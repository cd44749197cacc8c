#!/usr/bin/env bash
# The benchmark, end to end, in one command (separate from the test command):
#
#   ./bench/run.sh [extra bench/run.py flags, e.g. --records 400000 --big-records 0]
#
# 1. installs what it needs and is missing: wrk and kcat (Debian), the Kafka jars
#    (scripts/kafka.sh, Maven Central);
# 2. builds the sidecar and the bench tools in release mode, and the two peers from the Go
#    module proxy: bench/peers/sarama-baseline (Sarama) and bench/peers/benthos
#    (Benthos v4.27.0 — see bench/README.md for why not Redpanda Connect);
# 3. starts a fresh 1-node Kafka with the JIT fully on (the test setup's C1-only JVM
#    favours start-up time over throughput);
# 4. runs bench/run.py: every scenario (the flow-control sweep included), one after the other, against that broker and the
#    bench receiver, batching included (--batch-only: just the batch scenarios, --no-batch:
#    without them); prints the table and writes bench/results/latest.json (+ .md);
# 5. stops Kafka on any exit.
#
# Takes ~15 minutes on 2 cores after the first build (--cost-only: ~12). Method and figures: bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_SH="$ROOT/scripts/kafka.sh"
OUT_DIR="$ROOT/bench/results"
PEERS_BIN="$ROOT/target/bench-peers"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing: ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
for tool in cargo go java mvn python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done

log "building the sidecar and the bench tools (release)"
(cd "$ROOT" && cargo build --release --locked --bin kafka-webhook-sidecar --example kws-bench)

log "building the peers (Go module proxy)"
mkdir -p "$PEERS_BIN"
for peer in sarama-baseline benthos; do
    (cd "$ROOT/bench/peers/$peer" && GOFLAGS=-mod=readonly go build -trimpath -o "$PEERS_BIN/$peer" .)
done

KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kws-bench-kafka.XXXXXX")
cleanup() { bash "$KAFKA_SH" stop --dir "$KAFKA_DIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting Kafka"
BOOTSTRAP=$(KWS_KAFKA_HEAP="-Xmx1g -Xms1g" \
    KWS_KAFKA_JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true" \
    bash "$KAFKA_SH" start --dir "$KAFKA_DIR" | tail -n 1)
BROKER_PID=$(cat "$KAFKA_DIR/node-1/pid")

mkdir -p "$OUT_DIR"
python3 "$ROOT/bench/run.py" \
    --bootstrap "$BOOTSTRAP" --broker-pid "$BROKER_PID" \
    --tool "$ROOT/target/release/examples/kws-bench" \
    --sidecar "$ROOT/target/release/kafka-webhook-sidecar" \
    --sarama "$PEERS_BIN/sarama-baseline" --benthos "$PEERS_BIN/benthos" \
    --flow --out "$OUT_DIR/latest.json" "$@"
