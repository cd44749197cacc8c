//! The request for a record, in two steps: [`RequestTemplate::prepare`] once per record
//! (headers and body in the configured format), then [`RequestTemplate::request`] per attempt
//! (adds the Standard Webhooks signature for the time of that attempt). Pure, no I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;

use super::batch::{self, BatchEncoder};
use super::cloudevent::{is_attribute_header, CloudEvent};
use super::cloudevents_http;
use super::raw::{header_capacity, metadata_headers, number_or_text, IDEMPOTENCY_KEY};
use super::signing::{Signer, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use crate::config::{CloudEventsSettings, DeliverySettings, Format};
use crate::record::Record;

/// Everything about the request that does not depend on the record, prepared once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    method: Method,
    uri: Uri,
    static_headers: HeaderMap,
    content_type: HeaderValue,
    user_agent: HeaderValue,
    format: Format,
    cloudevents: CloudEventsSettings,
    signer: Option<Signer>,
    /// The batch body writer when `delivery.batch` is on.
    batch: Option<BatchEncoder>,
}

/// A record's headers and body, the same on every attempt.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The `idempotency-key` value, also the `webhook-id` (taken before static headers,
    /// which may not replace it).
    id: Option<HeaderValue>,
    headers: HeaderMap,
    body: Bytes,
    /// The record's route target, when a rule chose one (else the template's URL).
    uri: Option<Uri>,
}

impl RequestTemplate {
    /// Prepares the template from the validated delivery settings.
    pub fn new(delivery: &DeliverySettings) -> Self {
        let endpoint = &delivery.endpoint;
        Self {
            method: endpoint.method.clone(),
            uri: endpoint.uri.clone(),
            static_headers: endpoint.headers.clone(),
            content_type: endpoint.content_type.clone(),
            user_agent: HeaderValue::from_static(concat!(
                "kafka-webhook-sidecar/",
                env!("CARGO_PKG_VERSION")
            )),
            format: delivery.format.format,
            cloudevents: delivery.format.cloudevents.clone(),
            signer: Signer::new(&delivery.format.signing),
            batch: delivery.batch.map(|batch| {
                BatchEncoder::new(
                    batch.body,
                    delivery.format.cloudevents.clone(),
                    endpoint
                        .content_type
                        .to_str()
                        .unwrap_or("application/octet-stream")
                        .to_string(),
                )
            }),
        }
    }

    /// The batch body writer, when batching is on.
    pub fn batch_encoder(&self) -> Option<&BatchEncoder> {
        self.batch.as_ref()
    }

