//! The process-level sections: `shutdown:` (SIGTERM timing), `admin:` (metrics and health
//! server) and `log:`, with their validation.

use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::duration::serde_text;
use super::{invalid, ConfigError};

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
    /// `false`: the per-partition gauges (`kws_consumer_lag_records`,
    /// `kws_oldest_unacked_record_age_seconds`, `kws_partition_paused`) are exported per topic
    /// instead, with `partition="all"`: the lag summed, the oldest age, the paused partitions
    /// counted. For members that own hundreds of partitions (three series each otherwise).
    #[serde(default = "defaults::partition_metrics")]
    pub partition_metrics: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: defaults::admin_listen(),
            partition_metrics: defaults::partition_metrics(),
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
impl ShutdownConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.drain_timeout >= self.termination_grace_period {
            return Err(invalid(
                "shutdown.drain_timeout",
                format!(
                    "({}) must be shorter than shutdown.termination_grace_period ({}), leaving time to commit and leave the group; lower it or raise the pod's terminationGracePeriodSeconds",
                    super::duration::format(self.drain_timeout),
                    super::duration::format(self.termination_grace_period)
                ),
            ));
        }
        Ok(())
    }

    /// How long the whole shutdown may take from the first signal: one second less than the
    /// pod's grace period, so the process exits on its own before the kubelet's SIGKILL.
    pub fn hard_deadline(&self) -> Duration {
        self.termination_grace_period
            .saturating_sub(Duration::from_secs(1))
    }
}

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|_| invalid("admin.listen", "is not an address like 0.0.0.0:9464"))
    }
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !valid_log_filter(&self.level) {
            return Err(invalid(
                "log.level",
                "is not a level (error, warn, info, debug, trace, off) or a filter like `info,kafka_webhook_sidecar=debug`",
            ));
        }
        Ok(())
    }
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
