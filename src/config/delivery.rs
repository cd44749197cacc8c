//! The `delivery:` section: the endpoint, ordering, retry and failure policy, and its
//! validation into [`DeliverySettings`] (headers, method and URL parsed once, here).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::duration::serde_text;
use super::format::{self, CloudEventsConfig, Format, SigningConfig};
use super::kafka::valid_topic;
use super::settings::{DeliverySettings, Endpoint, FailureAction};
use super::{
    invalid, AuthConfig, BatchConfig, ConcurrencyConfig, ConfigError, RateLimitConfig, TlsConfig,
};

/// HTTP delivery.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The endpoint, `http://` or `https://`.
    pub url: String,
    /// HTTP method.
    #[serde(default = "defaults::method")]
    pub method: String,
    /// Timeout of one attempt (request and response body).
    #[serde(default = "defaults::timeout", with = "serde_text")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Static headers added to every request. Values may use `${VAR}`; they are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `Content-Type` when the record has no `content-type` header.
    #[serde(default = "defaults::content_type")]
    pub content_type: String,
    /// `partition`, `key` or `none`.
    #[serde(default)]
    pub ordering: Ordering,
    /// Records in flight per partition in `key` and `none` modes (1 in `partition` mode).
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// Speak HTTP/2 without TLS (h2c prior knowledge). Over TLS, HTTP/2 is chosen by ALPN.
    #[serde(default)]
    pub http2_prior_knowledge: bool,
    /// Connect to the endpoint over this Unix domain socket (an absolute path, e.g. in a
    /// volume shared with the application's container) instead of TCP; `url` must be
    /// `http://` and still gives the path and the `Host` header.
    #[serde(default)]
    pub unix_socket: Option<String>,
    /// Retry schedule and classification.
    #[serde(default)]
    pub retry: RetryConfig,
    /// What happens to a record that exhausted `max_attempts` or got a non-retryable answer.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Topic for `on_failure: dead_letter`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// What the endpoint receives: `raw`, `cloudevents-binary` or `cloudevents-structured`.
    #[serde(default)]
    pub format: Format,
    /// Attributes of the CloudEvents made from plain records (both CloudEvents formats).
    #[serde(default)]
    pub cloudevents: CloudEventsConfig,
    /// Standard Webhooks signatures on every request (any format); off without secrets.
    #[serde(default)]
    pub signing: SigningConfig,
    /// TLS toward an `https://` endpoint: private CA, client certificate (mTLS), server name.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Credentials that rotate: a bearer token read from a file, or OAuth2 client credentials.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Many records per request with a result per record; off when absent.
    #[serde(default)]
    pub batch: Option<BatchConfig>,
    /// One limit on requests in flight toward the endpoint for all partitions, fixed or
    /// adaptive; absent = fixed at what `kafka.memory_budget` pays for (one request per
    /// 512 KiB: 128 at 64 MiB).
    #[serde(default)]
    pub concurrency: Option<ConcurrencyConfig>,
    /// Records per second toward the endpoint for all partitions; absent = unlimited.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Pause fetching a partition whose oldest unacknowledged record has waited this long
    /// while nothing in the partition was acknowledged (endpoint down, long backoff); resumed
    /// at its next acknowledgement. Absent = never paused (fetching stops only when the
    /// partition's buffer is full).
    #[serde(default, with = "super::duration::serde_option_text")]
    #[schemars(with = "Option<String>")]
    pub pause_fetch_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// One record in flight per partition, in offset order.
    #[default]
    Partition,
    /// Up to `max_in_flight` per partition, never two with the same key.
    Key,
    /// Up to `max_in_flight` per partition, any order.
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Keep retrying; nothing behind the record (its partition, or its key) is committed.
    #[default]
    Block,
    /// Produce to `dead_letter_topic` with error headers, then acknowledge.
    DeadLetter,
    /// Log and count, then acknowledge.
    Drop,
}

/// Retry schedule: exponential backoff with full jitter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Cap of the first backoff.
    #[serde(default = "defaults::initial_backoff", with = "serde_text")]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,
    /// Cap of any backoff, and of an honoured `Retry-After`.
    #[serde(default = "defaults::max_backoff", with = "serde_text")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// Growth factor of the backoff cap per attempt.
    #[serde(default = "defaults::multiplier")]
    pub multiplier: f64,
    /// Attempts before the failure policy applies; 0 = unlimited.
    #[serde(default)]
    pub max_attempts: u32,
    /// Statuses that are retried: numbers or ranges like `"500-599"`.
    #[serde(default = "defaults::retryable_statuses")]
    pub retryable_statuses: Vec<StatusRange>,
}

