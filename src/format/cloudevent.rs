//! A record as a CloudEvent: the event it already is in the Kafka protocol binding (binary
//! mode: `ce_*` headers; structured mode: `content-type: application/cloudevents+json`), kept
//! whole, or a new event wrapping it. Pure, no I/O; `cloudevents_http` writes it out.
//!
//! A record that claims to be a CloudEvent but is not a valid one (a required attribute
//! missing, a value that is not UTF-8, a structured value that is not one strict JSON object,
//! see `embed`) is wrapped like any other record, so it is still delivered. So is an event
//! whose `datacontenttype` is a CloudEvents media type: in HTTP binary mode it would be the
//! request's `Content-Type`, and a receiver would read the request as structured (or as a
//! batch) instead (found by the `cloudevents` fuzz target).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::Value;

use super::embed;
use crate::config::CloudEventsSettings;
use crate::record::Record;

/// The Kafka binding's prefix of attribute headers (binary mode).
pub const KAFKA_ATTRIBUTE_PREFIX: &str = "ce_";
/// The media type of a CloudEvent in structured mode (JSON event format).
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// One CloudEvent, ready to be written in either HTTP mode.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// Context attributes and extensions except `datacontenttype`, `specversion` first;
    /// values are JSON strings, or numbers and booleans from a structured record.
    pub attributes: Vec<(String, Value)>,
    pub datacontenttype: Option<String>,
    pub data: Data,
    /// The record's value when the record is a structured-mode CloudEvent: sent as it is in
    /// HTTP structured mode, so nothing about it changes.
    pub structured: Option<Bytes>,
    /// The attributes came from the record's `ce_*` headers (Kafka binary mode), so those
    /// headers are not mapped again as `kafka-header-*`.
    pub from_headers: bool,
}

/// An event's data.
#[derive(Debug, Clone)]
pub enum Data {
    None,
    /// Bytes (a record value, or decoded `data_base64`).
    Bytes(Bytes),
    /// The text of a structured event's `data` member, a JSON value exactly as written.
    Json(Box<RawValue>),
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        match (self, other) {
            (Data::None, Data::None) => true,
            (Data::Bytes(a), Data::Bytes(b)) => a == b,
            (Data::Json(a), Data::Json(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl CloudEvent {
    /// The event `record` is, or a new one wrapping it. `content_type` is what a plain
    /// record's data is declared as when it has no valid `content-type` header.
    pub fn from_record(
        record: &Record,
        settings: &CloudEventsSettings,
        content_type: &str,
    ) -> CloudEvent {
        if is_structured(record) {
            if let Some(event) = record.value.as_ref().and_then(from_structured) {
                return event;
            }
        } else if record
            .headers
            .iter()
            .any(|(name, _)| name == "ce_specversion")
        {
            if let Some(event) = from_kafka_binary(record) {
                return event;
            }
        }
        wrap(record, settings, content_type)
    }

    /// The value of an attribute as a string (numbers and booleans as JSON writes them).
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| attribute_text(value))
    }
}

/// An attribute value as text: strings as themselves, other values as JSON.
pub fn attribute_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A Kafka header that carries an attribute of a binary-mode event (see `from_headers`).
pub fn is_attribute_header(name: &str) -> bool {
    name.starts_with(KAFKA_ATTRIBUTE_PREFIX)
}

/// `application/json`, `text/json` or `…+json`, parameters ignored (as the SDKs judge it).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn is_structured(record: &Record) -> bool {
    record.header_str("content-type").is_some_and(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case(STRUCTURED_CONTENT_TYPE)
    })
}

/// Whether a content type is a CloudEvents media type (`application/cloudevents…`: an event,
/// or a batch of them), which as a binary-mode `Content-Type` announces another mode.
fn declares_cloudevents(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/cloudevents")
    })
}

/// Attribute names: lowercase letters and digits (CloudEvents 1.0).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
}

/// Every required attribute is present and a non-empty string.
fn has_required(attributes: &[(String, Value)]) -> bool {
    ["specversion", "id", "source", "type"].iter().all(|name| {
        attributes
            .iter()
            .any(|(key, value)| key == name && value.as_str().is_some_and(|text| !text.is_empty()))
    })
}

/// Puts `specversion` first (it tells a reader how to read the rest).
fn specversion_first(mut attributes: Vec<(String, Value)>) -> Vec<(String, Value)> {
    if let Some(index) = attributes.iter().position(|(key, _)| key == "specversion") {
        let spec = attributes.remove(index);
        attributes.insert(0, spec);
    }
    attributes
}

