//! The decision after one attempt, as a pure function of the outcome, the attempts so far,
//! the retry settings and the failure policy: `Ack`, `DeadLetter`, `Drop` or `Wait(delay)`.
//! Time and randomness are parameters, so every branch is unit-tested.

use std::time::{Duration, SystemTime};

use super::retry::{self, AttemptOutcome, EntryResult, Verdict};
use crate::config::RetryConfig;

/// The failure policy, without its producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Block,
    DeadLetter,
    Drop,
}

/// What to do with the record after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The endpoint acknowledged it.
    Ack,
    /// Failed for good: write it to the dead-letter topic.
    DeadLetter,
    /// Failed for good: drop it (count and log).
    Drop,
    /// Try again after `delay`. `blocking`: attempts are exhausted (or the answer was not
    /// retryable) and the `block` policy keeps the record anyway.
    Wait { delay: Duration, blocking: bool },
}

/// Decides after attempt number `attempts` (1-based). `now` dates an HTTP-date
/// `Retry-After`; `unit` in [0, 1) is the jitter's randomness.
pub fn decide(
    config: &RetryConfig,
    failure: FailureKind,
    outcome: &AttemptOutcome,
    attempts: u32,
    now: SystemTime,
    unit: f64,
) -> Decision {
    let verdict = retry::classify(outcome, &config.retryable_statuses);
    if verdict == Verdict::Success {
        return Decision::Ack;
    }
    // A batch entry the receiver answered DROP is given up by the receiver itself: to the
    // dead-letter topic when there is one, dropped otherwise (also under `block`, which would
    // retry forever what the receiver refuses).
    if let AttemptOutcome::Entry {
        result: EntryResult::Drop,
        ..
    } = outcome
    {
        return match failure {
            FailureKind::DeadLetter => Decision::DeadLetter,
            FailureKind::Block | FailureKind::Drop => Decision::Drop,
        };
    }
    let exhausted =
        verdict == Verdict::Fail || !retry::attempts_left(config.max_attempts, attempts);
    match (exhausted, failure) {
        (true, FailureKind::DeadLetter) => return Decision::DeadLetter,
        (true, FailureKind::Drop) => return Decision::Drop,
        _ => {}
    }
    let retry_after = match outcome {
        AttemptOutcome::Status {
            retry_after: Some(value),
            ..
        } => retry::parse_retry_after(value, now),
        _ => None,
    };
    Decision::Wait {
        delay: retry::next_delay(config, attempts, retry_after, unit),
        blocking: exhausted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_attempts,
            ..RetryConfig::default()
        }
    }

    fn status(status: u16, retry_after: Option<&str>) -> AttemptOutcome {
        AttemptOutcome::Status {
            status,
            retry_after: retry_after.map(str::to_string),
        }
    }

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn an_entry_the_receiver_drops_is_dead_lettered_or_dropped_never_retried() {
        let dropped = AttemptOutcome::Entry {
            status: 200,
            result: EntryResult::Drop,
        };
        for (failure, expected) in [
            (FailureKind::Block, Decision::Drop),
            (FailureKind::Drop, Decision::Drop),
            (FailureKind::DeadLetter, Decision::DeadLetter),
        ] {
            assert_eq!(decide(&config(0), failure, &dropped, 1, NOW, 0.5), expected);
        }
        let retried = AttemptOutcome::Entry {
            status: 200,
            result: EntryResult::Missing,
        };
        assert!(matches!(
            decide(&config(0), FailureKind::Block, &retried, 1, NOW, 0.5),
            Decision::Wait {
                blocking: false,
                ..
            }
        ));
    }

    #[test]
    fn success_is_acknowledged_under_every_policy() {
        for failure in [
            FailureKind::Block,
            FailureKind::DeadLetter,
            FailureKind::Drop,
        ] {
            assert_eq!(
                decide(&config(1), failure, &status(204, None), 1, NOW, 0.5),
                Decision::Ack
            );
        }
    }

    #[test]
    fn retryable_failures_wait_with_jitter_below_the_ceiling() {
        let decision = decide(
            &config(0),
            FailureKind::Drop,
            &status(503, None),
            3,
            NOW,
            0.5,
        );
        // Ceiling before attempt 4: 100 ms × 2² = 400 ms; half of it with unit 0.5.
        assert_eq!(
            decision,
            Decision::Wait {
                delay: Duration::from_millis(200),
                blocking: false
            }
        );
        for outcome in [
            AttemptOutcome::Timeout,
            AttemptOutcome::Connection("reset".into()),
        ] {
            assert!(matches!(
                decide(&config(0), FailureKind::Drop, &outcome, 1, NOW, 0.99),
                Decision::Wait { blocking: false, delay } if delay < Duration::from_millis(100)
            ));
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let wait = |value: &str| {
            decide(
                &config(0),
                FailureKind::Block,
                &status(429, Some(value)),
                1,
                NOW,
                0.0,
            )
        };
        assert_eq!(
            wait("7"),
            Decision::Wait {
                delay: Duration::from_secs(7),
                blocking: false
            }
        );
        assert_eq!(
            wait("3600"),
            Decision::Wait {
                delay: Duration::from_secs(30),
                blocking: false
            }
        );
        let date = httpdate::fmt_http_date(NOW + Duration::from_secs(12));
        assert_eq!(
            wait(&date),
            Decision::Wait {
                delay: Duration::from_secs(12),
                blocking: false
            }
        );
    }

    #[test]
    fn exhausted_attempts_go_to_the_failure_policy() {
        let failed = status(500, None);
        assert_eq!(
            decide(&config(3), FailureKind::Drop, &failed, 3, NOW, 0.0),
            Decision::Drop
        );
        assert_eq!(
            decide(&config(3), FailureKind::DeadLetter, &failed, 3, NOW, 0.0),
            Decision::DeadLetter
        );
        assert!(matches!(
            decide(&config(3), FailureKind::Block, &failed, 3, NOW, 0.0),
            Decision::Wait { blocking: true, .. }
        ));
        // One attempt short of the limit: still a plain retry.
        assert!(matches!(
            decide(&config(3), FailureKind::Drop, &failed, 2, NOW, 0.0),
            Decision::Wait {
                blocking: false,
                ..
            }
        ));
    }

    #[test]
    fn non_retryable_answers_skip_the_remaining_attempts() {
        for code in [400, 404, 422, 501, 302] {
            assert_eq!(
                decide(
                    &config(0),
                    FailureKind::DeadLetter,
                    &status(code, None),
                    1,
                    NOW,
                    0.0
                ),
                Decision::DeadLetter,
                "{code}"
            );
            assert!(matches!(
                decide(
                    &config(0),
                    FailureKind::Block,
                    &status(code, None),
                    1,
                    NOW,
                    0.0
                ),
                Decision::Wait { blocking: true, .. }
            ));
        }
    }
}
