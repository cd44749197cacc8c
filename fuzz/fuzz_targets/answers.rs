//! Fuzz target `answers`: what an endpoint answers, through the decisions the sidecar takes
//! on it: `Retry-After` parsing (`delivery::retry`), the status classification and the
//! decision after an attempt (`delivery::policy`), and a batch answer's per-entry results
//! (`delivery::results`, mapped to the batch's entries by `delivery::batch`). Invariants:
//!
//! - nothing panics;
//! - `Retry-After` as delay-seconds parses to exactly those seconds, and an HTTP date to the
//!   time from `now` (zero when past); the delay waited is capped at
//!   `delivery.retry.max_backoff` whatever the value (README: "honoured up to the same cap");
//! - a 2xx is acknowledged under every failure policy; a status in `retryable_statuses`
//!   waits (or, attempts exhausted, goes to the failure policy); any other status fails;
//! - a batch answer gives exactly one outcome per entry of the batch, as the documented rule
//!   (`delivery/results.rs`, README "Results") says, checked against an independent reading
//!   of the body with `serde_json::Value`: not a 2xx → every entry shares the outcome; a 2xx
//!   whose body is blank, not JSON, not a JSON object or an object without `statuses` (or
//!   `"statuses": null`) → every entry acknowledged; `statuses` a list of objects each with a
//!   string `entryId` and a string `status` → per entry, the last result naming it (SUCCESS
//!   acknowledges, DROP drops, RETRY or an unknown status retries, missing retries); any
//!   other `statuses` → the whole batch unreadable (retried). Bodies with a repeated member
//!   name are left out of the comparison (`serde_json::Value` keeps the last, the typed
//!   reading refuses them; both are fine readings of a body the JSON RFC says to avoid).
//!
//! Input: two bytes of status (100 + u16 % 500); one byte whose low 3 bits are the batch
//! size − 1 (1 to 8 entries, ids `t-0-0` …) and high 4 bits the attempt number − 1; one byte
//! of jitter (/256); the `Retry-After` value up to the first `\n`; then the body, read as the
//! answer to the batch under that status and again under a 200.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use kafka_webhook_sidecar::config::{BatchBody, CloudEventsSettings, RetryConfig, StatusRange};
use kafka_webhook_sidecar::delivery::batch::entry_outcomes;
use kafka_webhook_sidecar::delivery::policy::{self, Decision, FailureKind};
use kafka_webhook_sidecar::delivery::retry::{self, Verdict};
use kafka_webhook_sidecar::delivery::{AttemptOutcome, EntryResult};
use kafka_webhook_sidecar::format::BatchEncoder;
use kafka_webhook_sidecar::record::Record;
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// 2023-11-14T22:13:20Z: the time `Retry-After` dates are read against.
const NOW_SECS: u64 = 1_700_000_000;

fn configs() -> [RetryConfig; 2] {
    let defaults = RetryConfig::default();
    let tight = RetryConfig {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        multiplier: 100.0,
        max_attempts: 3,
        retryable_statuses: vec![StatusRange {
            low: 409,
            high: 409,
        }],
    };
    [defaults, tight]
}

fn record(offset: i64) -> Record {
    Record {
        topic: Arc::from("t"),
        partition: 0,
        offset,
        timestamp_ms: Some(1_700_000_000_000),
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"{}")),
        headers: Vec::new(),
        received_at: Instant::now(),
        target: None,
    }
}

/// Refuses a JSON document with a repeated member name anywhere.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut names = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !names.insert(name) {
                return Err(A::Error::custom("repeated member name"));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// The documented reading of a 2xx body, independent of `delivery::results`.
enum Expected {
    All,
    Invalid,
    PerEntry(HashMap<String, String>),
}

fn expected(body: &[u8]) -> Option<Expected> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Expected::All);
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        return Some(Expected::All);
    }
    // JSON that `Value` cannot hold (a number out of range, a lone surrogate) or that repeats
    // a member name: left out.
    let value = serde_json::from_slice::<Value>(body).ok()?;
    serde_json::from_slice::<Unique>(body).ok()?;
    let Some(statuses) = value.as_object().and_then(|object| object.get("statuses")) else {
        return Some(Expected::All);
    };
    if statuses.is_null() {
        return Some(Expected::All);
    }
    let Some(list) = statuses.as_array() else {
        return Some(Expected::Invalid);
    };
    let mut results = HashMap::new();
    for entry in list {
        let id = entry
            .as_object()
            .and_then(|o| o.get("entryId"))
            .and_then(Value::as_str);
        let status = entry
            .as_object()
            .and_then(|o| o.get("status"))
            .and_then(Value::as_str);
        match (id, status) {
            (Some(id), Some(status)) => {
                results.insert(id.to_string(), status.to_ascii_lowercase());
            }
            _ => return Some(Expected::Invalid),
        }
    }
    Some(Expected::PerEntry(results))
}

