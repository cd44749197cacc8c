//! Fuzz target `cloudevents`: records that claim to be CloudEvents, with any `ce_*` headers
//! (names, values, null values, repeats) and any `content-type`, through the detection of
//! `format::cloudevent` and the HTTP requests of `format: raw`, `cloudevents-binary` and
//! `cloudevents-structured` (`format::request`). `bodies` already checks the bodies of
//! well-formed binary-mode events and of structured values; this target covers the headers.
//! Invariants (README "What the endpoint receives"):
//!
//! - nothing panics, and every event has `specversion`, `id`, `source` and `type` as
//!   non-empty strings;
//! - detection: a record whose first `content-type` header is
//!   `application/cloudevents+json` is a structured-mode event when its value is a valid
//!   one (a JSON object holding the required attributes), sent as it is; else a record with a
//!   `ce_specversion` header is a binary-mode event exactly when every `ce_*` header has a
//!   UTF-8 value and a name of lowercase letters and digits, none repeated (but
//!   `ce_datacontenttype`), the required ones non-empty and its `datacontenttype` no
//!   CloudEvents media type: its attributes are those headers in order (`specversion`
//!   first), its data the value; any other record is wrapped
//!   (`id` = `{topic}-{partition}-{offset}`) with a `datacontenttype` that is a valid header
//!   value and no CloudEvents media type;
//! - binary mode: each attribute is a `ce-{name}` header whose percent-decoded value is the
//!   attribute; the body is the data; `Content-Type` never names a CloudEvents media type (a
//!   receiver would read the request as structured or as a batch);
//! - structured mode: the body is a JSON object with the required attributes (the record's
//!   value itself for a structured-mode event);
//! - every format: each Kafka header not carried as an attribute comes back, name and value,
//!   from the `kafka-header-{name}` and `kafka-header-b64` headers, in order.
//!
//! Input: one flag byte, the value, then up to 12 headers, separated by `\n--\n`; a header
//! is `name=value` (no `=`: a null value). Flags: bit 0 a tombstone, bit 1 the four required
//! `ce_*` headers first (valid values), bit 2 `content-type: application/cloudevents+json`
//! first, bit 3 a null key.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use kafka_webhook_sidecar::config::{CloudEventsSettings, Config, Format};
use kafka_webhook_sidecar::format::cloudevent::{attribute_text, CloudEvent, Data};
use kafka_webhook_sidecar::format::{cloudevents_http, RequestTemplate};
use kafka_webhook_sidecar::record::Record;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SEPARATOR: &[u8] = b"\n--\n";
const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

fn settings() -> CloudEventsSettings {
    CloudEventsSettings {
        source: "/kafka/{topic}".into(),
        event_type: "dev.knative.kafka.event".into(),
    }
}

/// The request templates of the three formats (default CloudEvents settings, JSON records).
fn templates() -> &'static [(Format, RequestTemplate)] {
    static TEMPLATES: OnceLock<Vec<(Format, RequestTemplate)>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        [
            Format::Raw,
            Format::CloudeventsBinary,
            Format::CloudeventsStructured,
        ]
        .into_iter()
        .map(|format| {
            let mut config = Config::new("k:9092", "g", &["orders"], "http://app:8080/events");
            config.delivery.format = format;
            config.delivery.content_type = "application/json".into();
            let settings = config.settings().expect("a valid config");
            (format, RequestTemplate::new(&settings.delivery))
        })
        .collect()
    })
}

