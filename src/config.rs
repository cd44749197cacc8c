//! The YAML configuration: its types (whose doc comments are the reference), loading with
//! `${VAR}` substitution, and validation before anything touches the network.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::serde_text;
use crate::interpolate::{interpolate, InterpolationError};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to consume from.
    pub kafka: KafkaConfig,
    /// Where and how to deliver.
    pub delivery: DeliveryConfig,
    /// SIGTERM behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// The admin HTTP server (metrics, health).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// Consumer-group membership.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]` of the brokers (librdkafka `bootstrap.servers`).
    pub bootstrap_servers: String,
    /// The consumer group. Instances with the same group share the partitions.
    pub group_id: String,
    /// Topics to consume (at least one).
    pub topics: Vec<String>,
    /// Static membership id (`group.instance.id`), e.g. the pod name. Empty = dynamic.
    #[serde(default)]
    pub group_instance_id: String,
    /// Partition assignment strategy for the classic protocol.
    #[serde(default)]
    pub assignment_strategy: AssignmentStrategy,
    /// `classic` (client-side assignors) or `consumer` (KIP-848, broker-side assignment).
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// `session.timeout.ms`: how long a silent member keeps its partitions.
    #[serde(default = "defaults::session_timeout", with = "serde_text")]
    #[schemars(with = "String")]
    pub session_timeout: Duration,
    /// `auto.commit.interval.ms`: how often acknowledged offsets are committed.
    #[serde(default = "defaults::commit_interval", with = "serde_text")]
    #[schemars(with = "String")]
    pub commit_interval: Duration,
    /// Where to start when the group has no committed offset: `earliest` or `latest`.
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// How long a revoked partition may take to finish its in-flight deliveries before
    /// they are abandoned (not committed; the next owner redelivers them).
    #[serde(default = "defaults::rebalance_drain_timeout", with = "serde_text")]
    #[schemars(with = "String")]
    pub rebalance_drain_timeout: Duration,
    /// Extra librdkafka properties, passed through unchanged (SASL, TLS, fetch tuning).
    /// They override the values derived from the keys above.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AssignmentStrategy {
    /// Incremental: only moved partitions pause during a rebalance.
    #[default]
    CooperativeSticky,
    /// Eager: every partition is revoked and reassigned on each rebalance.
    Range,
    /// Eager, partitions dealt round-robin across members.
    Roundrobin,
}

impl AssignmentStrategy {
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Self::CooperativeSticky => "cooperative-sticky",
            Self::Range => "range",
            Self::Roundrobin => "roundrobin",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    #[default]
    Classic,
    Consumer,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    #[default]
    Earliest,
    Latest,
}

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
    /// Retry schedule and classification.
    #[serde(default)]
    pub retry: RetryConfig,
    /// What happens to a record that exhausted `max_attempts` or got a non-retryable answer.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Topic for `on_failure: dead_letter`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
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

/// SIGTERM / SIGINT behaviour.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Time to finish in-flight deliveries after SIGTERM before abandoning them.
    #[serde(default = "defaults::drain_timeout", with = "serde_text")]
    #[schemars(with = "String")]
    pub drain_timeout: Duration,
    /// The pod's `terminationGracePeriodSeconds`; `drain_timeout` must be shorter, leaving
    /// room to commit and leave the group. Set it to match the pod spec.
    #[serde(default = "defaults::termination_grace_period", with = "serde_text")]
    #[schemars(with = "String")]
    pub termination_grace_period: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: defaults::drain_timeout(),
            termination_grace_period: defaults::termination_grace_period(),
        }
    }
}

