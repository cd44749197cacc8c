//! kafka-webhook-sidecar joins a Kafka consumer group and delivers every record of the
//! partitions it owns to an HTTP endpoint, committing a record's offset only after the endpoint
//! acknowledged it (at-least-once, never past an unacknowledged record).
//!
//! # Layout
//!
//! One folder per stage a record passes through, each depending only on those listed before
//! it (no module cycle). Pure logic (no I/O) is unit-tested in place; the I/O edges are tested
//! end to end against real Kafka and a real HTTP listener (`tests/`).
//!
//! - [`config`]: the YAML file's types (the reference docs), `${VAR}` interpolation,
//!   durations, and validation into the runtime [`config::Settings`]. Pure.
//! - [`budget`]: the one memory budget shared out between librdkafka's prefetch and the
//!   partitions' buffers. Pure.
//! - [`record`]: the owned record every stage passes along.
//! - [`ops`]: metrics, the events that write a log line and a metric together, health,
//!   the admin server (`/metrics`, `/healthz`, `/readyz`), the log subscriber.
//! - [`format`]: the HTTP request built from a record or a batch (the endpoint contract: raw,
//!   CloudEvents binary or structured, batch bodies, Standard Webhooks signatures). Pure.
//! - [`delivery`]: one record (or one batch, entry by entry) until it is disposed of: the
//!   attempt loops, the pure retry and failure policy, per-entry results, the pooled HTTP client with its TLS configuration and credentials (files
//!   re-read when they change, OAuth2 tokens); the network behind two small traits.
//! - [`partition`]: one partition's worker task, its offset watermark and its ordering
//!   scheduler (both pure, property-tested); reads records from a `PartitionSource`.
//! - [`routing`]: routes: which routes take a record and to which path (CEL filters and
//!   rules, pure), and the fanout of one partition to a worker per route, committing a record
//!   when every route that took it acknowledged it.
//! - [`kafka`]: the rdkafka edge: client configs, callbacks, the partition registry
//!   (assign, revoke: drain then commit), partition sources, the commit helper, the pump
//!   thread, the dead-letter producer.
//! - [`lifecycle`]: signals, the one shutdown deadline, the shutdown sequence.
//! - [`app`]: wiring; [`error`]: the library's error type.
#![forbid(unsafe_code)]

pub mod app;
pub mod budget;
pub mod config;
pub mod delivery;
pub mod error;
pub mod format;
pub mod kafka;
pub mod lifecycle;
pub mod ops;
pub mod partition;
pub mod record;
pub mod routing;

/// Exit code for a bad configuration (`EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;
/// Exit code when the shutdown deadline or a second signal cut the shutdown short.
pub const EXIT_FORCED: i32 = 1;