fn record(flags: u8, value: &[u8], header_parts: &[&[u8]]) -> Record {
    let mut headers = Vec::new();
    if flags & 4 != 0 {
        headers.push((
            "content-type".to_string(),
            Some(Bytes::from_static(b"application/cloudevents+json")),
        ));
    }
    if flags & 2 != 0 {
        for (name, text) in [
            ("ce_specversion", "1.0"),
            ("ce_id", "e-1"),
            ("ce_source", "/s"),
            ("ce_type", "t"),
        ] {
            headers.push((name.to_string(), Some(Bytes::from_static(text.as_bytes()))));
        }
    }
    for part in header_parts.iter().take(12) {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(at) => (&part[..at], Some(Bytes::copy_from_slice(&part[at + 1..]))),
            None => (*part, None),
        };
        headers.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Record {
        topic: Arc::from("orders"),
        partition: 3,
        offset: 42,
        timestamp_ms: Some(1_700_000_000_000),
        key: (flags & 8 == 0).then(|| Bytes::from_static(b"k-1")),
        value: (flags & 1 == 0).then(|| Bytes::copy_from_slice(value)),
        headers,
        received_at: Instant::now(),
        target: None,
    }
}

fn is_cloudevents_type(content_type: &str) -> bool {
    content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/cloudevents")
}

fn is_structured(record: &Record) -> bool {
    record.header_str("content-type").is_some_and(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/cloudevents+json")
    })
}

/// The attributes a valid binary-mode record carries, by the documented rule.
fn binary_attributes(record: &Record) -> Option<Vec<(String, String)>> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    let mut declared = record.header_str("content-type").map(str::to_string);
    for (name, value) in &record.headers {
        let Some(name) = name.strip_prefix("ce_") else {
            continue;
        };
        let text = std::str::from_utf8(value.as_deref()?).ok()?;
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid || attributes.iter().any(|(key, _)| key == name) {
            return None;
        }
        if name == "datacontenttype" {
            declared.get_or_insert_with(|| text.to_string());
        } else {
            attributes.push((name.to_string(), text.to_string()));
        }
    }
    if declared.as_deref().is_some_and(is_cloudevents_type) {
        return None;
    }
    let present = |required: &str| {
        attributes
            .iter()
            .any(|(key, text)| key == required && !text.is_empty())
    };
    if !REQUIRED.iter().all(|required| present(required)) {
        return None;
    }
    if let Some(at) = attributes.iter().position(|(key, _)| key == "specversion") {
        let spec = attributes.remove(at);
        attributes.insert(0, spec);
    }
    Some(attributes)
}

fn check_detection(record: &Record, event: &CloudEvent) {
    for required in REQUIRED {
        assert!(
            event
                .attribute(required)
                .is_some_and(|text| !text.is_empty())
                && event
                    .attributes
                    .iter()
                    .any(|(key, value)| key == required && value.is_string()),
            "the event has no `{required}` string"
        );
    }
    if let Some(document) = &event.structured {
        assert!(is_structured(record), "structured without the media type");
        assert_eq!(Some(document), record.value.as_ref(), "the value, as it is");
        let object: serde_json::Map<String, Value> =
            serde_json::from_slice(document).expect("a structured event is a JSON object");
        for required in REQUIRED {
            assert!(
                object.get(required).is_some_and(Value::is_string),
                "{required}"
            );
        }
        assert!(!event.from_headers);
        let declared = event.datacontenttype.as_deref().unwrap_or_default();
        assert!(
            !is_cloudevents_type(declared),
            "kept declaring {declared:?}"
        );
        return;
    }
    let binary = (!is_structured(record)
        && record
            .headers
            .iter()
            .any(|(name, _)| name == "ce_specversion"))
    .then(|| binary_attributes(record))
    .flatten();
    match binary {
        Some(attributes) => {
            assert!(event.from_headers, "a valid binary-mode event was wrapped");
            let kept: Vec<(String, String)> = event
                .attributes
                .iter()
                .map(|(key, value)| (key.clone(), attribute_text(value)))
                .collect();
            assert_eq!(kept, attributes, "the attributes are the ce_* headers");
            match (&event.data, &record.value) {
                (Data::Bytes(data), Some(value)) => assert_eq!(data, value),
                (Data::None, None) => {}
                other => panic!("binary-mode data is the value: {other:?}"),
            }
        }
        None => {
            assert!(!event.from_headers, "an invalid binary-mode event was kept");
            assert_eq!(
                event.attribute("id"),
                Some(record.idempotency_id()),
                "a wrapped record's id"
            );
            let declared = event
                .datacontenttype
                .as_deref()
                .expect("a wrapped record declares its data");
            assert!(
                http::HeaderValue::from_str(declared).is_ok(),
                "{declared:?}"
            );
            assert!(!is_cloudevents_type(declared), "wrapped as {declared:?}");
        }
    }
}

fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = text.get(at + 1..at + 3).expect("two characters after `%`");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits after `%`"));
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    out
}

/// The Kafka headers a receiver reads back from the `kafka-header-*` headers.
fn kafka_headers(headers: &HeaderMap) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if name.as_str() == "kafka-header-b64" {
            let text = value.to_str().expect("base64 is ASCII");
            let (name, value) = match text.split_once(':') {
                Some((name, value)) => (name, Some(value)),
                None => (text, None),
            };
            let decode = |text: &str| BASE64.decode(text).expect("kafka-header-b64 is base64");
            out.push((decode(name), value.map(decode)));
        } else if let Some(kafka) = name.as_str().strip_prefix("kafka-header-") {
            out.push((kafka.as_bytes().to_vec(), Some(value.as_bytes().to_vec())));
        }
    }
    out
}

fn check_requests(record: &Record, event: &CloudEvent) {
    for (format, template) in templates() {
        let prepared = template.prepare(record);
        let request = template.request(&prepared, SystemTime::UNIX_EPOCH);
        let headers = request.headers();
        let carried =
            |name: &str| *format != Format::Raw && event.from_headers && name.starts_with("ce_");
        let mut expected: Vec<(Vec<u8>, Option<Vec<u8>>)> = record
            .headers
            .iter()
            .filter(|(name, _)| !carried(name))
            .map(|(name, value)| (name.as_bytes().to_vec(), value.as_ref().map(|v| v.to_vec())))
            .collect();
        let mut given = kafka_headers(headers);
        // The HTTP header map groups values by name: compare as multisets.
        expected.sort();
        given.sort();
        assert_eq!(given, expected, "{format:?}: the Kafka headers come back");
        match format {
            Format::Raw => {}
            Format::CloudeventsBinary => {
                for (name, value) in &event.attributes {
                    let header = headers
                        .get(format!("ce-{name}"))
                        .unwrap_or_else(|| panic!("no ce-{name} header"));
                    let text = header.to_str().expect("percent-encoded is ASCII");
                    assert_eq!(
                        percent_decoded(text),
                        attribute_text(value).into_bytes(),
                        "ce-{name}"
                    );
                }
                if let Some(content_type) = headers.get(http::header::CONTENT_TYPE) {
                    let text = content_type.to_str().unwrap_or_default();
                    assert!(
                        !is_cloudevents_type(text),
                        "binary mode with Content-Type {text:?}"
                    );
                }
                let body = cloudevents_http::binary(event, &mut HeaderMap::new());
                match &event.data {
                    Data::None => assert!(body.is_empty(), "no data, no body"),
                    Data::Bytes(data) => assert_eq!(&body, data, "the body is the data"),
                    Data::Json(_) => {}
                }
            }
            Format::CloudeventsStructured => {
                let body = cloudevents_http::structured(event, &mut HeaderMap::new());
                let object: serde_json::Map<String, Value> =
                    serde_json::from_slice(&body).expect("a structured body is a JSON object");
                for required in REQUIRED {
                    assert!(
                        object.get(required).is_some_and(Value::is_string),
                        "{required}"
                    );
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let parts = common::split(rest, SEPARATOR);
    let record = record(flags, parts[0], &parts[1..]);
    let event = CloudEvent::from_record(&record, &settings(), "application/json");
    check_detection(&record, &event);
    check_requests(&record, &event);
});
