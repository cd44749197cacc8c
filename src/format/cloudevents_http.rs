//! A [`CloudEvent`] in the CloudEvents HTTP protocol binding: binary mode (attributes as
//! `ce-*` headers, data as the body) or structured mode (one JSON document). Pure, no I/O.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use serde_json::Value;

use super::base64::push_base64;
use super::cloudevent::{attribute_text, is_json, CloudEvent, Data, STRUCTURED_CONTENT_TYPE};
use super::embed::{self, Layout};

/// `Content-Type` of a structured event this module writes.
const STRUCTURED_UTF8: &str = "application/cloudevents+json; charset=utf-8";

/// Binary mode: sets a `ce-{name}` header per attribute (values percent-encoded as the
/// binding requires) and `Content-Type` = `datacontenttype` (removed when the event has
/// none); returns the body, the data byte for byte.
pub fn binary(event: &CloudEvent, headers: &mut HeaderMap) -> Bytes {
    for (name, value) in &event.attributes {
        // Names are lowercase letters and digits (checked when the event was read), so
        // the header name is always valid.
        if let Ok(name) = HeaderName::from_bytes(format!("ce-{name}").as_bytes()) {
            headers.insert(name, percent_encoded(&attribute_text(value)));
        }
    }
    let content_type = match (&event.datacontenttype, &event.data) {
        (Some(content_type), _) => HeaderValue::from_str(content_type).ok(),
        // The JSON format's default for JSON data.
        (None, Data::Json(_)) => Some(HeaderValue::from_static("application/json")),
        (None, _) => None,
    };
    match content_type {
        Some(value) => {
            headers.insert(CONTENT_TYPE, value);
        }
        None => {
            headers.remove(CONTENT_TYPE);
        }
    }
    match &event.data {
        Data::None => Bytes::new(),
        Data::Bytes(bytes) => bytes.clone(),
        Data::Json(raw) => {
            let declared_json = event.datacontenttype.as_deref().is_none_or(is_json);
            match serde_json::from_str::<Value>(raw.get()) {
                // Text data of a non-JSON type travels as a JSON string: send the text.
                Ok(Value::String(text)) if !declared_json => Bytes::from(text),
                _ => Bytes::copy_from_slice(raw.get().as_bytes()),
            }
        }
    }
}

/// Structured mode: sets `Content-Type: application/cloudevents+json` and returns the JSON
/// document. An event that came structured is sent as it was; otherwise JSON data (declared
/// JSON and valid) is embedded as `data`, anything else as `data_base64`.
pub fn structured(event: &CloudEvent, headers: &mut HeaderMap) -> Bytes {
    if let Some(document) = &event.structured {
        let declared = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .to_ascii_lowercase()
                    .starts_with(STRUCTURED_CONTENT_TYPE)
            });
        if !declared {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(STRUCTURED_UTF8));
        }
        return document.clone();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(STRUCTURED_UTF8));
    let mut out = Vec::with_capacity(256 + data_len(&event.data) * 4 / 3);
    write_structured(event, &mut out);
    Bytes::from(out)
}

/// Appends the event's JSON document to `out`: the record's own document when the event came
/// structured, otherwise one written from the attributes (JSON data, declared JSON and valid,
/// embedded as `data`, anything else as `data_base64`). Batches use it for each entry.
pub fn write_structured(event: &CloudEvent, out: &mut Vec<u8>) {
    if let Some(document) = &event.structured {
        out.extend_from_slice(document);
        return;
    }
    out.push(b'{');
    let mut first = true;
    // Starts a member: the separator, its name and the colon; the caller writes the value.
    let mut member = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(Value::String(name.to_string()).to_string().as_bytes());
        out.push(b':');
    };
    for (name, value) in &event.attributes {
        member(out, name);
        out.extend_from_slice(value.to_string().as_bytes());
    }
    if let Some(content_type) = &event.datacontenttype {
        member(out, "datacontenttype");
        out.extend_from_slice(Value::String(content_type.clone()).to_string().as_bytes());
    }
    match &event.data {
        Data::None => {}
        Data::Json(raw) => {
            member(out, "data");
            out.extend_from_slice(raw.get().as_bytes());
        }
        Data::Bytes(bytes) => {
            let document = event
                .datacontenttype
                .as_deref()
                .is_some_and(is_json)
                .then(|| embed::document(bytes, Layout::Json))
                .flatten();
            match document {
                Some(document) => {
                    member(out, "data");
                    document.write_to(out);
                }
                None => {
                    member(out, "data_base64");
                    out.push(b'"');
                    push_base64(out, bytes);
                    out.push(b'"');
                }
            }
        }
    }
    out.push(b'}');
}

fn data_len(data: &Data) -> usize {
    match data {
        Data::None => 0,
        Data::Bytes(bytes) => bytes.len(),
        Data::Json(raw) => raw.get().len(),
    }
}

