#!/usr/bin/env bash
# Idempotent setup of everything the build and the tests need on Debian 12:
# system packages (only when missing), rustfmt/clippy, and the Kafka broker jars.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Build deps of rdkafka (cmake-build, ssl, zstd, libz), kcat for the broker
# probe, python3 for the harness scripts.
packages=(cmake build-essential pkg-config libssl-dev zlib1g-dev libzstd-dev
    libcurl4-openssl-dev libsasl2-dev kcat python3)
# The broker runs on a JVM and is fetched with Maven.
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
        sudo=(sudo -E)
    fi
    log "installing: ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "system packages present"
fi

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup)"
if command -v rustup >/dev/null 2>&1; then
    installed=$(cd "$ROOT" && { rustup component list --installed 2>/dev/null || true; })
    for c in rustfmt clippy; do
        if ! grep -q "^$c" <<<"$installed"; then
            log "adding rustup component $c"
            (cd "$ROOT" && rustup component add "$c")
        fi
    done
else
    for c in fmt clippy; do
        cargo "$c" --version >/dev/null 2>&1 || die "cargo $c missing and no rustup to add it"
    done
fi

"$ROOT/scripts/kafka.sh" fetch
log "done"
