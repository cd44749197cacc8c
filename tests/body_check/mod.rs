//! The receiver's side of every JSON body the sidecar builds, as a checker shared by the
//! property test (`tests/body_properties.rs`) and the fuzz target (`fuzz/`): given records,
//! it builds each body kind and panics, naming the kind and the broken rule, unless
//!
//! - the body is UTF-8 and parses with a strict parser (`serde_json` into a value);
//! - an NDJSON body is exactly one document per `\n`-terminated line, with no CR anywhere;
//! - each entry names its record (`id`, or the event's id) in record order;
//! - decoding an envelope gives back the record: key, headers, tombstone, and the value's
//!   bytes exactly (`value` as written, apart from surrounding whitespace, when it is
//!   embedded verbatim; the same JSON value, with line breaks turned to spaces, when an NDJSON
//!   line re-emits it; `value_base64` decoded otherwise), and a value that is strict JSON is
//!   never base64;
//! - a CloudEvent the sidecar made (structured mode, CloudEvents batch) reads with the
//!   official CloudEvents SDK and carries the record's value as `data` or `data_base64`.
//!
//! It uses only the library's public API, `serde_json`, `base64` and `cloudevents-sdk`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use kafka_webhook_sidecar::config::{BatchBody, CloudEventsSettings};
use kafka_webhook_sidecar::format::cloudevent::CloudEvent;
use kafka_webhook_sidecar::format::{cloudevents_http, BatchEncoder};
use kafka_webhook_sidecar::record::Record;
use serde_json::value::RawValue;
use serde_json::Value;

/// The content types a plain record's data is declared as: the default (so data is
/// base64) and JSON (so data that is strict JSON is embedded).
const DEFAULT_TYPES: [&str; 2] = ["application/octet-stream", "application/json"];

/// Builds every body kind of `records` (one batch each, and one structured event per
/// record) and checks them all; panics on the first broken rule.
pub fn check_records(records: &[Record]) {
    for default_type in DEFAULT_TYPES {
        for body in [BatchBody::JsonArray, BatchBody::Ndjson] {
            let encoder = encoder(body, default_type);
            check_envelopes(body, &encoder.body(records), records);
        }
        let encoder = encoder(BatchBody::CloudEvents, default_type);
        let batch = encoder.body(records);
        let events = strict_value("CloudEvents batch", &batch);
        let events = events.as_array().expect("a CloudEvents batch is an array");
        assert_eq!(
            events.len(),
            records.len(),
            "CloudEvents batch: one event per record"
        );
        for (index, (event, record)) in events.iter().zip(records).enumerate() {
            let id = event["id"].as_str().expect("an event has a string id");
            assert!(
                encoder.entry_ids(record).iter().any(|entry| entry == id),
                "CloudEvents batch entry {index}: id {id} names no id of its record"
            );
        }
        for record in records {
            check_structured(record, default_type);
        }
    }
}

fn encoder(body: BatchBody, default_type: &str) -> BatchEncoder {
    BatchEncoder::new(body, settings(), default_type.to_string())
}

fn settings() -> CloudEventsSettings {
    CloudEventsSettings {
        source: "/kafka/{topic}".into(),
        event_type: "dev.knative.kafka.event".into(),
    }
}

/// The body as a strict JSON value (it must be UTF-8 as a whole, too).
fn strict_value(kind: &str, body: &[u8]) -> Value {
    if let Err(error) = std::str::from_utf8(body) {
        panic!("{kind}: the body is not UTF-8: {error}");
    }
    match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => panic!(
            "{kind}: the body is not strict JSON: {error}: {:?}",
            String::from_utf8_lossy(body)
        ),
    }
}

