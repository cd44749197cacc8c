# syntax=docker/dockerfile:1
#
# Multi-stage build of the kafka-webhook-sidecar image.
#
#   docker build -t kafka-webhook-sidecar .
#
# cargo-chef splits the build in two: `cook` compiles only the dependencies (including
# librdkafka, built from source with cmake by the rdkafka crate) from a recipe that
# changes only when Cargo.toml/Cargo.lock change, so that layer stays cached while
# src/ is edited.
#
# The runtime image is distroless (gcr.io/distroless/cc-debian12, nonroot): glibc,
# libgcc_s, libssl3/libcrypto and CA certificates, no shell, no package manager. The
# binary links dynamically exactly what `ldd` lists: libc, libm, libgcc_s (unwinding: a
# panicked delivery task is caught as a JoinError), libssl.so.3/libcrypto.so.3 (librdkafka's
# TLS to Kafka) and libz.so.1 (rdkafka's `libz` feature); zstd and librdkafka are linked
# statically, rustls serves the endpoint side. The base image carries all of them but
# libz, which is copied from the builder (same Debian release). The build stage checks
# that `ldd` lists nothing else, so a new feature that links another library (libsasl2,
# libcurl) fails the build instead of the container. Runs as uid 65532 and writes nothing
# to disk (readOnlyRootFilesystem: true works).

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---- toolchain + cargo-chef ------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
# Build dependencies of rdkafka's cmake build of librdkafka.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake g++ pkg-config libssl-dev libcurl4-openssl-dev libsasl2-dev libzstd-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
# (hadolint DL3008, unpinned apt packages, is ignored on purpose here and below: Debian
# removes superseded versions from its mirrors at every point release and security
# update, so pinned versions make the image unbuildable within weeks. The base image
# tag fixes the Debian release; rebuild regularly to pick up security fixes.)
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# ---- dependency recipe -----------------------------------------------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- build -----------------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin kafka-webhook-sidecar \
    && install -m 0755 target/release/kafka-webhook-sidecar /usr/local/bin/kafka-webhook-sidecar
# The runtime stage provides libc, libm, libgcc_s, libssl and libcrypto; libz is copied.
# Anything else that `ldd` lists would be missing at run time: fail here instead.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN unexpected=$(ldd /usr/local/bin/kafka-webhook-sidecar \
        | grep -Ev '^\s*(linux-vdso|/lib64/ld-linux|lib(c|m|gcc_s|ssl|crypto|z)\.so\.)' || true) \
    && if [[ -n "$unexpected" ]]; then echo "unexpected shared libraries: $unexpected" >&2; exit 1; fi \
    && mkdir -p /runtime-libs \
    && cp -L "$(ldd /usr/local/bin/kafka-webhook-sidecar | awk '$1 == "libz.so.1" { print $3 }')" /runtime-libs/

# ---- runtime ---------------------------------------------------------------------------
# debian12 = bookworm: keep it the builder's Debian release (glibc, libssl3 and the copied
# libz must match what the binary was linked against).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
# /usr/lib is on the dynamic loader's default path on every architecture.
COPY --from=builder /runtime-libs/libz.so.1 /usr/lib/libz.so.1
COPY --from=builder /usr/local/bin/kafka-webhook-sidecar /usr/local/bin/kafka-webhook-sidecar
# 65532 is the conventional "nonroot" uid/gid; numeric so that Kubernetes can verify
# runAsNonRoot without looking the name up.
USER 65532:65532
# Admin server: /metrics, /healthz, /readyz (admin.listen, default 0.0.0.0:9464).
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/kafka-webhook-sidecar", "--config", "/etc/kafka-webhook-sidecar/config.yaml"]

LABEL org.opencontainers.image.title="kafka-webhook-sidecar" \
      org.opencontainers.image.description="Delivers Kafka records to an HTTP endpoint, committing only after acknowledgement." \
      org.opencontainers.image.licenses="Apache-2.0"