/// The admin server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address of `/metrics`, `/healthz`, `/readyz`. Port 0 picks a free port.
    #[serde(default = "defaults::admin_listen")]
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: defaults::admin_listen(),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` or `text`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `kafka_webhook_sidecar=debug,info`.
    /// `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: defaults::log_level(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

mod defaults {
    use super::StatusRange;
    use std::time::Duration;

    pub fn session_timeout() -> Duration {
        Duration::from_secs(45)
    }
    pub fn commit_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn rebalance_drain_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn method() -> String {
        "POST".into()
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn content_type() -> String {
        "application/octet-stream".into()
    }
    pub fn max_in_flight() -> usize {
        64
    }
    pub fn initial_backoff() -> Duration {
        Duration::from_millis(100)
    }
    pub fn max_backoff() -> Duration {
        Duration::from_secs(30)
    }
    pub fn multiplier() -> f64 {
        2.0
    }
    pub fn retryable_statuses() -> Vec<StatusRange> {
        [(408, 408), (425, 425), (429, 429), (500, 500), (502, 599)]
            .into_iter()
            .map(|(low, high)| StatusRange { low, high })
            .collect()
    }
    pub fn drain_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub fn termination_grace_period() -> Duration {
        Duration::from_secs(30)
    }
    pub fn admin_listen() -> String {
        "0.0.0.0:9464".into()
    }
    pub fn log_level() -> String {
        "info".into()
    }
}

/// A configuration problem: the key it concerns and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config: {0}")]
    Interpolation(#[from] InterpolationError),
    #[error("config: {0}")]
    Yaml(String),
    #[error("config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

impl Config {
    /// A config with the four required values and every other key at its default, for
    /// programs (and tests) that build a config in code instead of YAML.
    pub fn new(bootstrap_servers: &str, group_id: &str, topics: &[&str], url: &str) -> Config {
        Config {
            kafka: KafkaConfig {
                bootstrap_servers: bootstrap_servers.to_string(),
                group_id: group_id.to_string(),
                topics: topics.iter().map(|topic| topic.to_string()).collect(),
                group_instance_id: String::new(),
                assignment_strategy: AssignmentStrategy::default(),
                group_protocol: GroupProtocol::default(),
                session_timeout: defaults::session_timeout(),
                commit_interval: defaults::commit_interval(),
                auto_offset_reset: OffsetReset::default(),
                rebalance_drain_timeout: defaults::rebalance_drain_timeout(),
                properties: BTreeMap::new(),
            },
            delivery: DeliveryConfig {
                url: url.to_string(),
                method: defaults::method(),
                timeout: defaults::timeout(),
                headers: BTreeMap::new(),
                content_type: defaults::content_type(),
                ordering: Ordering::default(),
                max_in_flight: defaults::max_in_flight(),
                http2_prior_knowledge: false,
                retry: RetryConfig::default(),
                on_failure: FailurePolicy::default(),
                dead_letter_topic: None,
            },
            shutdown: ShutdownConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        }
    }

    /// The config as YAML (durations written like `10s`), as `from_yaml` reads it back.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a config of plain strings, numbers and maps serializes")
    }

    /// The JSON Schema of the config file (checked in as `config/config.schema.json`), for
    /// editors that validate YAML against a schema.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Config);
        let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes to JSON");
        text.push('\n');
        text
    }

    /// Reads, substitutes environment variables, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::from_yaml(&text, |name| std::env::var(name).ok())
    }

    /// Parses and validates config text; `env` resolves `${VAR}`.
    pub fn from_yaml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = interpolate(text, env)?;
        let config: Config = serde_yaml::from_str(&text).map_err(|error| {
            // serde_yaml errors quote the offending key or type, never the values of
            // other keys, so secrets from substitution stay out of the message.
            ConfigError::Yaml(error.to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that serde cannot: presence, ranges and relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kafka = &self.kafka;
        if kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid(
                "kafka.bootstrap_servers",
                "is empty; give host:port of at least one broker",
            ));
        }
        if kafka.group_id.trim().is_empty() {
            return Err(invalid(
                "kafka.group_id",
                "is empty; name the consumer group",
            ));
        }
        if kafka.topics.is_empty() {
            return Err(invalid("kafka.topics", "is empty; list at least one topic"));
        }
        if let Some(topic) = kafka.topics.iter().find(|topic| !valid_topic(topic)) {
            return Err(invalid(
                "kafka.topics",
                format!("`{topic}` is not a valid topic name (1-249 of a-z A-Z 0-9 . _ -)"),
            ));
        }
        if kafka.session_timeout < Duration::from_secs(1) {
            return Err(invalid("kafka.session_timeout", "must be at least 1s"));
        }
        if kafka.commit_interval.is_zero() {
            return Err(invalid("kafka.commit_interval", "must be more than 0"));
        }
        for reserved in [
            "enable.auto.offset.store",
            "enable.auto.commit",
            "group.id",
            "bootstrap.servers",
        ] {
            if kafka.properties.contains_key(reserved) {
                return Err(invalid(
                    &format!("kafka.properties.{reserved}"),
                    "is managed by the sidecar (offsets are stored only after acknowledgement); remove it, or use the dedicated key",
                ));
            }
        }

        let delivery = &self.delivery;
        validate_url(&delivery.url)?;
        if http::Method::from_bytes(delivery.method.as_bytes()).is_err() {
            return Err(invalid(
                "delivery.method",
                "is not an HTTP method; use POST, PUT, …",
            ));
        }
        if delivery.timeout.is_zero() {
            return Err(invalid("delivery.timeout", "must be more than 0"));
        }
        for (name, value) in &delivery.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    &format!("delivery.headers.{name}"),
                    "is not a valid HTTP header name",
                ));
            }
            if http::HeaderValue::from_str(value).is_err() {
                // The value may be a secret: name the key only.
                return Err(invalid(
                    &format!("delivery.headers.{name}"),
                    "value has characters not allowed in an HTTP header (control characters or newlines)",
                ));
            }
        }
        if http::HeaderValue::from_str(&delivery.content_type).is_err() {
            return Err(invalid(
                "delivery.content_type",
                "is not a valid header value",
            ));
        }
        if delivery.max_in_flight == 0 || delivery.max_in_flight > 10_000 {
            return Err(invalid(
                "delivery.max_in_flight",
                "must be between 1 and 10000",
            ));
        }
        let retry = &delivery.retry;
        if retry.initial_backoff.is_zero() {
            return Err(invalid(
                "delivery.retry.initial_backoff",
                "must be more than 0",
            ));
        }
        if retry.max_backoff < retry.initial_backoff {
            return Err(invalid(
                "delivery.retry.max_backoff",
                format!(
                    "({}) is less than delivery.retry.initial_backoff ({}); raise max_backoff or lower initial_backoff",
                    crate::duration::format(retry.max_backoff),
                    crate::duration::format(retry.initial_backoff)
                ),
            ));
        }
        if !(retry.multiplier >= 1.0 && retry.multiplier <= 100.0) {
            return Err(invalid(
                "delivery.retry.multiplier",
                "must be between 1 and 100",
            ));
        }
        if let Some(range) = retry
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
        match (delivery.on_failure, &delivery.dead_letter_topic) {
            (FailurePolicy::DeadLetter, None) => {
                return Err(invalid(
                    "delivery.dead_letter_topic",
                    "is required when on_failure is dead_letter; name the topic to produce failed records to",
                ))
            }
            (FailurePolicy::DeadLetter, Some(topic)) if !valid_topic(topic) => {
                return Err(invalid("delivery.dead_letter_topic", format!("`{topic}` is not a valid topic name")))
            }
            (FailurePolicy::DeadLetter, Some(topic)) if kafka.topics.contains(topic) => {
                return Err(invalid(
                    "delivery.dead_letter_topic",
                    "is also a consumed topic; failed records would loop back",
                ))
            }
            _ => {}
        }

        let shutdown = &self.shutdown;
        if shutdown.drain_timeout >= shutdown.termination_grace_period {
            return Err(invalid(
                "shutdown.drain_timeout",
                format!(
                    "({}) must be shorter than shutdown.termination_grace_period ({}), leaving time to commit and leave the group; lower it or raise the pod's terminationGracePeriodSeconds",
                    crate::duration::format(shutdown.drain_timeout),
                    crate::duration::format(shutdown.termination_grace_period)
                ),
            ));
        }
        if self.admin.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "admin.listen",
                "is not an address like 0.0.0.0:9464",
            ));
        }
        if !valid_log_filter(&self.log.level) {
            return Err(invalid(
                "log.level",
                "is not a level (error, warn, info, debug, trace, off) or a filter like `info,kafka_webhook_sidecar=debug`",
            ));
        }
        Ok(())
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .listen
            .parse()
            .expect("admin.listen was validated as a socket address")
    }

    /// Records in flight per partition, as the ordering mode allows.
    pub fn in_flight_cap(&self) -> usize {
        match self.delivery.ordering {
            Ordering::Partition => 1,
            Ordering::Key | Ordering::None => self.delivery.max_in_flight,
        }
    }
}

fn validate_url(url: &str) -> Result<(), ConfigError> {
    if url.trim().is_empty() {
        return Err(invalid(
            "delivery.url",
            "is missing; give the endpoint, e.g. http://127.0.0.1:8080/events",
        ));
    }
    let uri: http::Uri = url.parse().map_err(|_| {
        invalid(
            "delivery.url",
            "is not a valid URL; write it like http://127.0.0.1:8080/events",
        )
    })?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(invalid(
                "delivery.url",
                "must start with http:// or https://",
            ))
        }
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
    Ok(())
}

/// A `tracing` filter whose every directive names a known level (`info`,
/// `target=debug`): a bare typo like `verbose` would otherwise be read as a target name and
/// silently turn logging off.
fn valid_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let known = |level: &str| LEVELS.contains(&level.trim().to_ascii_lowercase().as_str());
    !filter.trim().is_empty()
        && filter
            .split(',')
            .all(|directive| match directive.rsplit_once('=') {
                Some((target, level)) => !target.trim().is_empty() && known(level),
                None => known(directive),
            })
        && tracing_subscriber::EnvFilter::try_new(filter).is_ok()
}

fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
