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
# The runtime image is debian:bookworm-slim with the shared libraries the binary links
# dynamically (`ldd`: libssl.so.3/libcrypto.so.3 from libssl3, libz.so.1 from zlib1g;
# zstd is linked statically by rdkafka) and CA certificates for librdkafka's TLS. It
# runs as a numeric non-root user and writes nothing to disk, so the pod can use
# readOnlyRootFilesystem: true.

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

# ---- runtime ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
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
