#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ (cargo fuzz, libFuzzer) for a fixed time from its seed
# corpus and prints its executions and crashes; exits 1 if any target crashed (the input
# is kept in fuzz/artifacts/TARGET/, to be turned into a regression test).
#
#   scripts/fuzz.sh                 every target, 20 s each (the test command passes --seconds 8)
#   scripts/fuzz.sh --seconds 3600  a long run
#   scripts/fuzz.sh bodies          one target
#
# Needs the nightly toolchain (libFuzzer's instrumentation; rustup's `nightly`, present on
# the project's machines) and cargo-fuzz (installed from crates.io when missing). Built
# without a sanitizer: the sidecar forbids unsafe code, so the crash the fuzzer looks for is
# a panic (a broken invariant of the target, or any panic in the code under test); with debug
# assertions (-a), so an arithmetic overflow panics too instead of wrapping as in an
# optimized build; trace-compares instrumentation is left out, it cut the rate by more than
# half.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=20
targets=()
while (($#)); do
    case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
    esac
done
log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    log "error: the nightly toolchain is missing (rustup toolchain install nightly)"
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --quiet
fi
cd "$ROOT/fuzz"
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
flags=(-O -a -s none --no-trace-compares)
work=$(mktemp -d "${TMPDIR:-/tmp}/kws-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "building ${targets[*]}"
for target in "${targets[@]}"; do
    cargo +nightly fuzz build "${flags[@]}" "$target" 2>&1 | tail -n 3 >&2
done
crashed=()
for target in "${targets[@]}"; do
    corpus="$work/$target"
    python3 "$ROOT/fuzz/seeds.py" "$target" "$corpus" >&2
    dict=()
    [[ -f "$target.dict" ]] && dict=("-dict=$target.dict")
    rc=0
    cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus" -- "${dict[@]}" \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$work/$target.log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log" | tail -1)
    if ((rc == 0)); then
        echo "fuzz $target: ${runs:-?} executions in ${SECONDS_EACH} s (${rate:-?}/s), 0 crashes"
    else
        echo "fuzz $target: CRASH after ${runs:-?} executions (exit $rc); input in fuzz/artifacts/$target/"
        grep -E "panicked|SUMMARY|Test unit written" "$work/$target.log" | head -5 || true
        crashed+=("$target")
    fi
done
((${#crashed[@]} == 0))
