//! The `kafka:` section: consumer-group membership, and its validation.

use std::collections::BTreeMap;
use std::time::Duration;

use bytesize::ByteSize;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::duration::serde_text;
use super::{invalid, ConfigError};

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
    /// How long the broker may hold a fetch to gather more records before answering
    /// (librdkafka `fetch.wait.max.ms`, with `fetch.min.bytes` 1 MiB). `0ms` (the default):
    /// it answers as soon as one record is there, and waits up to 500 ms when there is
    /// none. A few ms trade that much added latency for fewer fetches, hence less CPU per
    /// record at moderate rates, but cost CPU when idle (an empty fetch per linger).
    #[serde(default = "defaults::fetch_linger", with = "serde_text")]
    #[schemars(with = "String")]
    pub fetch_linger: Duration,
    /// Bytes of records this member may hold at once, whatever the number of partitions it
    /// owns (`64MiB`, `256MiB`, `1GiB`): half for librdkafka's prefetch, shared by every
    /// partition of the subscribed topics, half for the records being delivered, shared by
    /// the assigned partitions. A record larger than a partition's share still flows, alone.
    #[serde(default = "defaults::memory_budget")]
    #[schemars(with = "String")]
    pub memory_budget: ByteSize,
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
/// librdkafka properties the sidecar sets itself: overriding them would break the
/// commit-after-acknowledgement guarantee or the group identity.
/// Below this the per-partition floors (one small fetch each) decide, not the budget.
const MIN_MEMORY_BUDGET: ByteSize = ByteSize::mib(8);
const MAX_MEMORY_BUDGET: ByteSize = ByteSize::gib(64);

const RESERVED_PROPERTIES: [&str; 4] = [
    "enable.auto.offset.store",
    "enable.auto.commit",
    "group.id",
    "bootstrap.servers",
];

impl KafkaConfig {
    /// Checks presence, ranges and the properties the sidecar manages itself.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(invalid(
                "kafka.bootstrap_servers",
                "is empty; give host:port of at least one broker",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(invalid(
                "kafka.group_id",
                "is empty; name the consumer group",
            ));
        }
        if self.topics.is_empty() {
            return Err(invalid("kafka.topics", "is empty; list at least one topic"));
        }
        if let Some(topic) = self.topics.iter().find(|topic| !valid_topic(topic)) {
            return Err(invalid(
                "kafka.topics",
                format!("`{topic}` is not a valid topic name (1-249 of a-z A-Z 0-9 . _ -)"),
            ));
        }
        if self.session_timeout < Duration::from_secs(1) {
            return Err(invalid("kafka.session_timeout", "must be at least 1s"));
        }
        if self.fetch_linger > Duration::from_secs(1) {
            return Err(invalid(
                "kafka.fetch_linger",
                "must be at most 1s (it is added to the latency of every record; a few ms is the useful range)",
            ));
        }
        if self.memory_budget < MIN_MEMORY_BUDGET || self.memory_budget > MAX_MEMORY_BUDGET {
            return Err(invalid(
                "kafka.memory_budget",
                format!(
                    "is {}; give between {} and {} (e.g. `64MiB`)",
                    self.memory_budget.display().iec(),
                    MIN_MEMORY_BUDGET.display().iec(),
                    MAX_MEMORY_BUDGET.display().iec()
                ),
            ));
        }
        if self.commit_interval.is_zero() {
            return Err(invalid("kafka.commit_interval", "must be more than 0"));
        }
        if let Some(reserved) = RESERVED_PROPERTIES
            .iter()
            .find(|reserved| self.properties.contains_key(**reserved))
        {
            return Err(invalid(
                &format!("kafka.properties.{reserved}"),
                "is managed by the sidecar (offsets are stored only after acknowledgement); remove it, or use the dedicated key",
            ));
        }
        Ok(())
    }

    /// The static membership id, if one is configured.
    pub fn instance_id(&self) -> Option<&str> {
        (!self.group_instance_id.is_empty()).then_some(self.group_instance_id.as_str())
    }
}

/// Kafka's topic name rule: 1-249 of `a-z A-Z 0-9 . _ -`, and not `.` or `..`.
pub(super) fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
