//! The runtime settings: what validation makes of a [`Config`](super::Config). Every value is
//! parsed and checked once, so the rest of the program holds no `Result` and no re-parsing
//! (and a future hot reload swaps one value).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use http::{Method, Uri};

use super::{
    AuthSettings, BatchSettings, FlowSettings, Format, KafkaConfig, LogConfig, Ordering,
    RetryConfig, ShutdownConfig, TlsSettings,
};

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    /// The top-level `delivery`.
    pub delivery: DeliverySettings,
    /// The routes (at least one: without `routes:`, the one of `delivery`).
    pub routes: Vec<super::RouteSettings>,
    pub shutdown: ShutdownConfig,
    /// Where the admin server (metrics, health) listens.
    pub admin_listen: SocketAddr,
    /// Per-partition gauges (`true`) or per topic (`admin.partition_metrics: false`).
    pub partition_metrics: bool,
    pub log: LogConfig,
}

/// How records are delivered.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub endpoint: Endpoint,
    pub ordering: Ordering,
    /// Records in flight per partition: 1 in `partition` mode, `max_in_flight` otherwise.
    pub in_flight_cap: usize,
    pub retry: RetryConfig,
    pub on_failure: FailureAction,
    /// What the request looks like: format, CloudEvents attributes, signing keys.
    pub format: FormatSettings,
    /// Batching limits and body; `None` = one record per request.
    pub batch: Option<BatchSettings>,
    /// Shared concurrency limit, rate limit, fetch pausing.
    pub flow: FlowSettings,
}

/// The endpoint and the parts of every request that do not depend on the record.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub uri: Uri,
    /// `delivery.headers`, each value marked sensitive.
    pub headers: HeaderMap,
    /// `Content-Type` for records without a `content-type` header.
    pub content_type: HeaderValue,
    /// Limit of one attempt: request and response body.
    pub timeout: Duration,
    pub http2_prior_knowledge: bool,
    /// `delivery.unix_socket`: connect here instead of to the URL's host.
    pub unix_socket: Option<PathBuf>,
    /// Trust and client identity for `https://` (files read by `delivery::tls`).
    pub tls: TlsSettings,
    /// Rotating credentials (files read by `delivery::auth`).
    pub auth: AuthSettings,
}

/// What happens to a record that exhausted its attempts or got a non-retryable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// Keep retrying; nothing behind the record is committed.
    Block,
    /// Produce it to this topic with error headers, then acknowledge.
    DeadLetter { topic: String },
    /// Log and count it, then acknowledge.
    Drop,
}

/// The request encoding: `delivery.format`, `delivery.cloudevents`, `delivery.signing`.
#[derive(Debug, Clone)]
pub struct FormatSettings {
    pub format: Format,
    pub cloudevents: CloudEventsSettings,
    /// Standard Webhooks keys, decoded; empty = no signature.
    pub signing: Vec<SigningKey>,
}

/// Attributes of CloudEvents made from records that are not CloudEvents already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEventsSettings {
    /// `source`, with `{topic}` still to be replaced per record.
    pub source: String,
    pub event_type: String,
}

/// One decoded Standard Webhooks secret. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The HMAC key.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}