fn check_retry_after(value: &str, now: SystemTime) {
    let parsed = retry::parse_retry_after(value, now);
    if let Ok(seconds) = value.trim().parse::<u64>() {
        assert_eq!(parsed, Some(Duration::from_secs(seconds)), "{value:?}");
    } else if let Ok(date) = httpdate::parse_http_date(value.trim()) {
        let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
        assert_eq!(parsed, Some(wait), "{value:?}");
    } else {
        assert_eq!(
            parsed, None,
            "{value:?} is neither seconds nor an HTTP date"
        );
    }
    for config in configs() {
        for attempt in [1, 2, 64, u32::MAX] {
            let delay = retry::next_delay(&config, attempt, parsed, 0.999);
            assert!(delay <= config.max_backoff, "{value:?}: {delay:?}");
        }
    }
}

fn check_decisions(outcome: &AttemptOutcome, attempts: u32, unit: f64, now: SystemTime) {
    for config in configs() {
        let verdict = retry::classify(outcome, &config.retryable_statuses);
        if let AttemptOutcome::Status { status, .. } = outcome {
            let wanted = if (200..300).contains(status) {
                Verdict::Success
            } else if config
                .retryable_statuses
                .iter()
                .any(|r| r.contains(*status))
            {
                Verdict::Retry
            } else {
                Verdict::Fail
            };
            assert_eq!(verdict, wanted, "status {status}");
        }
        for failure in [
            FailureKind::Block,
            FailureKind::DeadLetter,
            FailureKind::Drop,
        ] {
            let decision = policy::decide(&config, failure, outcome, attempts, now, unit);
            match decision {
                Decision::Ack => assert_eq!(verdict, Verdict::Success, "{outcome:?}"),
                Decision::Wait { delay, blocking } => {
                    assert!(delay <= config.max_backoff, "{outcome:?}: waits {delay:?}");
                    assert!(!blocking || failure == FailureKind::Block, "{outcome:?}");
                    assert_ne!(verdict, Verdict::Success);
                }
                Decision::DeadLetter => assert_eq!(failure, FailureKind::DeadLetter),
                Decision::Drop => assert_ne!(failure, FailureKind::DeadLetter),
            }
        }
    }
}

fn encoder() -> BatchEncoder {
    BatchEncoder::new(
        BatchBody::JsonArray,
        CloudEventsSettings {
            source: "/kafka/{topic}".into(),
            event_type: "dev.knative.kafka.event".into(),
        },
        "application/json".into(),
    )
}

/// Checks the outcomes of one answer to `records` and returns them.
fn check_batch(
    outcome: &AttemptOutcome,
    records: &[Record],
    body: &[u8],
) -> Vec<Option<AttemptOutcome>> {
    let encoder = encoder();
    let outcomes = entry_outcomes(&encoder, records, outcome.clone(), body);
    assert_eq!(outcomes.len(), records.len(), "one outcome per entry");
    let status = match &outcome {
        AttemptOutcome::Status { status, .. } if (200..300).contains(status) => *status,
        _ => {
            for entry in &outcomes {
                assert_eq!(
                    entry.as_ref(),
                    Some(outcome),
                    "a non-2xx applies to every entry"
                );
            }
            return outcomes;
        }
    };
    let Some(expected) = expected(body) else {
        return outcomes;
    };
    for (record, entry) in records.iter().zip(&outcomes) {
        match &expected {
            Expected::All => assert_eq!(entry, &None, "a plain 2xx acknowledges every entry"),
            Expected::Invalid => assert!(
                matches!(entry, Some(AttemptOutcome::BadResults { status: s, .. }) if *s == status),
                "unreadable `statuses` retries the whole batch, got {entry:?}"
            ),
            Expected::PerEntry(results) => {
                let result = encoder
                    .entry_ids(record)
                    .iter()
                    .find_map(|id| results.get(id.as_str()).cloned());
                let wanted = match result.as_deref() {
                    Some("success") => None,
                    Some("drop") => Some(EntryResult::Drop),
                    Some(_) => Some(EntryResult::Retry),
                    None => Some(EntryResult::Missing),
                };
                let wanted = wanted.map(|result| AttemptOutcome::Entry { status, result });
                assert_eq!(entry, &wanted, "entry {}", record.idempotency_id());
            }
        }
    }
    outcomes
}

fuzz_target!(|data: &[u8]| {
    let [high, low, sizes, jitter, rest @ ..] = data else {
        return;
    };
    let status = 100 + u16::from_be_bytes([*high, *low]) % 500;
    let count = 1 + usize::from(sizes & 0x07);
    let attempts = 1 + u32::from(sizes >> 4);
    let unit = f64::from(*jitter) / 256.0;
    let (retry_after, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let retry_after = String::from_utf8_lossy(retry_after).into_owned();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    check_retry_after(&retry_after, now);
    check_retry_after(&retry_after, SystemTime::UNIX_EPOCH);
    let outcome = AttemptOutcome::Status {
        status,
        retry_after: (!retry_after.is_empty()).then_some(retry_after),
    };
    check_decisions(&outcome, attempts, unit, now);
    let records: Vec<Record> = (0..count as i64).map(record).collect();
    check_batch(&outcome, &records, body);
    // The same body under a 200, so every body is read as results; each entry's outcome then
    // goes through the decision.
    let ok = AttemptOutcome::Status {
        status: 200,
        retry_after: None,
    };
    for entry in check_batch(&ok, &records, body).into_iter().flatten() {
        check_decisions(&entry, attempts, unit, now);
    }
});