    /// The headers of a batch request carrying `body` with the entries of `records` (one
    /// partition, offset order, at least one): `content-type` of the batch body,
    /// `idempotency-key` (also the `webhook-id`) `{topic}-{partition}-{first}-{last}-{count}`,
    /// `kafka-topic`, `kafka-partition`, `kafka-batch-records`, then the configured headers.
    pub fn prepare_batch(&self, records: &[Record], body: Bytes) -> Prepared {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, self.user_agent.clone());
        let content_type = self
            .batch
            .as_ref()
            .map_or(batch::JSON_CONTENT_TYPE, BatchEncoder::content_type);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        let mut id = None;
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            let value = number_or_text(&format!(
                "{}-{}-{}-{}-{}",
                first.topic,
                first.partition,
                first.offset,
                last.offset,
                records.len()
            ));
            headers.insert(IDEMPOTENCY_KEY, value.clone());
            id = Some(value);
            headers.insert("kafka-topic", number_or_text(&first.topic));
            headers.insert("kafka-partition", HeaderValue::from(first.partition));
        }
        headers.insert("kafka-batch-records", HeaderValue::from(records.len()));
        for (name, value) in &self.static_headers {
            headers.insert(name.clone(), value.clone());
        }
        Prepared {
            id,
            headers,
            body,
            uri: None,
        }
    }

    /// The headers and body of `record`'s request in the configured format.
    pub fn prepare(&self, record: &Record) -> Prepared {
        let mut headers =
            HeaderMap::with_capacity(header_capacity(record, self.static_headers.len()));
        headers.insert(USER_AGENT, self.user_agent.clone());
        let body = match self.format {
            Format::Raw => {
                metadata_headers(record, &self.content_type, |_| false, &mut headers);
                record.value.clone().unwrap_or_default()
            }
            Format::CloudeventsBinary | Format::CloudeventsStructured => {
                // Configured content types are validated header values, hence text.
                let default_type = self
                    .content_type
                    .to_str()
                    .unwrap_or("application/octet-stream");
                let event = CloudEvent::from_record(record, &self.cloudevents, default_type);
                let skip: fn(&str) -> bool = if event.from_headers {
                    is_attribute_header
                } else {
                    |_: &str| false
                };
                metadata_headers(record, &self.content_type, skip, &mut headers);
                if self.format == Format::CloudeventsBinary {
                    cloudevents_http::binary(&event, &mut headers)
                } else {
                    cloudevents_http::structured(&event, &mut headers)
                }
            }
        };
        let id = headers.get(IDEMPOTENCY_KEY).cloned();
        for (name, value) in &self.static_headers {
            headers.insert(name.clone(), value.clone());
        }
        Prepared {
            id,
            headers,
            body,
            uri: record.target.clone(),
        }
    }

    /// The request of one attempt made at `now`: the prepared headers and body, signed for
    /// `now` when signing is on (so a retry hours later still verifies within a receiver's
    /// timestamp tolerance).
    pub fn request(&self, prepared: &Prepared, now: SystemTime) -> Request<Full<Bytes>> {
        self.into_request(prepared.clone(), now)
    }

    /// [`request`](Self::request) taking the prepared parts by value: a record's first
    /// attempt moves them into its request instead of copying the header map (a retry
    /// prepares the record again).
    pub fn into_request(&self, prepared: Prepared, now: SystemTime) -> Request<Full<Bytes>> {
        let Prepared {
            id,
            mut headers,
            body,
            uri,
        } = prepared;
        if let (Some(signer), Some(id)) = (&self.signer, id) {
            let timestamp = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            // Built from topic names and numbers: always visible ASCII.
            let id_text = id.to_str().unwrap_or_default();
            headers.insert(
                WEBHOOK_SIGNATURE,
                signer.signature(id_text, timestamp, &body),
            );
            headers.insert(WEBHOOK_ID, id);
            headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri.unwrap_or_else(|| self.uri.clone());
        *request.headers_mut() = headers;
        request
    }

    /// The request for `record` attempted now (tests).
    #[cfg(test)]
    pub fn build(&self, record: &Record) -> Request<Full<Bytes>> {
        self.request(&self.prepare(record), SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Secret};
    use std::time::Duration;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn template(format: Format, secrets: &[&str]) -> RequestTemplate {
        let mut config = Config::new("b", "g", &["t"], "http://127.0.0.1:1/x");
        config.delivery.format = format;
        config.delivery.signing.secrets = secrets.iter().map(|s| Secret(s.to_string())).collect();
        RequestTemplate::new(&config.settings().unwrap().delivery)
    }

    fn record() -> Record {
        Record {
            partition: 1,
            offset: 9,
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"{\"n\":1}")),
            headers: Record::example_headers(&[
                ("content-type", b"application/json"),
                ("ce_ignored", b"x"),
            ]),
            ..Record::example()
        }
    }

    fn header<'a>(request: &'a Request<Full<Bytes>>, name: &str) -> Option<&'a str> {
        request.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The body sent (a `Full` body is ready at once; a small runtime collects it).
    fn body(request: Request<Full<Bytes>>) -> Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        match runtime.block_on(request.into_body().collect()) {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        }
    }

    #[test]
    fn unsigned_by_default() {
        let request = template(Format::Raw, &[]).build(&record());
        assert!(request
            .headers()
            .keys()
            .all(|name| !name.as_str().starts_with("webhook-")));
        // Raw maps every Kafka header, ce_* included.
        assert_eq!(header(&request, "kafka-header-ce_ignored"), Some("x"));
    }

    #[test]
    fn signature_is_made_per_attempt_over_the_bytes_sent() {
        let template = template(Format::CloudeventsStructured, &[SECRET, SECRET]);
        let prepared = template.prepare(&record());
        let first = template.request(&prepared, UNIX_EPOCH + Duration::from_secs(1_000));
        let later = template.request(&prepared, UNIX_EPOCH + Duration::from_secs(5_000));
        assert_eq!(header(&first, "webhook-id"), Some("orders-1-9"));
        assert_eq!(header(&later, "webhook-id"), Some("orders-1-9"));
        assert_eq!(header(&first, "webhook-timestamp"), Some("1000"));
        assert_eq!(header(&later, "webhook-timestamp"), Some("5000"));
        let signature = header(&first, "webhook-signature").unwrap().to_string();
        assert_ne!(
            Some(signature.as_str()),
            header(&later, "webhook-signature")
        );
        let sent = body(first);
        let keys = [crate::config::SigningKey::new(
            base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            .unwrap(),
        )];
        let expected = Signer::new(&keys)
            .unwrap()
            .signature("orders-1-9", 1_000, &sent);
        let expected = expected.to_str().unwrap();
        assert_eq!(signature, format!("{expected} {expected}"));
    }

    #[test]
    fn cloudevents_formats_keep_the_metadata_headers() {
        let binary = template(Format::CloudeventsBinary, &[]).build(&record());
        assert_eq!(header(&binary, "ce-id"), Some("orders-1-9"));
        assert_eq!(header(&binary, "idempotency-key"), Some("orders-1-9"));
        assert_eq!(header(&binary, "kafka-offset"), Some("9"));
        assert_eq!(header(&binary, "content-type"), Some("application/json"));
        // A plain record's ce_* header is no attribute: mapped as usual.
        assert_eq!(header(&binary, "kafka-header-ce_ignored"), Some("x"));
        assert_eq!(
            header(&binary, "kafka-header-content-type"),
            Some("application/json")
        );
        assert_eq!(body(binary), Bytes::from_static(b"{\"n\":1}"));

        let structured = template(Format::CloudeventsStructured, &[]).build(&record());
        assert_eq!(
            header(&structured, "content-type"),
            Some("application/cloudevents+json; charset=utf-8")
        );
        assert_eq!(header(&structured, "kafka-partition"), Some("1"));
        assert!(structured
            .headers()
            .keys()
            .all(|name| !name.as_str().starts_with("ce-")));
        let json: serde_json::Value = serde_json::from_slice(&body(structured)).unwrap();
        assert_eq!(json["data"], serde_json::json!({"n": 1}));
    }
}
