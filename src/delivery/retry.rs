//! The retry decision: classify an attempt's outcome, compute the next backoff (exponential,
//! full jitter, capped), and honour `Retry-After`. Pure functions, no I/O.

use std::time::{Duration, SystemTime};

use crate::config::{RetryConfig, StatusRange};
use crate::ops::events::StatusClass;

/// What one HTTP attempt produced, as far as the retry decision cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The endpoint answered with this status (and maybe a `Retry-After` value).
    Status {
        status: u16,
        retry_after: Option<String>,
    },
    /// No answer within the attempt timeout.
    Timeout,
    /// Could not connect, or the connection broke before an answer.
    Connection(String),
    /// A batch entry the endpoint answered (`status`, a 2xx) with a per-entry RETRY or DROP,
    /// or left out of its results (RETRY).
    Entry { status: u16, result: EntryResult },
    /// A 2xx answer to a batch whose per-entry results could not be read (retried).
    BadResults { status: u16, reason: String },
}

/// A per-entry result that did not acknowledge the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryResult {
    /// `RETRY` (or an unknown status): send the entry again.
    Retry,
    /// Missing from the results: counts as RETRY.
    Missing,
    /// `DROP`: the receiver gives up on the entry.
    Drop,
}

impl AttemptOutcome {
    /// The status class, a bounded metrics label.
    pub fn class(&self) -> StatusClass {
        match self {
            Self::Status { status, .. } => StatusClass::of_status(*status),
            Self::Timeout => StatusClass::Timeout,
            Self::Connection(_) => StatusClass::ConnectionError,
            Self::Entry { status, .. } | Self::BadResults { status, .. } => {
                StatusClass::of_status(*status)
            }
        }
    }

    /// A short description for logs and the dead-letter `error` header (never a secret:
    /// it holds a status or a transport error of the connector, not request headers).
    pub fn describe(&self) -> String {
        match self {
            Self::Status { status, .. } => format!("HTTP {status}"),
            Self::Timeout => "attempt timed out".into(),
            Self::Connection(reason) => format!("connection error: {reason}"),
            Self::Entry { status, result } => match result {
                EntryResult::Retry => format!("HTTP {status}, entry result RETRY"),
                EntryResult::Missing => format!("HTTP {status}, entry missing from the results"),
                EntryResult::Drop => format!("HTTP {status}, entry result DROP"),
            },
            Self::BadResults { status, reason } => {
                format!("HTTP {status}, unreadable batch results: {reason}")
            }
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. }
            | Self::Entry { status, .. }
            | Self::BadResults { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The decision after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledged by the endpoint.
    Success,
    /// Try again after the given delay (unless `max_attempts` is reached).
    Retry,
    /// Will not succeed by retrying; the failure policy applies now.
    Fail,
}

/// Classifies an outcome: 2xx success; statuses in `retryable` and transport failures
/// retry; every other status (other 4xx, 3xx — redirects are not followed — 501) fails.
/// A batch entry answered RETRY or left out, and unreadable results, retry; DROP fails.
pub fn classify(outcome: &AttemptOutcome, retryable: &[StatusRange]) -> Verdict {
    match outcome {
        AttemptOutcome::Status { status, .. } if (200..300).contains(status) => Verdict::Success,
        AttemptOutcome::Status { status, .. } => {
            if retryable.iter().any(|range| range.contains(*status)) {
                Verdict::Retry
            } else {
                Verdict::Fail
            }
        }
        AttemptOutcome::Timeout | AttemptOutcome::Connection(_) => Verdict::Retry,
        AttemptOutcome::Entry {
            result: EntryResult::Retry | EntryResult::Missing,
            ..
        }
        | AttemptOutcome::BadResults { .. } => Verdict::Retry,
        AttemptOutcome::Entry {
            result: EntryResult::Drop,
            ..
        } => Verdict::Fail,
    }
}

/// The backoff ceiling before attempt `attempt + 1`, where `attempt` (1-based) just failed:
/// `min(max_backoff, initial_backoff * multiplier^(attempt-1))`.
pub fn backoff_ceiling(config: &RetryConfig, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(64) as i32;
    let ceiling = config.initial_backoff.as_secs_f64() * config.multiplier.powi(exponent);
    if !ceiling.is_finite() || ceiling >= config.max_backoff.as_secs_f64() {
        config.max_backoff
    } else {
        Duration::from_secs_f64(ceiling)
    }
}

/// The delay before the next attempt: full jitter (`uniform(0, ceiling)`, `unit` in [0, 1)
/// supplies the randomness) unless the endpoint asked for a `Retry-After`, which is honoured
/// up to `max_backoff`.
pub fn next_delay(
    config: &RetryConfig,
    attempt: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    match retry_after {
        Some(wait) => wait.min(config.max_backoff),
        None => backoff_ceiling(config, attempt).mul_f64(unit.clamp(0.0, 1.0)),
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (relative to `now`). A date in the
/// past means "now". Anything unparseable is ignored (the normal backoff applies).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// True when `max_attempts` (0 = unlimited) allows another attempt after `attempts`.
pub fn attempts_left(max_attempts: u32, attempts: u32) -> bool {
    max_attempts == 0 || attempts < max_attempts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> RetryConfig {
        RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: 0,
            retryable_statuses: RetryConfig::default().retryable_statuses,
        }
    }

    fn status(status: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn default_classification() {
        let retryable = config().retryable_statuses;
        for code in [200, 201, 204, 299] {
            assert_eq!(
                classify(&status(code), &retryable),
                Verdict::Success,
                "{code}"
            );
        }
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                classify(&status(code), &retryable),
                Verdict::Retry,
                "{code}"
            );
        }
        for code in [301, 302, 400, 401, 403, 404, 409, 422, 501] {
            assert_eq!(classify(&status(code), &retryable), Verdict::Fail, "{code}");
        }
        assert_eq!(
            classify(&AttemptOutcome::Timeout, &retryable),
            Verdict::Retry
        );
        assert_eq!(
            classify(&AttemptOutcome::Connection("refused".into()), &retryable),
            Verdict::Retry
        );
    }

    #[test]
    fn configured_classification() {
        let retryable = vec![StatusRange {
            low: 409,
            high: 409,
        }];
        assert_eq!(classify(&status(409), &retryable), Verdict::Retry);
        assert_eq!(classify(&status(503), &retryable), Verdict::Fail);
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let config = config();
        assert_eq!(backoff_ceiling(&config, 1), Duration::from_millis(100));
        assert_eq!(backoff_ceiling(&config, 2), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(&config, 3), Duration::from_millis(400));
        assert_eq!(backoff_ceiling(&config, 9), Duration::from_millis(25_600));
        assert_eq!(backoff_ceiling(&config, 10), Duration::from_secs(30));
        assert_eq!(backoff_ceiling(&config, u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_honoured_up_to_cap() {
        let config = config();
        assert_eq!(
            next_delay(&config, 1, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_delay(&config, 1, Some(Duration::from_secs(3600)), 0.5),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(120))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(120));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn attempt_limits() {
        assert!(attempts_left(0, 1_000_000));
        assert!(attempts_left(3, 2));
        assert!(!attempts_left(3, 3));
    }

    proptest! {
        #[test]
        fn jittered_delay_never_exceeds_ceiling(attempt in 1u32..100, unit in 0.0f64..1.0) {
            let config = config();
            let delay = next_delay(&config, attempt, None, unit);
            prop_assert!(delay <= backoff_ceiling(&config, attempt));
            prop_assert!(delay <= config.max_backoff);
        }
    }
}
