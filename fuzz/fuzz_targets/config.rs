//! Fuzz target `config`: arbitrary text through the sidecar's config loading as
//! `--check-config` runs it (`Settings::load` = `${VAR}` interpolation, YAML into the config
//! types with their durations, byte sizes and status ranges, validation into `Settings`, CEL
//! route expressions compiled), and through the small parsers on their own. Invariants:
//!
//! - each returns `Ok` or an error, never panics;
//! - a config that validates can be used: its librdkafka properties, request template and
//!   route matcher build, a request and a route decision are made for a record, and its
//!   retry delay never exceeds `delivery.retry.max_backoff` (with or without `Retry-After`);
//! - a duration that parses is at most one year, and `duration::format` of it parses back
//!   to the same whole milliseconds;
//! - interpolation leaves text without `$` unchanged, and its errors name a line of the text.
//!
//! Input: a selector byte, then the text (lossy UTF-8). Selector % 4: 0 the whole config
//! (`Config::from_yaml` with the fixed environment of `env`), 1 a duration
//! (`config::duration::parse`), 2 `${VAR}` interpolation alone, 3 a byte size (`bytesize`,
//! as `kafka.memory_budget` reads it). A config whose expanded YAML names a file that
//! validation reads (`signing.secrets_file`) is skipped: the target reads no file (a
//! fuzzer-made `/dev/zero` would never end).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use kafka_webhook_sidecar::config::interpolate::{interpolate, InterpolationError};
use kafka_webhook_sidecar::config::{duration, Config, DeliverySettings, Settings};
use kafka_webhook_sidecar::delivery::retry;
use kafka_webhook_sidecar::format::RequestTemplate;
use kafka_webhook_sidecar::kafka::client_config;
use kafka_webhook_sidecar::record::Record;
use libfuzzer_sys::fuzz_target;

/// The environment `${VAR}` sees: the example configs' variables, an empty one, one that
/// breaks a line and one that looks like a variable itself.
fn env(name: &str) -> Option<String> {
    let value = match name {
        "KAFKA_BOOTSTRAP_SERVERS" => "kafka-0.kafka:9092,kafka-1.kafka:9092",
        "KAFKA_SASL_PASSWORD" => "not-a-real-password",
        "WEBHOOK_SECRET" => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "OAUTH_CLIENT_SECRET" => "not-a-real-client-secret",
        "APP_TOKEN" => "s3cr3t-token",
        "POD_NAME" => "kws-0",
        "EMPTY" => "",
        "NEWLINE" => "a\nb: c",
        "DOLLAR" => "${EMPTY}",
        _ => return None,
    };
    Some(value.to_string())
}

fn record() -> Record {
    Record {
        topic: Arc::from("orders"),
        partition: 2,
        offset: 41,
        timestamp_ms: Some(1_700_000_000_123),
        key: Some(Bytes::from_static(b"k-1")),
        value: Some(Bytes::from_static(br#"{"n":1}"#)),
        headers: vec![
            ("env".to_string(), Some(Bytes::from_static(b"prod"))),
            (
                "content-type".to_string(),
                Some(Bytes::from_static(b"application/json")),
            ),
        ],
        received_at: Instant::now(),
        target: None,
    }
}

/// What the sidecar does with a delivery section once it validated.
fn use_delivery(delivery: &DeliverySettings) {
    let config = &delivery.retry;
    for attempt in [1, 2, 3, 10, 64, 65, u32::MAX] {
        for retry_after in [None, Some(Duration::ZERO), Some(Duration::MAX)] {
            for unit in [0.0, 0.5, 0.999_999] {
                let delay = retry::next_delay(config, attempt, retry_after, unit);
                assert!(
                    delay <= config.max_backoff,
                    "a delay of {delay:?} exceeds max_backoff {:?}",
                    config.max_backoff
                );
            }
        }
    }
    let template = RequestTemplate::new(delivery);
    let record = record();
    let prepared = template.prepare(&record);
    let _ = template.request(&prepared, SystemTime::UNIX_EPOCH);
    if let Some(encoder) = template.batch_encoder() {
        let records = [record];
        let body = encoder.body(&records);
        let _ = template.prepare_batch(&records, body);
    }
}

fn use_settings(settings: &Settings) {
    for partitions in [1, 7, 100_000] {
        let _ = client_config::consumer_config(
            &settings.kafka,
            settings.delivery.batch.as_ref(),
            settings.delivery.ordering,
            partitions,
        );
    }
    let _ = client_config::producer_config(&settings.kafka);
    use_delivery(&settings.delivery);
    for route in &settings.routes {
        use_delivery(&route.delivery);
    }
    let matcher = common::matcher(&settings);
    let mut decisions = Vec::new();
    matcher.decide(&record(), &mut decisions);
    assert_eq!(
        decisions.len(),
        settings.routes.len(),
        "one decision per route"
    );
}

fn whole_config(text: &str) {
    // Validation reads `signing.secrets_file`: look at the parsed config (keys decoded from
    // any YAML escape) before letting it run.
    if let Ok(expanded) = interpolate(text, env) {
        if let Ok(config) = serde_yaml::from_str::<Config>(&expanded) {
            let in_a_route = config.routes.iter().any(|route| {
                route.delivery.as_ref().is_some_and(|delivery| {
                    serde_yaml::to_string(delivery)
                        .map_or(true, |text| text.contains("secrets_file"))
                })
            });
            if config.delivery.signing.secrets_file.is_some() || in_a_route {
                return;
            }
        }
    }
    let Ok(config) = Config::from_yaml(text, env) else {
        return;
    };
    let settings = config
        .settings()
        .expect("from_yaml validated this config: settings() again must agree");
    use_settings(&settings);
}

fn one_duration(text: &str) {
    let Ok(parsed) = duration::parse(text) else {
        return;
    };
    assert!(
        parsed <= Duration::from_secs(365 * 24 * 3600),
        "{text:?} parsed as {parsed:?}, more than a year"
    );
    let written = duration::format(parsed);
    let again = duration::parse(&written)
        .unwrap_or_else(|error| panic!("{text:?} → {written:?} does not parse back: {error}"));
    assert_eq!(
        again.as_millis(),
        parsed.as_millis(),
        "{text:?} → {written:?} changed the milliseconds"
    );
}

fn interpolation(text: &str) {
    match interpolate(text, env) {
        Ok(out) => {
            if !text.contains('$') {
                assert_eq!(out, text, "text without `$` changed");
            }
        }
        Err(error) => {
            let line = match &error {
                InterpolationError::Unset { line, .. }
                | InterpolationError::Unclosed { line }
                | InterpolationError::BadName { line, .. } => *line,
            };
            let lines = text.split_inclusive('\n').count();
            assert!(
                (1..=lines).contains(&line),
                "error {error} names line {line} of {lines}"
            );
        }
    }
}

fn byte_size(text: &str) {
    let _ = text.parse::<bytesize::ByteSize>();
    let _ = serde_yaml::from_str::<bytesize::ByteSize>(text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 4 {
        0 => whole_config(&text),
        1 => one_duration(&text),
        2 => interpolation(&text),
        _ => byte_size(&text),
    }
});