/// Kafka binary mode: `ce_{name}` headers (UTF-8) are the attributes, `content-type` is
/// `datacontenttype`, the value is the data.
fn from_kafka_binary(record: &Record) -> Option<CloudEvent> {
    let mut attributes: Vec<(String, Value)> = Vec::new();
    let mut datacontenttype = record.header_str("content-type").map(str::to_string);
    for (name, value) in &record.headers {
        let Some(name) = name.strip_prefix(KAFKA_ATTRIBUTE_PREFIX) else {
            continue;
        };
        let text = std::str::from_utf8(value.as_deref()?).ok()?;
        if !valid_name(name) || attributes.iter().any(|(key, _)| key == name) {
            return None;
        }
        if name == "datacontenttype" {
            datacontenttype.get_or_insert_with(|| text.to_string());
            continue;
        }
        attributes.push((name.to_string(), Value::String(text.to_string())));
    }
    if !has_required(&attributes) || declares_cloudevents(datacontenttype.as_deref()) {
        return None;
    }
    Some(CloudEvent {
        attributes: specversion_first(attributes),
        datacontenttype,
        data: record.value.clone().map_or(Data::None, Data::Bytes),
        structured: None,
        from_headers: true,
    })
}

/// Kafka structured mode: the value is the event in the JSON format.
fn from_structured(value: &Bytes) -> Option<CloudEvent> {
    // The document is sent as written, so all of it must be strict JSON like everything else
    // the sidecar embeds: reading it into members checks neither the escapes inside `data`
    // nor those of a member that a later duplicate replaces (found by the fuzz target).
    if !embed::is_strict_json(value) {
        return None;
    }
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(value).ok()?;
    let mut attributes = Vec::new();
    let mut datacontenttype = None;
    let mut data = Data::None;
    let mut data_base64 = None;
    for (name, raw) in members {
        match name.as_str() {
            "data" => data = Data::Json(raw),
            "data_base64" => data_base64 = Some(raw),
            _ => {
                let value: Value = serde_json::from_str(raw.get()).ok()?;
                match value {
                    Value::Null => {}
                    Value::String(text) if name == "datacontenttype" => {
                        datacontenttype = Some(text)
                    }
                    Value::String(_) | Value::Number(_) | Value::Bool(_) if valid_name(&name) => {
                        attributes.push((name, value))
                    }
                    _ => return None,
                }
            }
        }
    }
    if let Some(raw) = data_base64 {
        if !matches!(data, Data::None) {
            return None;
        }
        let text: String = serde_json::from_str(raw.get()).ok()?;
        data = Data::Bytes(Bytes::from(BASE64.decode(text).ok()?));
    }
    if !has_required(&attributes) || declares_cloudevents(datacontenttype.as_deref()) {
        return None;
    }
    Some(CloudEvent {
        attributes: specversion_first(attributes),
        datacontenttype,
        data,
        structured: Some(value.clone()),
        from_headers: false,
    })
}

/// A new event for a plain record: Knative KafkaSource's conventions where they exist.
fn wrap(record: &Record, settings: &CloudEventsSettings, content_type: &str) -> CloudEvent {
    let text = |value: String| Value::String(value);
    let mut attributes = vec![
        ("specversion".to_string(), text("1.0".into())),
        ("id".to_string(), text(record.idempotency_id())),
        (
            "source".to_string(),
            text(settings.source.replace("{topic}", &record.topic)),
        ),
        ("type".to_string(), text(settings.event_type.clone())),
        (
            "subject".to_string(),
            text(format!("partition:{}#{}", record.partition, record.offset)),
        ),
    ];
    // A timestamp outside the years RFC 3339 can write (a producer may set any) leaves the
    // optional `time` out rather than make the event invalid.
    if let Some(time) = record.timestamp_ms.and_then(rfc3339_millis) {
        attributes.push(("time".to_string(), text(time)));
    }
    if let Some(key) = &record.key {
        attributes.push(match std::str::from_utf8(key) {
            Ok(key) => ("key".to_string(), text(key.to_string())),
            Err(_) => ("keyb64".to_string(), text(BASE64.encode(key))),
        });
    }
    // A CloudEvents media type on a record that is no valid event would make a receiver
    // read a binary-mode request as structured: such data is declared as configured.
    let datacontenttype = record
        .header_str("content-type")
        .filter(|value| http::HeaderValue::from_str(value).is_ok())
        .filter(|value| !declares_cloudevents(Some(value)))
        .unwrap_or(content_type)
        .to_string();
    CloudEvent {
        attributes,
        datacontenttype: Some(datacontenttype),
        data: record.value.clone().map_or(Data::None, Data::Bytes),
        structured: None,
        from_headers: false,
    }
}

