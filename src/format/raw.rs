//! `format: raw` (the default): the HTTP request for a record is its value, byte for byte, as
//! the body, plus the headers below, which the CloudEvents formats send too. Pure, no I/O. The
//! header contract (also in the README):
//!
//! | header | value |
//! |---|---|
//! | `content-type` | the record's `content-type` header if valid, else `delivery.content_type` |
//! | `idempotency-key` | `{topic}-{partition}-{offset}`, identical on every retry |
//! | `kafka-topic`, `kafka-partition`, `kafka-offset` | where the record comes from |
//! | `kafka-timestamp` | record timestamp, milliseconds since the epoch (absent if none) |
//! | `kafka-key` | the key, when it is printable ASCII |
//! | `kafka-key-b64` | the key in standard base64, otherwise (absent for a null key) |
//! | `kafka-tombstone: true` | the value is null (the body is then empty) |
//! | `kafka-header-{name}` | a Kafka header whose name is a lowercase HTTP token other than `b64` and whose value is printable ASCII |
//! | `kafka-header-b64` | any other Kafka header: `base64(name):base64(value)`, or `base64(name)` for a null value; repeated once per header |
//! | `traceparent`, `tracestate` | passed through from the record's headers when valid |
//! | configured `delivery.headers` | added last, so they win over the above |

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::HeaderMap;

use crate::record::Record;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

// Header names as values: inserting a `&str` name parses it on every record.
const IDEMPOTENCY: HeaderName = HeaderName::from_static(IDEMPOTENCY_KEY);
const TOPIC: HeaderName = HeaderName::from_static("kafka-topic");
const PARTITION: HeaderName = HeaderName::from_static("kafka-partition");
const OFFSET: HeaderName = HeaderName::from_static("kafka-offset");
const TIMESTAMP: HeaderName = HeaderName::from_static("kafka-timestamp");
const KEY: HeaderName = HeaderName::from_static("kafka-key");
const KEY_B64: HeaderName = HeaderName::from_static("kafka-key-b64");
const TOMBSTONE: HeaderName = HeaderName::from_static("kafka-tombstone");

/// How many headers a record's request holds, to size its header map once: the metadata
/// headers, the record's own, the configured ones and a signature's three.
pub fn header_capacity(record: &Record, configured: usize) -> usize {
    12 + record.headers.len() + configured
}

/// Adds the metadata headers of the table above (all but the configured ones) to `headers`.
/// `content_type` is used when the record has no valid `content-type` header; Kafka headers
/// for which `skip` is true are not mapped (a CloudEvent's `ce_*` attributes, which the
/// CloudEvents formats carry their own way).
pub fn metadata_headers(
    record: &Record,
    content_type: &HeaderValue,
    skip: fn(&str) -> bool,
    headers: &mut HeaderMap,
) {
    let content_type = record
        .header_str("content-type")
        .and_then(|value| HeaderValue::from_str(value).ok())
        .unwrap_or_else(|| content_type.clone());
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(IDEMPOTENCY, number_or_text(&record.idempotency_id()));
    headers.insert(TOPIC, number_or_text(&record.topic));
    headers.insert(PARTITION, HeaderValue::from(record.partition));
    headers.insert(OFFSET, HeaderValue::from(record.offset));
    if let Some(timestamp) = record.timestamp_ms {
        headers.insert(TIMESTAMP, HeaderValue::from(timestamp));
    }
    match &record.key {
        Some(key) if is_printable(key) => {
            headers.insert(KEY, bytes_value(key));
        }
        Some(key) => {
            headers.insert(KEY_B64, base64_value(key));
        }
        None => {}
    }
    if record.value.is_none() {
        headers.insert(TOMBSTONE, HeaderValue::from_static("true"));
    }
    for (name, value) in record.headers.iter().filter(|(name, _)| !skip(name)) {
        match (simple_header_name(name), value) {
            (Some(http_name), Some(value)) if is_printable(value) => {
                headers.append(http_name, bytes_value(value));
            }
            _ => {
                let mut encoded = BASE64.encode(name.as_bytes());
                if let Some(value) = value {
                    encoded.push(':');
                    encoded.push_str(&BASE64.encode(value));
                }
                headers.append("kafka-header-b64", number_or_text(&encoded));
            }
        }
    }
    for trace_header in ["traceparent", "tracestate"] {
        if let Some(value) = record
            .header_str(trace_header)
            .and_then(|value| HeaderValue::from_str(value).ok())
        {
            headers.insert(trace_header, value);
        }
    }
}

/// `kafka-header-{name}` when `name` is a lowercase HTTP token; `None` otherwise, and for
/// `b64`, whose `kafka-header-b64` would read as a base64-encoded header (found by the
/// `cloudevents` fuzz target: `b64: QUJD` came back as a header `ABC` without a value).
fn simple_header_name(name: &str) -> Option<HeaderName> {
    if name.is_empty() || name == "b64" || name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    HeaderName::from_bytes(format!("kafka-header-{name}").as_bytes()).ok()
}

