//! kafka-webhook-sidecar joins a Kafka consumer group and delivers every record of the
//! partitions it owns to an HTTP endpoint, committing a record's offset only after the endpoint
//! acknowledged it (at-least-once, never past an unacknowledged record).
//!
//! # Layout
//!
//! Pure logic, no I/O (unit-tested in place):
//! - [`config`]: the YAML configuration, its reference docs and validation;
//!   [`duration`] and [`interpolate`] help it.
//! - [`retry`]: status classification, backoff with full jitter, `Retry-After`.
//! - [`offsets`]: the committable-offset watermark of a partition.
//! - [`scheduler`]: which buffered record may be sent next per ordering mode.
//! - [`request`]: the HTTP request built from a record (the endpoint contract).
//!
//! I/O edges (tested end to end against real Kafka and a real HTTP listener):
//! - [`consumer`]: rdkafka context, rebalance handling, the pump thread.
//! - [`worker`]: the per-partition task.
//! - [`delivery`], [`http_client`], [`dead_letter`]: sending one record until disposed of.
//! - [`admin`], [`metrics`], [`state`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`app`]: wiring and the shutdown sequence; [`signals`], [`logging`], [`error`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod delivery;
pub mod duration;
pub mod error;
pub mod http_client;
pub mod interpolate;
pub mod logging;
pub mod metrics;
pub mod offsets;
pub mod record;
pub mod request;
pub mod retry;
pub mod scheduler;
pub mod signals;
pub mod state;
pub mod worker;

/// Exit code for a bad configuration (`EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;
/// Exit code when a second signal or the hard deadline cut the shutdown short.
pub const EXIT_FORCED: i32 = 1;
