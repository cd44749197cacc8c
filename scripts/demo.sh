#!/usr/bin/env bash
# End-to-end demo on this machine: a real Kafka broker, a webhook receiver, the sidecar.
#
#   ./scripts/demo.sh
#
# 1. starts a 1-node Kafka (scripts/kafka.sh) in a fresh directory under /tmp and creates
#    the 3-partition topic demo-orders;
# 2. starts scripts/demo_receiver.py on 127.0.0.1:8080 (prints one line per request);
# 3. builds the sidecar (debug) and runs it with config/demo.yaml;
# 4. produces keyed records with kcat, waits until the receiver has them all, and prints
#    the interesting lines of the sidecar's /metrics;
# 5. keeps running (produce more with the kcat line it prints) until Ctrl-C, then stops
#    the sidecar with SIGTERM (it drains, commits, leaves the group), the receiver and
#    Kafka.
#
# Environment:
#   DEMO_NONINTERACTIVE=1  stop after step 4 (for tests and CI)
#   DEMO_RECEIVER_PORT     receiver port (default 8080)
#   DEMO_ADMIN_PORT        sidecar admin port (default 9464)
#   DEMO_TIMEOUT           seconds to wait for the records to arrive (default 90)
#   KWS_BIN                use this sidecar binary instead of building one
# shellcheck disable=SC2317 # cleanup() and wait_exit() run from the EXIT trap
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_SH="$ROOT/scripts/kafka.sh"
TOPIC=demo-orders
RECEIVER_PORT=${DEMO_RECEIVER_PORT:-8080}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9464}
TIMEOUT=${DEMO_TIMEOUT:-90}
ADMIN="http://127.0.0.1:$ADMIN_PORT"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# Install what is missing (system packages, the Kafka jars) on a fresh machine.
for tool in kcat curl python3 java mvn cmake; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "installing what the demo needs (scripts/setup.sh --base)"
        "$ROOT/scripts/setup.sh" --base
        break
    fi
done
for tool in kcat curl python3 cargo java; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found after scripts/setup.sh --base"
done
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$RECEIVER_PORT" "$ADMIN_PORT"; do
    port_busy "$port" && die "127.0.0.1:$port is in use (set DEMO_RECEIVER_PORT / DEMO_ADMIN_PORT)"
done

DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kws-demo.XXXXXX")
KAFKA_DIR="$DEMO_DIR/kafka"
RECEIVER_LOG="$DEMO_DIR/receiver.log"
SIDECAR_LOG="$DEMO_DIR/sidecar.log"
RECEIVER_PID=""
SIDECAR_PID=""
TAIL_PID=""
KAFKA_STARTED=""

# Waits up to $2 seconds for process $1 to exit; returns its status (or 124).
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || return 124
        sleep 0.2
    done
    wait "$pid" 2>/dev/null
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -z "$TAIL_PID" ]] || { kill "$TAIL_PID" 2>/dev/null; wait "$TAIL_PID" 2>/dev/null || true; }
    if [[ -n "$SIDECAR_PID" ]] && kill -0 "$SIDECAR_PID" 2>/dev/null; then
        say "stopping the sidecar (SIGTERM: drain, commit, leave the group)"
        kill -TERM "$SIDECAR_PID" 2>/dev/null || true
        local status=0
        wait_exit "$SIDECAR_PID" 30 || status=$?
        if ((status == 124)); then
            echo "sidecar still running after 30s; killing it" >&2
            kill -KILL "$SIDECAR_PID" 2>/dev/null || true
            wait "$SIDECAR_PID" 2>/dev/null || true
            ((rc != 0)) || rc=1
        else
            echo "sidecar exited with status $status" >&2
            ((status == 0 || rc != 0)) || rc=$status
        fi
        tail -n 3 "$SIDECAR_LOG" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
    fi
    if [[ -n "$RECEIVER_PID" ]]; then
        kill -TERM "$RECEIVER_PID" 2>/dev/null || true
        wait_exit "$RECEIVER_PID" 5 || { kill -KILL "$RECEIVER_PID" 2>/dev/null || true; }
    fi
    if [[ -n "$KAFKA_STARTED" ]]; then
        say "stopping Kafka"
        "$KAFKA_SH" stop --dir "$KAFKA_DIR" || ((rc != 0)) || rc=1
    fi
    if ((rc == 0)); then
        rm -rf "$DEMO_DIR"
    else
        echo "demo failed (status $rc); logs kept in $DEMO_DIR" >&2
        [[ ! -f "$SIDECAR_LOG" ]] || { echo "--- sidecar log (tail)" >&2; tail -n 20 "$SIDECAR_LOG" | sed 's/\x1b\[[0-9;]*m//g' >&2; }
    fi
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C ends the demo normally (status 0); the children run in their own sessions
# (setsid), so the terminal's SIGINT reaches only this script, and the sidecar gets
# exactly one SIGTERM from cleanup.
trap 'exit 0' INT
trap 'exit 143' TERM