/// Milliseconds since the epoch as RFC 3339 in UTC, e.g. `2023-11-14T22:13:20.123Z`; `None`
/// outside the years 0000 to 9999, which RFC 3339 cannot write.
pub fn rfc3339_millis(millis: i64) -> Option<String> {
    /// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
    const FIRST: i64 = -62_167_219_200_000;
    const END: i64 = 253_402_300_800_000;
    if !(FIRST..END).contains(&millis) {
        return None;
    }
    let seconds = millis.div_euclid(1000);
    let millis = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CloudEventsSettings {
        CloudEventsSettings {
            source: "/kafka/{topic}".into(),
            event_type: "dev.knative.kafka.event".into(),
        }
    }

    fn record(headers: &[(&str, &[u8])], value: Option<&'static [u8]>) -> Record {
        Record {
            value: value.map(Bytes::from_static),
            headers: Record::example_headers(headers),
            ..Record::example()
        }
    }

    fn event(record: &Record) -> CloudEvent {
        CloudEvent::from_record(record, &settings(), "application/octet-stream")
    }

    #[test]
    fn wraps_a_plain_record() {
        let event = event(&record(
            &[("content-type", b"application/json")],
            Some(b"{\"a\":1}"),
        ));
        let names: Vec<&str> = event.attributes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "specversion",
                "id",
                "source",
                "type",
                "subject",
                "time",
                "key"
            ]
        );
        assert_eq!(event.attribute("id").as_deref(), Some("orders-2-41"));
        assert_eq!(event.attribute("source").as_deref(), Some("/kafka/orders"));
        assert_eq!(
            event.attribute("subject").as_deref(),
            Some("partition:2#41")
        );
        assert_eq!(
            event.attribute("time").as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(event.attribute("key").as_deref(), Some("k-1"));
        assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(event.data, Data::Bytes(Bytes::from_static(b"{\"a\":1}")));
        assert!(event.structured.is_none());
    }

    #[test]
    fn wrapping_covers_binary_keys_null_keys_tombstones_and_defaults() {
        let mut plain = record(&[], None);
        plain.key = Some(Bytes::from_static(b"\xff\x00"));
        plain.timestamp_ms = None;
        let wrapped = event(&plain);
        assert_eq!(wrapped.attribute("keyb64").as_deref(), Some("/wA="));
        assert_eq!(wrapped.attribute("key"), None);
        assert_eq!(wrapped.attribute("time"), None);
        assert_eq!(wrapped.data, Data::None);
        assert_eq!(
            wrapped.datacontenttype.as_deref(),
            Some("application/octet-stream")
        );
        plain.key = None;
        let wrapped = event(&plain);
        assert!(wrapped.attribute("key").is_none() && wrapped.attribute("keyb64").is_none());
    }

    #[test]
    fn keeps_a_kafka_binary_event() {
        let kept = event(&record(
            &[
                ("ce_id", b"evt-1"),
                ("ce_specversion", b"1.0"),
                ("ce_source", b"/orders/service"),
                ("ce_type", b"order.created"),
                ("ce_time", b"2024-01-02T03:04:05Z"),
                ("ce_myext", b"v a l"),
                ("content-type", b"text/plain"),
                ("other", b"x"),
            ],
            Some(b"\x00\x01"),
        ));
        let names: Vec<&str> = kept.attributes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["specversion", "id", "source", "type", "time", "myext"]
        );
        assert_eq!(kept.attribute("id").as_deref(), Some("evt-1"));
        assert_eq!(kept.attribute("myext").as_deref(), Some("v a l"));
        assert_eq!(kept.datacontenttype.as_deref(), Some("text/plain"));
        assert_eq!(kept.data, Data::Bytes(Bytes::from_static(b"\x00\x01")));
        assert!(kept.from_headers);
        assert!(is_attribute_header("ce_id") && !is_attribute_header("other"));
    }

    #[test]
    fn keeps_a_kafka_structured_event() {
        let value: &'static [u8] = br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","count":3,"flag":true,"datacontenttype":"application/json","data": {"b": [1, 2]}}"#;
        let kept = event(&record(
            &[(
                "content-type",
                b"application/cloudevents+json; charset=UTF-8",
            )],
            Some(value),
        ));
        assert_eq!(kept.attributes[0].0, "specversion");
        assert_eq!(kept.attribute("count").as_deref(), Some("3"));
        assert_eq!(kept.attribute("flag").as_deref(), Some("true"));
        assert_eq!(kept.datacontenttype.as_deref(), Some("application/json"));
        match &kept.data {
            Data::Json(raw) => assert_eq!(raw.get(), r#"{"b": [1, 2]}"#),
            other => panic!("{other:?}"),
        }
        assert_eq!(kept.structured.as_deref(), Some(value));

        let base64: &'static [u8] =
            br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","data_base64":"AAE="}"#;
        let decoded = event(&record(
            &[("content-type", b"application/cloudevents+json")],
            Some(base64),
        ));
        assert_eq!(decoded.data, Data::Bytes(Bytes::from_static(b"\x00\x01")));
    }

    #[test]
    fn invalid_events_are_wrapped() {
        let structured = |value: &'static [u8]| {
            event(&record(
                &[("content-type", b"application/cloudevents+json")],
                Some(value),
            ))
        };
        let wrapped = structured(b"not json");
        assert_eq!(
            wrapped.datacontenttype.as_deref(),
            Some("application/octet-stream"),
            "no CloudEvents media type on a wrapped record"
        );
        for value in [
            &b"not json"[..],
            br#"{"specversion":"1.0","id":"e1","source":"/s"}"#,
            br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","x":{"nested":1}}"#,
            br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#,
            br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","Bad":"x"}"#,
            // Not strict JSON: a lone surrogate in data, or in a member a duplicate replaces
            // (the fuzz target's crash), would make the passed-through body unreadable.
            br#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","data":"\ud800"}"#,
            br#"{"specversion":"1.0","id":"e1","x":"\udc00","x":"ok","source":"/s","type":"t"}"#,
        ] {
            assert_eq!(
                structured(value).attribute("id").as_deref(),
                Some("orders-2-41"),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let binary = event(&record(
            &[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"e1"),
                ("ce_type", b"t"),
            ],
            Some(b"x"),
        ));
        assert_eq!(binary.attribute("id").as_deref(), Some("orders-2-41"));
        let binary = event(&record(
            &[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"e1"),
                ("ce_source", b"/s"),
                ("ce_type", b"\xff"),
            ],
            Some(b"x"),
        ));
        assert_eq!(binary.attribute("id").as_deref(), Some("orders-2-41"));
    }

    /// Crashes of the `cloudevents` fuzz target: an event whose `datacontenttype` is a
    /// CloudEvents media type went out in HTTP binary mode with that `Content-Type`.
    #[test]
    fn events_declaring_a_cloudevents_media_type_are_wrapped() {
        let structured = br#"{"specversion":"1.0","id":"e","source":"/s","type":"t","datacontenttype":"application/cloudevents+json","data":"x"}"#;
        let required: [(&str, &[u8]); 4] = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"e1"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
        ];
        let declared = |header: (&'static str, &'static [u8])| {
            let mut headers = required.to_vec();
            headers.push(header);
            event(&record(&headers, Some(b"x")))
        };
        for wrapped in [
            event(&record(
                &[("content-type", b"application/cloudevents+json")],
                Some(structured),
            )),
            declared(("content-type", b"application/cloudevents-batch+json")),
            declared(("ce_datacontenttype", b" Application/CloudEvents+JSON")),
        ] {
            assert_eq!(wrapped.attribute("id").as_deref(), Some("orders-2-41"));
            assert!(wrapped.structured.is_none() && !wrapped.from_headers);
            assert_eq!(
                wrapped.datacontenttype.as_deref(),
                Some("application/octet-stream")
            );
        }
        let kept = declared(("ce_datacontenttype", b"application/json"));
        assert!(kept.from_headers);
    }

    #[test]
    fn json_content_types() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "text/json",
            "application/vnd.x+json",
            "Application/JSON",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "application/octet-stream",
            "text/plain",
            "application/jsonx",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }

    #[test]
    fn rfc3339() {
        let text = |millis| rfc3339_millis(millis).unwrap();
        assert_eq!(text(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(text(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(text(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(text(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(text(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(text(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        for outside in [253_402_300_800_000, -62_167_219_200_001, i64::MAX, i64::MIN] {
            assert_eq!(rfc3339_millis(outside), None, "{outside}");
        }
    }
}
