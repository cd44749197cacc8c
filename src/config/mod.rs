//! The YAML configuration: the file's types (whose doc comments are the reference), loading
//! with `${VAR}` substitution, and validation into runtime [`Settings`] before anything
//! touches the network.
//!
//! - [`kafka`], [`delivery`], [`service`]: one file per section, each with its validation;
//!   [`format`]: the `delivery` keys that shape the request (format, CloudEvents, signing).
//!   [`batch`]: `delivery.batch`. [`flow`]: `delivery.concurrency`, `rate_limit`, `pause_fetch_after`. [`tls`] and [`auth`]: `delivery.tls` and `delivery.auth` (their files are read by
//!   `delivery::tls` and `delivery::auth`, keeping this module free of I/O).
//! - [`settings`]: the validated runtime value; [`defaults`]: every default in one place.
//! - [`duration`] (`250ms`, `10s`) and [`interpolate`] (`${VAR}`, `${VAR:-default}`).

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod auth;
pub mod batch;
mod defaults;
pub mod delivery;
pub mod duration;
pub mod flow;
pub mod format;
pub mod interpolate;
pub mod kafka;
pub mod routes;
pub mod secret;
pub mod service;
pub mod settings;
pub mod tls;

pub use auth::{AuthConfig, AuthSettings, OAuth2Config, OAuth2Settings};
pub use batch::{BatchBody, BatchConfig, BatchEncoding, BatchSettings};
pub use delivery::{DeliveryConfig, FailurePolicy, Ordering, RetryConfig, StatusRange};
pub use flow::{
    ConcurrencyConfig, ConcurrencyMode, ConcurrencySettings, FlowSettings, RateLimitConfig,
    RateSettings,
};
pub use format::{CloudEventsConfig, Format, SigningConfig};
pub use interpolate::{interpolate, InterpolationError};
pub use kafka::{AssignmentStrategy, GroupProtocol, KafkaConfig, OffsetReset};
pub use routes::{Expression, RouteConfig, RouteSettings, Rule, RuleConfig};
pub use secret::Secret;
pub use service::{AdminConfig, LogConfig, LogFormat, ShutdownConfig};
pub use settings::{
    CloudEventsSettings, DeliverySettings, Endpoint, FailureAction, FormatSettings, Settings,
    SigningKey,
};
pub use tls::{TlsConfig, TlsSettings};

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
    /// Several subscriptions, each with its topics, filter, paths and delivery settings over
    /// `delivery`; absent = one route taking every record of `kafka.topics` to `delivery`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
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
                fetch_linger: defaults::fetch_linger(),
                memory_budget: defaults::memory_budget(),
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
                unix_socket: None,
                retry: RetryConfig::default(),
                on_failure: FailurePolicy::default(),
                dead_letter_topic: None,
                format: Format::default(),
                cloudevents: CloudEventsConfig::default(),
                signing: SigningConfig::default(),
                tls: TlsConfig::default(),
                auth: AuthConfig::default(),
                batch: None,
                concurrency: None,
                rate_limit: None,
                pause_fetch_after: None,
            },
            shutdown: ShutdownConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            routes: Vec::new(),
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
        let config = Self::read(path)?;
        config.settings()?;
        Ok(config)
    }

    /// Reads, substitutes environment variables and parses a config file, unvalidated.
    fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::parse(&text, |name| std::env::var(name).ok())
    }

    /// Parses and validates config text; `env` resolves `${VAR}`.
    pub fn from_yaml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let config = Self::parse(text, env)?;
        config.settings()?;
        Ok(config)
    }

    /// Substitutes `${VAR}` and parses, without validation.
    fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = interpolate(text, env)?;
        serde_yaml::from_str(&text).map_err(|error| {
            // serde_yaml errors quote the offending key or type, never the values of
            // other keys, so secrets from substitution stay out of the message.
            ConfigError::Yaml(error.to_string())
        })
    }

    /// Validates every value serde cannot (presence, ranges, relations between keys) and
    /// parses what the program uses into [`Settings`]. The error names the key and the fix.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        self.kafka.validate()?;
        let delivery = self.delivery.validate(&self.kafka.topics)?;
        let routes = routes::validate(
            &self.routes,
            &self.kafka.group_id,
            &self.kafka.topics,
            &self.delivery,
            &delivery,
        )?;
        self.shutdown.validate()?;
        let admin_listen = self.admin.validate()?;
        self.log.validate()?;
        Ok(Settings {
            kafka: self.kafka.clone(),
            delivery,
            routes,
            shutdown: self.shutdown.clone(),
            admin_listen,
            partition_metrics: self.admin.partition_metrics,
            log: self.log.clone(),
        })
    }
}

impl Settings {
    /// Reads, substitutes environment variables, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Config::read(path)?.settings()
    }
}