/// The HTTP binding's header value encoding: space, `"`, `%` and anything outside printable
/// ASCII become `%XX` of their UTF-8 bytes.
pub fn percent_encoded(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CloudEventsSettings;
    use crate::record::Record;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

    fn record(headers: &[(&str, &[u8])], value: Option<&'static [u8]>) -> Record {
        Record {
            partition: 0,
            offset: 5,
            timestamp_ms: Some(0),
            key: Some(Bytes::from_static(b"caf\xc3\xa9 1")),
            value: value.map(Bytes::from_static),
            headers: Record::example_headers(headers),
            ..Record::example()
        }
    }

    fn event(record: &Record) -> CloudEvent {
        let settings = CloudEventsSettings {
            source: "/kafka/{topic}".into(),
            event_type: "t".into(),
        };
        CloudEvent::from_record(record, &settings, "application/octet-stream")
    }

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        headers.get(name).and_then(|value| value.to_str().ok())
    }

    #[test]
    fn binary_mode_headers_and_body() {
        let mut headers = HeaderMap::new();
        let body = binary(
            &event(&record(&[("content-type", b"text/plain")], Some(b"hi"))),
            &mut headers,
        );
        assert_eq!(body, Bytes::from_static(b"hi"));
        assert_eq!(header(&headers, "ce-specversion"), Some("1.0"));
        assert_eq!(header(&headers, "ce-id"), Some("orders-0-5"));
        assert_eq!(header(&headers, "ce-source"), Some("/kafka/orders"));
        assert_eq!(
            header(&headers, "ce-time"),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(header(&headers, "ce-key"), Some("caf%C3%A9%201"));
        assert_eq!(header(&headers, "content-type"), Some("text/plain"));
    }

    #[test]
    fn binary_mode_of_structured_records() {
        let structured_record = |value: &'static [u8]| {
            record(
                &[("content-type", b"application/cloudevents+json")],
                Some(value),
            )
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("x/y"));
        let body = binary(
            &event(&structured_record(
                br#"{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"a": 1}}"#,
            )),
            &mut headers,
        );
        assert_eq!(body, Bytes::from_static(br#"{"a": 1}"#));
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        let mut headers = HeaderMap::new();
        let body = binary(
            &event(&structured_record(
                br#"{"specversion":"1.0","id":"e","source":"/s","type":"t","datacontenttype":"text/plain","data":"a \"b\""}"#,
            )),
            &mut headers,
        );
        assert_eq!(body, Bytes::from_static(b"a \"b\""));
        assert_eq!(header(&headers, "content-type"), Some("text/plain"));
        // No datacontenttype and no data: no Content-Type.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("x/y"));
        let body = binary(
            &event(&record(
                &[
                    ("ce_specversion", b"1.0"),
                    ("ce_id", b"e"),
                    ("ce_source", b"/s"),
                    ("ce_type", b"t"),
                ],
                None,
            )),
            &mut headers,
        );
        assert!(body.is_empty() && headers.get(CONTENT_TYPE).is_none());
    }

    #[test]
    fn structured_mode_embeds_json_and_base64s_the_rest() {
        let mut headers = HeaderMap::new();
        let body = structured(
            &event(&record(
                &[("content-type", b"application/json")],
                Some(b"{\"a\": [1]}"),
            )),
            &mut headers,
        );
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/cloudevents+json; charset=utf-8")
        );
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["data"], serde_json::json!({"a": [1]}));
        assert_eq!(json["id"], "orders-0-5");
        assert_eq!(json["key"], "café 1");
        assert_eq!(json["datacontenttype"], "application/json");
        assert!(String::from_utf8_lossy(&body).contains(r#""data":{"a": [1]}"#));

        for (content_type, value) in [
            (&b"application/json"[..], &b"not json"[..]),
            (b"application/octet-stream", b"\x00\xff"),
        ] {
            let record = record(&[("content-type", content_type)], Some(value));
            let body = structured(&event(&record), &mut HeaderMap::new());
            let json: Value = serde_json::from_slice(&body).unwrap();
            assert!(json.get("data").is_none());
            assert_eq!(
                BASE64
                    .decode(json["data_base64"].as_str().unwrap())
                    .unwrap(),
                value
            );
        }
        let body = structured(&event(&record(&[], None)), &mut HeaderMap::new());
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert!(json.get("data").is_none() && json.get("data_base64").is_none());
    }

    #[test]
    fn structured_records_pass_through_and_binary_records_convert() {
        let value: &'static [u8] =
            br#"{ "specversion":"1.0","id":"e","source":"/s","type":"t","data":{"z":1} }"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json; charset=UTF-8"),
        );
        let passthrough = record(
            &[(
                "content-type",
                b"application/cloudevents+json; charset=UTF-8",
            )],
            Some(value),
        );
        assert_eq!(structured(&event(&passthrough), &mut headers), value);
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/cloudevents+json; charset=UTF-8")
        );

        let binary_record = record(
            &[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"e"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("ce_ext", b"x y"),
                ("content-type", b"application/json"),
            ],
            Some(b"[1,2]"),
        );
        let body = structured(&event(&binary_record), &mut HeaderMap::new());
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["ext"], "x y");
        assert_eq!(json["data"], serde_json::json!([1, 2]));
        assert!(
            json.get("key").is_none(),
            "a kept event gets no new attribute"
        );
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encoded("a-b/c:1"), "a-b/c:1");
        assert_eq!(percent_encoded("a b\"%"), "a%20b%22%25");
        assert_eq!(percent_encoded("é\n"), "%C3%A9%0A");
    }
}