/// Printable ASCII without leading or trailing whitespace survives HTTP unchanged.
fn is_printable(bytes: &[u8]) -> bool {
    bytes.iter().all(|byte| (0x20..0x7f).contains(byte))
        && bytes.first().is_none_or(|byte| *byte != b' ')
        && bytes.last().is_none_or(|byte| *byte != b' ')
}

fn bytes_value(bytes: &Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes.clone()).unwrap_or_else(|_| base64_value(bytes))
}

fn base64_value(bytes: &[u8]) -> HeaderValue {
    number_or_text(&BASE64.encode(bytes))
}

/// Header values built from topic names, numbers and base64 are always valid.
pub(super) fn number_or_text(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::RequestTemplate;
    use http::{Method, Request};
    use http_body_util::Full;
    use std::collections::BTreeMap;

    fn template(headers: &[(&str, &str)]) -> RequestTemplate {
        let mut config = crate::config::Config::new("b", "g", &["t"], "http://127.0.0.1:1/x");
        config.delivery.headers = headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>();
        RequestTemplate::new(&config.settings().unwrap().delivery)
    }

    fn record() -> Record {
        Record {
            value: Some(Bytes::from_static(b"\x00\xffbody")),
            ..Record::example()
        }
    }

    fn header<'a>(request: &'a Request<Full<Bytes>>, name: &str) -> Option<&'a str> {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    }

    #[test]
    fn metadata_headers_and_body() {
        let request = template(&[]).build(&record());
        assert_eq!(request.method(), Method::POST);
        assert_eq!(header(&request, "idempotency-key"), Some("orders-2-41"));
        assert_eq!(header(&request, "kafka-topic"), Some("orders"));
        assert_eq!(header(&request, "kafka-partition"), Some("2"));
        assert_eq!(header(&request, "kafka-offset"), Some("41"));
        assert_eq!(header(&request, "kafka-timestamp"), Some("1700000000123"));
        assert_eq!(header(&request, "kafka-key"), Some("k-1"));
        assert_eq!(
            header(&request, "content-type"),
            Some("application/octet-stream")
        );
        assert!(request.headers().get("kafka-tombstone").is_none());
    }

    #[test]
    fn binary_key_tombstone_and_null_key() {
        let mut record = record();
        record.key = Some(Bytes::from_static(b"\x01\x02"));
        record.value = None;
        let request = template(&[]).build(&record);
        assert_eq!(header(&request, "kafka-key-b64"), Some("AQI="));
        assert_eq!(header(&request, "kafka-tombstone"), Some("true"));
        record.key = None;
        let request = template(&[]).build(&record);
        assert!(request.headers().get("kafka-key").is_none());
        assert!(request.headers().get("kafka-key-b64").is_none());
    }

    #[test]
    fn kafka_headers_map_losslessly() {
        let mut record = record();
        record.headers = vec![
            ("trace-id".into(), Some(Bytes::from_static(b"abc"))),
            ("trace-id".into(), Some(Bytes::from_static(b"def"))),
            ("Binary".into(), Some(Bytes::from_static(b"\xff\x00"))),
            ("nullable".into(), None),
            ("b64".into(), Some(Bytes::from_static(b"QUJD"))),
            (
                "content-type".into(),
                Some(Bytes::from_static(b"application/json")),
            ),
            (
                "traceparent".into(),
                Some(Bytes::from_static(
                    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )),
            ),
        ];
        let request = template(&[]).build(&record);
        let trace: Vec<_> = request
            .headers()
            .get_all("kafka-header-trace-id")
            .iter()
            .collect();
        assert_eq!(trace, vec!["abc", "def"]);
        let binary: Vec<_> = request
            .headers()
            .get_all("kafka-header-b64")
            .iter()
            .map(|value| value.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            binary,
            vec![
                format!("{}:{}", BASE64.encode("Binary"), BASE64.encode(b"\xff\x00")),
                BASE64.encode("nullable"),
                format!("{}:{}", BASE64.encode("b64"), BASE64.encode("QUJD")),
            ]
        );
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert!(header(&request, "traceparent")
            .unwrap()
            .starts_with("00-0af7"));
    }

    #[test]
    fn static_headers_are_sensitive_and_win() {
        let request = template(&[
            ("Authorization", "Bearer secret"),
            ("content-type", "text/plain"),
        ])
        .build(&record());
        let auth = request.headers().get("authorization").unwrap();
        assert!(auth.is_sensitive());
        assert!(!format!("{auth:?}").contains("secret"));
        assert_eq!(header(&request, "content-type"), Some("text/plain"));
    }
}