say "starting Kafka (1 broker) in $KAFKA_DIR"
KAFKA_STARTED=1
BOOTSTRAP=$("$KAFKA_SH" start --brokers 1 --dir "$KAFKA_DIR")
echo "bootstrap: $BOOTSTRAP" >&2
"$KAFKA_SH" create-topic "$TOPIC" --partitions 3 --dir "$KAFKA_DIR"

say "starting the demo receiver on 127.0.0.1:$RECEIVER_PORT"
setsid python3 -u "$ROOT/scripts/demo_receiver.py" --port "$RECEIVER_PORT" >"$RECEIVER_LOG" 2>&1 &
RECEIVER_PID=$!

if [[ -n "${KWS_BIN:-}" ]]; then
    BIN=$KWS_BIN
else
    say "building the sidecar (cargo build)"
    locked=()
    [[ ! -f "$ROOT/Cargo.lock" ]] || locked=(--locked)
    (cd "$ROOT" && cargo build "${locked[@]}" --bin kafka-webhook-sidecar)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/kafka-webhook-sidecar"
fi
[[ -x "$BIN" ]] || die "no sidecar binary at $BIN"

export KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP
export DEMO_RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT/events"
export DEMO_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
"$BIN" --config "$ROOT/config/demo.yaml" --check-config >&2

say "starting the sidecar with config/demo.yaml (log: $SIDECAR_LOG)"
setsid "$BIN" --config "$ROOT/config/demo.yaml" >"$SIDECAR_LOG" 2>&1 &
SIDECAR_PID=$!

deadline=$((SECONDS + TIMEOUT))
until curl -fsS "$ADMIN/readyz" >/dev/null 2>&1; do
    kill -0 "$SIDECAR_PID" 2>/dev/null || die "the sidecar exited; see $SIDECAR_LOG"
    ((SECONDS < deadline)) || die "the sidecar was not ready within ${TIMEOUT}s"
    sleep 0.5
done
echo "sidecar ready: joined group demo-orders-webhook ($ADMIN/readyz)" >&2

say "producing keyed records to $TOPIC (kcat -P -K:)"
# Three keys that kcat's default partitioner (CRC32 of the key) puts on three different
# partitions; records of one key keep their order.
records=()
for order in 1 2 3; do
    for customer in alice erin mallory; do
        records+=("$customer:{\"customer\":\"$customer\",\"order\":$order}")
    done
done
printf '%s\n' "${records[@]}" | kcat -P -q -b "$BOOTSTRAP" -t "$TOPIC" -K:
printf '  %s\n' "${records[@]}" >&2

say "waiting for the receiver to get all ${#records[@]} records"
received=0
while ((received < ${#records[@]})); do
    kill -0 "$SIDECAR_PID" 2>/dev/null || die "the sidecar exited; see $SIDECAR_LOG"
    ((SECONDS < deadline)) || die "only $received of ${#records[@]} records arrived within ${TIMEOUT}s"
    sleep 0.3
    received=$(grep -c '^received ' "$RECEIVER_LOG" || true)
done
grep '^received ' "$RECEIVER_LOG"

say "sidecar metrics ($ADMIN/metrics)"
# Acknowledged offsets are committed every kafka.commit_interval: wait for lag 0.
until curl -fsS "$ADMIN/metrics" | grep -q '^kws_consumer_lag_records.* 0$' &&
    ! curl -fsS "$ADMIN/metrics" | grep -q '^kws_consumer_lag_records.* [1-9][0-9]*$'; do
    ((SECONDS < deadline)) || break
    sleep 0.5
done
curl -fsS "$ADMIN/metrics" | grep -E '^kws_(records_received_total|deliveries_total|delivery_attempts_total|assigned_partitions|consumer_lag_records|in_flight_records|end_to_end_latency_seconds_count)' || true

if [[ "${DEMO_NONINTERACTIVE:-}" == 1 ]]; then
    say "DEMO_NONINTERACTIVE=1: done"
    exit 0
fi

say "running. Produce more in another terminal, e.g.:"
echo "  echo 'judy:{\"customer\":\"judy\",\"order\":1}' | kcat -P -b $BOOTSTRAP -t $TOPIC -K:" >&2
echo "  curl -s $ADMIN/metrics | grep ^kws_" >&2
echo "Press Ctrl-C to stop everything." >&2
tail -n 0 -f "$RECEIVER_LOG" &
TAIL_PID=$!
while kill -0 "$SIDECAR_PID" 2>/dev/null; do sleep 1; done
die "the sidecar exited unexpectedly; see $SIDECAR_LOG"
