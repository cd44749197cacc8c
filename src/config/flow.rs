//! Flow control keys of `delivery:` — `concurrency` (one limit on requests in flight toward
//! the endpoint, fixed or adaptive), `rate_limit` (records per second) and
//! `pause_fetch_after` — and their validation into [`FlowSettings`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::{invalid, ConfigError};

/// One limit on the requests in flight toward the endpoint, shared by all partitions; the
/// ordering modes' per-partition caps (`max_in_flight`) still apply inside it. It counts
/// requests: a batch request is one unit. Absent: fixed at one request per 512 KiB of
/// `kafka.memory_budget`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// `adaptive` (between `min` and `max`, AIMD on latency and overload answers) or `fixed`
    /// (always `max`).
    #[serde(default)]
    pub mode: ConcurrencyMode,
    /// `fixed`: the limit. `adaptive`: the ceiling.
    #[serde(default = "defaults::concurrency_max")]
    pub max: usize,
    /// `adaptive`: the floor, and where the limit starts.
    #[serde(default = "defaults::concurrency_min")]
    pub min: usize,
    /// `adaptive`: a window whose mean latency is above this factor × the lowest latency
    /// seen lowers the limit (× 0.9).
    #[serde(default = "defaults::latency_tolerance")]
    pub latency_tolerance: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyMode {
    /// Found from latency, 429/503/504, timeouts and connection errors.
    #[default]
    Adaptive,
    /// Always `max`.
    Fixed,
}

/// Records per second toward the endpoint, shared by all partitions (token bucket). A batch
/// takes one token per record. Absent: no rate limit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The sustained rate.
    pub records_per_second: f64,
    /// Records that may go at once after an idle time; default a tenth of a second's worth
    /// (at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// Validated flow control.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    pub concurrency: Option<ConcurrencySettings>,
    pub rate: Option<RateSettings>,
    /// Pause fetching a partition whose head record waited this long with no progress.
    pub pause_fetch_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConcurrencySettings {
    Fixed(usize),
    Adaptive {
        floor: usize,
        ceiling: usize,
        tolerance: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSettings {
    pub records_per_second: f64,
    pub burst: u32,
}

const MAX_CONCURRENCY: usize = 10_000;

pub(super) fn validate(
    concurrency: Option<&ConcurrencyConfig>,
    rate: Option<&RateLimitConfig>,
    pause_fetch_after: Option<Duration>,
) -> Result<FlowSettings, ConfigError> {
    let concurrency = concurrency
        .map(|config| {
            if config.max == 0 || config.max > MAX_CONCURRENCY {
                return Err(invalid(
                    "delivery.concurrency.max",
                    format!("must be between 1 and {MAX_CONCURRENCY}"),
                ));
            }
            Ok(match config.mode {
                ConcurrencyMode::Fixed => ConcurrencySettings::Fixed(config.max),
                ConcurrencyMode::Adaptive => {
                    if config.min == 0 || config.min > config.max {
                        return Err(invalid(
                            "delivery.concurrency.min",
                            "must be at least 1 and at most delivery.concurrency.max",
                        ));
                    }
                    if !(config.latency_tolerance > 1.0 && config.latency_tolerance <= 10.0) {
                        return Err(invalid(
                            "delivery.concurrency.latency_tolerance",
                            "must be more than 1 and at most 10 (e.g. 1.25)",
                        ));
                    }
                    ConcurrencySettings::Adaptive {
                        floor: config.min,
                        ceiling: config.max,
                        tolerance: config.latency_tolerance,
                    }
                }
            })
        })
        .transpose()?;
    let rate = rate
        .map(|config| {
            let per_second = config.records_per_second;
            if !(per_second > 0.0 && per_second <= 1e7) {
                return Err(invalid(
                    "delivery.rate_limit.records_per_second",
                    "must be more than 0 and at most 10000000",
                ));
            }
            let burst = match config.burst {
                Some(0) => {
                    return Err(invalid(
                        "delivery.rate_limit.burst",
                        "must be at least 1 (records)",
                    ))
                }
                Some(burst) => burst,
                None => ((per_second / 10.0).ceil() as u32).max(1),
            };
            Ok(RateSettings {
                records_per_second: per_second,
                burst,
            })
        })
        .transpose()?;
    if pause_fetch_after.is_some_and(|after| after < Duration::from_secs(1)) {
        return Err(invalid(
            "delivery.pause_fetch_after",
            "must be at least 1s (it is checked once a second)",
        ));
    }
    Ok(FlowSettings {
        concurrency,
        rate,
        pause_fetch_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> ConcurrencyConfig {
        ConcurrencyConfig {
            mode: ConcurrencyMode::Adaptive,
            max: defaults::concurrency_max(),
            min: defaults::concurrency_min(),
            latency_tolerance: defaults::latency_tolerance(),
        }
    }

    #[test]
    fn defaults_and_modes() {
        let none = validate(None, None, None).unwrap();
        assert_eq!(none.concurrency, None);
        assert_eq!(none.rate, None);
        let settings = validate(Some(&adaptive()), None, None).unwrap();
        assert!(matches!(
            settings.concurrency,
            Some(ConcurrencySettings::Adaptive { floor: 1, .. })
        ));
        let fixed = ConcurrencyConfig {
            mode: ConcurrencyMode::Fixed,
            max: 8,
            ..adaptive()
        };
        assert_eq!(
            validate(Some(&fixed), None, None).unwrap().concurrency,
            Some(ConcurrencySettings::Fixed(8))
        );
        let rate = RateLimitConfig {
            records_per_second: 200.0,
            burst: None,
        };
        assert_eq!(
            validate(None, Some(&rate), None).unwrap().rate,
            Some(RateSettings {
                records_per_second: 200.0,
                burst: 20
            })
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(Result<FlowSettings, ConfigError>, &str)> = vec![
            (
                validate(
                    Some(&ConcurrencyConfig {
                        max: 0,
                        ..adaptive()
                    }),
                    None,
                    None,
                ),
                "delivery.concurrency.max",
            ),
            (
                validate(
                    Some(&ConcurrencyConfig {
                        min: 500,
                        max: 10,
                        ..adaptive()
                    }),
                    None,
                    None,
                ),
                "delivery.concurrency.min",
            ),
            (
                validate(
                    Some(&ConcurrencyConfig {
                        latency_tolerance: 1.0,
                        ..adaptive()
                    }),
                    None,
                    None,
                ),
                "delivery.concurrency.latency_tolerance",
            ),
            (
                validate(
                    None,
                    Some(&RateLimitConfig {
                        records_per_second: 0.0,
                        burst: None,
                    }),
                    None,
                ),
                "delivery.rate_limit.records_per_second",
            ),
            (
                validate(
                    None,
                    Some(&RateLimitConfig {
                        records_per_second: 5.0,
                        burst: Some(0),
                    }),
                    None,
                ),
                "delivery.rate_limit.burst",
            ),
            (
                validate(None, None, Some(Duration::from_millis(10))),
                "delivery.pause_fetch_after",
            ),
        ];
        for (result, key) in cases {
            let error = result.expect_err(key).to_string();
            assert!(error.contains(key), "{error} should name {key}");
        }
    }
}
