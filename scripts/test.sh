#!/usr/bin/env bash
# The one test command: setup, format check, a real Kafka broker, deploy checks, clippy,
# tests, a short fuzz run.
#
#   ./scripts/test.sh
#
# Environment:
#   KWS_KAFKA_BOOTSTRAP  if set, tests use that cluster and no broker is started
#   KWS_TEST_SKIP_SLOW   1: skip the fault tests that run three brokers or a long
#                        outage (quick local runs); unset (the default, and CI):
#                        run everything
# Exported to the tests:
#   KWS_KAFKA_BOOTSTRAP  bootstrap address of the 1-node test cluster
#   KWS_KAFKA_SCRIPT     absolute path of scripts/kafka.sh, for tests that run
#                        their own cluster (always pass them their own --dir)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# One ordered stream (CI logs): the scripts report progress on stderr.
exec 2>&1
KAFKA_SH="$ROOT/scripts/kafka.sh"
export KWS_KAFKA_SCRIPT="$KAFKA_SH"

KAFKA_DIR=""      # set when this script started a cluster
FAILED=()         # names of failed steps
SUMMARY=()        # "name: status (time)" per step
T_START=${EPOCHREALTIME//[.,]/}

now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
fmt_secs() { # microseconds -> "12.3s"
    local us=$1
    printf '%d.%01ds' $((us / 1000000)) $(((us % 1000000) / 100000))
}
section() { printf '\n======== %s ========\n' "$*"; }

# run_step NAME CMD...: runs CMD with a header and timing; records the result.
run_step() {
    local name=$1 t0 rc=0 dt
    shift
    section "$name"
    t0=$(now_us)
    "$@" || rc=$?
    dt=$(fmt_secs $(($(now_us) - t0)))
    if ((rc == 0)); then
        printf -- '-------- %s: ok (%s)\n' "$name" "$dt"
        SUMMARY+=("$name: ok ($dt)")
    else
        printf -- '-------- %s: FAILED, exit %d (%s)\n' "$name" "$rc" "$dt"
        SUMMARY+=("$name: FAILED ($dt)")
        FAILED+=("$name")
    fi
    return "$rc"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$KAFKA_DIR" ]]; then
        if ((rc != 0 || ${#FAILED[@]} > 0)); then
            section "Kafka broker log (tail)"
            "$KAFKA_SH" logs --dir "$KAFKA_DIR" || true
        fi
        section "stop Kafka"
        if "$KAFKA_SH" stop --dir "$KAFKA_DIR"; then
            if ((rc == 0 && ${#FAILED[@]} == 0)); then
                rm -rf "$KAFKA_DIR"
            else
                echo "Kafka data and logs kept in $KAFKA_DIR"
            fi
        else
            echo "could not stop Kafka in $KAFKA_DIR" >&2
            ((rc != 0)) || rc=1
        fi
    fi
    section "summary"
    local line
    for line in "${SUMMARY[@]}"; do echo "  $line"; done
    echo "  total: $(fmt_secs $(($(now_us) - T_START)))"
    if ((rc == 0 && ${#FAILED[@]} > 0)); then rc=1; fi
    if ((rc == 0)); then echo "ALL STEPS PASSED"; else echo "FAILED: ${FAILED[*]:-interrupted}"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_kafka() {
    # (called from run_step, where `set -e` is off: check every command)
    KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kws-kafka.XXXXXX") || return 1
    "$KAFKA_SH" start --brokers 1 --dir "$KAFKA_DIR" >/dev/null || return 1
    KWS_KAFKA_BOOTSTRAP=$(<"$KAFKA_DIR/bootstrap") || return 1
    [[ -n "$KWS_KAFKA_BOOTSTRAP" ]] || return 1
    export KWS_KAFKA_BOOTSTRAP
    echo "KWS_KAFKA_BOOTSTRAP=$KWS_KAFKA_BOOTSTRAP (data in $KAFKA_DIR)"
}

locked=()
if [[ -f Cargo.lock ]]; then locked=(--locked); fi

# Setup and a broker are prerequisites: stop at once if they fail.
run_step "setup" "$ROOT/scripts/setup.sh" || exit 1
# A format problem doesn't stop the run: lints and tests still report.
run_step "cargo fmt --check" cargo fmt --all -- --check || true
if [[ -n "${KWS_KAFKA_BOOTSTRAP:-}" ]]; then
    section "Kafka"
    echo "using the cluster at KWS_KAFKA_BOOTSTRAP=$KWS_KAFKA_BOOTSTRAP (not starting one)"
    export KWS_KAFKA_BOOTSTRAP
else
    run_step "start Kafka (1 broker)" start_kafka || exit 1
fi
echo "KWS_KAFKA_SCRIPT=$KWS_KAFKA_SCRIPT"
if [[ "${KWS_TEST_SKIP_SLOW:-}" == 1 ]]; then
    echo "KWS_TEST_SKIP_SLOW=1: the three-broker and long-outage fault tests are skipped"
fi
# Dockerfile and Helm chart: hadolint, helm lint, kubeconform, the rendered config.
run_step "deploy checks" "$ROOT/scripts/check-deploy.sh" || true
run_step "cargo clippy" cargo clippy --all-targets "${locked[@]}" -- -D warnings || true
run_step "cargo test" cargo test --all-targets "${locked[@]}" || true
# The fuzz targets of fuzz/ for a short time each (a crash fails the run): 7 targets × 8 s,
# about a minute of fuzzing.
run_step "fuzz (8 s per target)" "$ROOT/scripts/fuzz.sh" --seconds 8 || true

((${#FAILED[@]} == 0))