/// JSON whitespace, the only bytes a document may have around it.
fn trim_json_whitespace(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

fn is_strict_document(bytes: &[u8]) -> bool {
    !bytes.is_empty() && serde_json::from_slice::<Value>(bytes).is_ok()
}

fn check_envelopes(body: BatchBody, bytes: &Bytes, records: &[Record]) {
    let kind = format!("{body:?}");
    let documents: Vec<&[u8]> = match body {
        BatchBody::Ndjson => {
            assert!(!bytes.contains(&b'\r'), "{kind}: a CR in the body");
            assert!(bytes.ends_with(b"\n"), "{kind}: the last line is not ended");
            let mut lines: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
            assert_eq!(lines.pop(), Some(&b""[..]));
            lines
        }
        _ => vec![&bytes[..]],
    };
    let mut envelopes = Vec::new();
    for document in documents {
        strict_value(&kind, document);
        match body {
            BatchBody::Ndjson => envelopes.push(
                serde_json::from_slice::<Box<RawValue>>(document).expect("a line is a value"),
            ),
            _ => envelopes.extend(
                serde_json::from_slice::<Vec<Box<RawValue>>>(document)
                    .expect("a JSON array body is an array"),
            ),
        }
    }
    assert_eq!(
        envelopes.len(),
        records.len(),
        "{kind}: one entry per record"
    );
    for (index, (envelope, record)) in envelopes.iter().zip(records).enumerate() {
        check_envelope(&format!("{kind} entry {index}"), body, envelope, record);
    }
}

/// One envelope, read back: its members must give the record.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    id: String,
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<String>,
    key_base64: Option<String>,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    value: Option<&'a RawValue>,
    value_base64: Option<String>,
    #[serde(default)]
    tombstone: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    // Absent, null or a string: `Some(None)` is an explicit null.
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<String>>,
    value_base64: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// A member that is present, whatever its JSON value (`null` included).
fn present_raw<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    serde::Deserialize::deserialize(deserializer).map(Some)
}

fn decoded(kind: &str, text: &str) -> Vec<u8> {
    BASE64
        .decode(text)
        .unwrap_or_else(|error| panic!("{kind}: invalid base64 {text:?}: {error}"))
}

/// Text when UTF-8, base64 otherwise: the pair of members one set of bytes is written as.
fn text_or_base64(kind: &str, text: Option<&str>, base64: Option<&str>) -> Vec<u8> {
    match (text, base64) {
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => {
            let bytes = decoded(kind, encoded);
            assert!(
                std::str::from_utf8(&bytes).is_err(),
                "{kind}: UTF-8 sent as base64"
            );
            bytes
        }
        _ => panic!("{kind}: exactly one of text and base64 expected"),
    }
}

fn check_envelope(kind: &str, body: BatchBody, raw: &RawValue, record: &Record) {
    let envelope: Envelope = serde_json::from_str(raw.get())
        .unwrap_or_else(|error| panic!("{kind}: not an envelope: {error}: {}", raw.get()));
    assert_eq!(envelope.id, record.idempotency_id(), "{kind}: id");
    assert_eq!(envelope.topic, &*record.topic, "{kind}: topic");
    assert_eq!(envelope.partition, record.partition, "{kind}: partition");
    assert_eq!(envelope.offset, record.offset, "{kind}: offset");
    assert_eq!(envelope.timestamp, record.timestamp_ms, "{kind}: timestamp");
    match &record.key {
        None => assert!(
            envelope.key.is_none() && envelope.key_base64.is_none(),
            "{kind}: key"
        ),
        Some(key) => assert_eq!(
            text_or_base64(
                kind,
                envelope.key.as_deref(),
                envelope.key_base64.as_deref()
            ),
            key[..],
            "{kind}: key"
        ),
    }
    assert_eq!(
        envelope.headers.len(),
        record.headers.len(),
        "{kind}: headers"
    );
    for (header, (name, value)) in envelope.headers.iter().zip(&record.headers) {
        assert_eq!(&header.name, name, "{kind}: header name");
        match value {
            None => assert!(
                matches!(header.value, Some(None)) && header.value_base64.is_none(),
                "{kind}: a null header value"
            ),
            Some(value) => {
                let text = match &header.value {
                    Some(Some(text)) => Some(text.as_str()),
                    Some(None) => panic!("{kind}: header {name}: null for a value"),
                    None => None,
                };
                assert_eq!(
                    text_or_base64(kind, text, header.value_base64.as_deref()),
                    value[..],
                    "{kind}: header {name}"
                );
            }
        }
    }
    match &record.value {
        None => assert!(
            envelope.tombstone && envelope.value.is_none() && envelope.value_base64.is_none(),
            "{kind}: a tombstone"
        ),
        Some(value) => {
            assert!(!envelope.tombstone, "{kind}: a value marked as tombstone");
            check_value(
                kind,
                body == BatchBody::Ndjson,
                value,
                envelope.value,
                envelope.value_base64.as_deref(),
            );
        }
    }
}

