//! Delivering one record until it is disposed of: the attempt loop ([`deliverer`]), the pure
//! decision after each attempt ([`policy`], built on [`retry`]: classification, backoff,
//! `Retry-After`), and the pooled HTTP client ([`http_client`], built by [`connector`]) with
//! its TLS configuration ([`tls`]), credentials ([`auth`], [`oauth2`]) and the files re-read
//! when they change ([`watched`]); flow control toward the endpoint ([`flow`]: the shared
//! concurrency and rate limits every attempt passes through).
//!
//! The two I/O edges are traits, so the loop is unit-tested without a network: a
//! [`Transport`] sends one attempt, a [`DeadLetterSink`] takes records that failed for good.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio_util::sync::CancellationToken;

use crate::record::Record;

pub mod auth;
pub mod batch;
pub mod connector;
pub mod deliverer;
#[cfg(test)]
pub mod fakes;
pub mod flow;
pub mod http_client;
pub mod oauth2;
pub mod policy;
pub mod results;
pub mod retry;
pub mod tls;
pub mod watched;

pub use deliverer::Deliverer;
pub use http_client::HttpClient;
pub use retry::{AttemptOutcome, EntryResult};

/// Signals from a partition's owner to its deliveries.
#[derive(Clone, Default)]
pub struct Drain {
    /// Start no new attempt and stop waiting in backoff.
    pub stop: CancellationToken,
    /// Cut the attempt in progress (the drain timeout passed).
    pub abandon: CancellationToken,
}

/// How a record left the delivery loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The endpoint answered 2xx: acknowledged.
    Delivered,
    /// Written to the dead-letter topic and acknowledged by the broker: acknowledged.
    DeadLettered,
    /// Dropped by `on_failure: drop`: acknowledged.
    Dropped,
    /// Given up because the partition is draining: NOT acknowledged, never committed.
    Abandoned,
}

impl Disposition {
    pub fn is_acknowledged(self) -> bool {
        !matches!(self, Self::Abandoned)
    }
}

/// Sends one attempt and reads the answer within `timeout`.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> impl Future<Output = AttemptOutcome> + Send;

    /// Like [`send`](Self::send), and returns a 2xx answer's body (empty otherwise, or when
    /// it is too large to hold results): a batch's per-entry results.
    fn send_for_body(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> impl Future<Output = (AttemptOutcome, Bytes)> + Send;
}

/// A boxed future, for the rarely used dead-letter path.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where `on_failure: dead_letter` writes records that failed for good.
pub trait DeadLetterSink: Send + Sync + 'static {
    /// The topic written to, for logs.
    fn topic(&self) -> &str;
    /// Writes the record with its error details; `Ok` only once it is durably stored.
    fn write<'a>(
        &'a self,
        record: &'a Record,
        last: &'a AttemptOutcome,
        attempts: u32,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The failure policy with what it needs: `DeadLetter` carries its sink, so a dead-letter
/// policy without a producer cannot be built.
#[derive(Clone)]
pub enum OnFailure {
    Block,
    DeadLetter(Arc<dyn DeadLetterSink>),
    Drop,
}

impl OnFailure {
    pub fn kind(&self) -> policy::FailureKind {
        match self {
            Self::Block => policy::FailureKind::Block,
            Self::DeadLetter(_) => policy::FailureKind::DeadLetter,
            Self::Drop => policy::FailureKind::Drop,
        }
    }
}