/// A status code or an inclusive range, written `503` or `"500-599"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StatusRangeText", into = "StatusRangeText")]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl JsonSchema for StatusRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusRange".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An HTTP status (e.g. 503) or an inclusive range written \"500-599\".",
            "oneOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^[1-5][0-9]{2}(-[1-5][0-9]{2})?$" }
            ]
        })
    }
}

impl StatusRange {
    pub fn contains(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StatusRangeText {
    One(u16),
    Text(String),
}

impl TryFrom<StatusRangeText> for StatusRange {
    type Error = String;
    fn try_from(value: StatusRangeText) -> Result<Self, String> {
        let (low, high) = match value {
            StatusRangeText::One(code) => (code, code),
            StatusRangeText::Text(text) => {
                let parse = |part: &str| {
                    part.trim().parse::<u16>().map_err(|_| {
                        format!("`{text}` is not a status or a range like \"500-599\"")
                    })
                };
                match text.split_once('-') {
                    Some((low, high)) => (parse(low)?, parse(high)?),
                    None => {
                        let code = parse(&text)?;
                        (code, code)
                    }
                }
            }
        };
        if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
            return Err(format!(
                "status range {low}-{high} must lie within 100-599, low first"
            ));
        }
        Ok(StatusRange { low, high })
    }
}

impl From<StatusRange> for StatusRangeText {
    fn from(range: StatusRange) -> Self {
        if range.low == range.high {
            StatusRangeText::One(range.low)
        } else {
            StatusRangeText::Text(format!("{}-{}", range.low, range.high))
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: defaults::initial_backoff(),
            max_backoff: defaults::max_backoff(),
            multiplier: defaults::multiplier(),
            max_attempts: 0,
            retryable_statuses: defaults::retryable_statuses(),
        }
    }
}

impl DeliveryConfig {
    /// Checks every delivery key and parses the endpoint once. `consumed` are the consumed
    /// topics (a dead-letter topic among them would loop).
    pub(super) fn validate(&self, consumed: &[String]) -> Result<DeliverySettings, ConfigError> {
        let uri = parse_url(&self.url)?;
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| invalid("delivery.method", "is not an HTTP method; use POST, PUT, …"))?;
        if self.timeout.is_zero() {
            return Err(invalid("delivery.timeout", "must be more than 0"));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let key = format!("delivery.headers.{name}");
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&key, "is not a valid HTTP header name"))?;
            // The value may be a secret: the error names the key only.
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                invalid(
                    &key,
                    "value has characters not allowed in an HTTP header (control characters or newlines)",
                )
            })?;
            // Configured values (Authorization, API keys) are sensitive: never indexed by
            // HPACK and printed as `Sensitive` by Debug.
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let content_type = HeaderValue::from_str(&self.content_type)
            .map_err(|_| invalid("delivery.content_type", "is not a valid header value"))?;
        if self.max_in_flight == 0 || self.max_in_flight > 10_000 {
            return Err(invalid(
                "delivery.max_in_flight",
                "must be between 1 and 10000",
            ));
        }
        self.retry.validate()?;
        let format =
            format::validate(self.format, &self.cloudevents, &self.signing, &self.headers)?;
        // delivery.tls also applies to an https:// OAuth2 token endpoint.
        let token_over_https = self
            .auth
            .oauth2
            .as_ref()
            .is_some_and(|oauth2| oauth2.token_url.trim_start().starts_with("https://"));
        let unix_socket = unix_socket(self.unix_socket.as_deref(), &uri)?;
        let tls = self
            .tls
            .validate(uri.scheme_str() == Some("https") || token_over_https)?;
        let auth = self.auth.validate(&headers)?;
        let batch = self
            .batch
            .as_ref()
            .map(|batch| batch.validate(self.format))
            .transpose()?;
        Ok(DeliverySettings {
            endpoint: Endpoint {
                method,
                uri,
                headers,
                content_type,
                timeout: self.timeout,
                http2_prior_knowledge: self.http2_prior_knowledge,
                unix_socket,
                tls,
                auth,
            },
            ordering: self.ordering,
            in_flight_cap: match self.ordering {
                Ordering::Partition => 1,
                Ordering::Key | Ordering::None => self.max_in_flight,
            },
            retry: self.retry.clone(),
            on_failure: self.failure_action(consumed)?,
            format,
            batch,
            flow: super::flow::validate(
                self.concurrency.as_ref(),
                self.rate_limit.as_ref(),
                self.pause_fetch_after,
            )?,
        })
    }

    fn failure_action(&self, consumed: &[String]) -> Result<FailureAction, ConfigError> {
        match (self.on_failure, &self.dead_letter_topic) {
            (FailurePolicy::Block, _) => Ok(FailureAction::Block),
            (FailurePolicy::Drop, _) => Ok(FailureAction::Drop),
            (FailurePolicy::DeadLetter, None) => Err(invalid(
                "delivery.dead_letter_topic",
                "is required when on_failure is dead_letter; name the topic to produce failed records to",
            )),
            (FailurePolicy::DeadLetter, Some(topic)) if !valid_topic(topic) => Err(invalid(
                "delivery.dead_letter_topic",
                format!("`{topic}` is not a valid topic name"),
            )),
            (FailurePolicy::DeadLetter, Some(topic)) if consumed.contains(topic) => Err(invalid(
                "delivery.dead_letter_topic",
                "is also a consumed topic; failed records would loop back",
            )),
            (FailurePolicy::DeadLetter, Some(topic)) => Ok(FailureAction::DeadLetter {
                topic: topic.clone(),
            }),
        }
    }
}