/// A value written as JSON (`json`) or base64 (`base64`) must give back `value`.
fn check_value(
    kind: &str,
    one_line: bool,
    value: &[u8],
    json: Option<&RawValue>,
    base64: Option<&str>,
) {
    match (json, base64) {
        (Some(json), None) => {
            let original = trim_json_whitespace(value);
            if one_line {
                let expected: Vec<u8> = original
                    .iter()
                    .map(|&byte| {
                        if byte == b'\n' || byte == b'\r' {
                            b' '
                        } else {
                            byte
                        }
                    })
                    .collect();
                // Inner whitespace stays; the ends were spaces or line breaks.
                assert_eq!(
                    trim_json_whitespace(&expected),
                    json.get().as_bytes(),
                    "{kind}: the value re-emitted on one line"
                );
                let a: Value = serde_json::from_slice(original).expect("strict");
                let b: Value = serde_json::from_str(json.get()).expect("strict");
                assert_eq!(a, b, "{kind}: the same JSON value");
            } else {
                assert_eq!(
                    json.get().as_bytes(),
                    original,
                    "{kind}: the value verbatim"
                );
            }
        }
        (None, Some(encoded)) => {
            assert_eq!(decoded(kind, encoded), value, "{kind}: value_base64");
            assert!(
                !is_strict_document(value),
                "{kind}: a strict JSON value sent as base64: {:?}",
                String::from_utf8_lossy(value)
            );
        }
        _ => panic!("{kind}: exactly one of value and value_base64 expected"),
    }
}

/// Structured mode for one record: strict JSON; an event the sidecar made reads with the SDK
/// and carries the value; an event passed through is the record's value.
fn check_structured(record: &Record, default_type: &str) {
    let kind = format!("structured ({default_type})");
    let event = CloudEvent::from_record(record, &settings(), default_type);
    let body = cloudevents_http::structured(&event, &mut HeaderMap::new());
    let parsed = strict_value(&kind, &body);
    if let Some(document) = &event.structured {
        assert_eq!(
            Some(document),
            record.value.as_ref(),
            "{kind}: passed through"
        );
        return;
    }
    if let Err(error) = serde_json::from_slice::<cloudevents::Event>(&body) {
        // Only events the sidecar wrapped are its own to vouch for; one kept from Kafka
        // headers has whatever attributes the producer gave it.
        if !event.from_headers {
            panic!("{kind}: the CloudEvents SDK refuses the event: {error}");
        }
    }
    if event.from_headers {
        return;
    }
    let members: std::collections::BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(&body).expect("an event is an object");
    let data = members.get("data").map(|raw| &**raw);
    let base64 = parsed.get("data_base64").and_then(Value::as_str);
    match &record.value {
        None => assert!(
            data.is_none() && base64.is_none(),
            "{kind}: a tombstone has no data"
        ),
        Some(value) => match (data, base64) {
            (Some(json), None) => assert_eq!(
                json.get().as_bytes(),
                trim_json_whitespace(value),
                "{kind}: data verbatim"
            ),
            (None, Some(encoded)) => {
                assert_eq!(decoded(&kind, encoded), value[..], "{kind}: data_base64")
            }
            _ => panic!("{kind}: exactly one of data and data_base64 expected"),
        },
    }
}