impl RetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.initial_backoff.is_zero() {
            return Err(invalid(
                "delivery.retry.initial_backoff",
                "must be more than 0",
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(invalid(
                "delivery.retry.max_backoff",
                format!(
                    "({}) is less than delivery.retry.initial_backoff ({}); raise max_backoff or lower initial_backoff",
                    super::duration::format(self.max_backoff),
                    super::duration::format(self.initial_backoff)
                ),
            ));
        }
        if !(self.multiplier >= 1.0 && self.multiplier <= 100.0) {
            return Err(invalid(
                "delivery.retry.multiplier",
                "must be between 1 and 100",
            ));
        }
        if let Some(range) = self
            .retryable_statuses
            .iter()
            .find(|range| range.low < 300 && range.high >= 200)
        {
            return Err(invalid(
                "delivery.retry.retryable_statuses",
                format!(
                    "{}-{} includes 2xx, which is success and never retried",
                    range.low, range.high
                ),
            ));
        }
        Ok(())
    }
}

/// `delivery.unix_socket`: an absolute path that fits a socket address, with an `http://`
/// URL (TLS over a local socket is not offered: the socket's file permissions guard it).
fn unix_socket(path: Option<&str>, uri: &Uri) -> Result<Option<PathBuf>, ConfigError> {
    const KEY: &str = "delivery.unix_socket";
    /// `sun_path` holds 108 bytes on Linux, the terminating NUL included.
    const MAX_LEN: usize = 107;
    let Some(path) = path else {
        return Ok(None);
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(invalid(
            KEY,
            "is empty; give the socket's absolute path or remove the key",
        ));
    }
    if !path.starts_with('/') {
        return Err(invalid(
            KEY,
            "must be an absolute path, e.g. /var/run/app/webhook.sock",
        ));
    }
    if path.len() > MAX_LEN {
        return Err(invalid(
            KEY,
            "is longer than a Unix socket address allows (107 bytes); use a shorter path",
        ));
    }
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "delivery.url",
            "must be http:// with delivery.unix_socket (no TLS over a local socket); the URL gives the path and the Host header",
        ));
    }
    Ok(Some(PathBuf::from(path)))
}

/// The endpoint URL: `http(s)://host…`, without credentials.
fn parse_url(url: &str) -> Result<Uri, ConfigError> {
    if url.trim().is_empty() {
        return Err(invalid(
            "delivery.url",
            "is missing; give the endpoint, e.g. http://127.0.0.1:8080/events",
        ));
    }
    let uri: Uri = url.parse().map_err(|_| {
        invalid(
            "delivery.url",
            "is not a valid URL; write it like http://127.0.0.1:8080/events",
        )
    })?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(invalid(
            "delivery.url",
            "must start with http:// or https://",
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("delivery.url", "has no host"));
    }
    if uri
        .authority()
        .is_some_and(|authority| authority.as_str().contains('@'))
    {
        return Err(invalid(
            "delivery.url",
            "must not carry credentials; put them in delivery.headers (e.g. Authorization)",
        ));
    }
    Ok(uri)
}
