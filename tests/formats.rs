//! What the endpoint receives, checked with the official SDKs against a real broker: every
//! request of a CloudEvents run is parsed by the CloudEvents SDK's HTTP binding (binary and
//! structured mode), records produced as CloudEvents in either Kafka mode come out as the same
//! event, and every signed request (retries included, one or two secrets) is verified by the
//! Standard Webhooks crate; a tampered body fails, and no secret reaches the logs at debug.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cloudevents::binding::http::to_event;
use cloudevents::{AttributesReader, Data, Event};
use common::endpoint::{Endpoint, RecordedRequest, Reply};
use common::*;
use kafka_webhook_sidecar::config::{Format, Secret};
use standardwebhooks::Webhook;

const LONG: Duration = Duration::from_secs(120);

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";

/// The attributes (extensions included) of a produced CloudEvent, shared by its Kafka binary
/// and structured copies; only `id` differs.
const PRODUCED_ATTRIBUTES: &[(&str, &str)] = &[
    ("source", "/orders/service"),
    ("type", "com.example.order.created"),
    ("subject", "order 1234"),
    ("time", "2024-01-02T03:04:05Z"),
    ("dataschema", "https://schemas.example.com/order.json"),
    ("tenant", "acme"),
    ("traceid", "abc-123"),
];
const PRODUCED_DATA: &str = r#"{"order":1234,"items":[{"sku":"A-1","qty":2}],"note":"ünïcode"}"#;

/// The HTTP binding percent-encodes header values (binary mode); the SDK leaves them as
/// sent, so the test decodes them.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                out.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8(out).expect("percent-decoded UTF-8")
}

/// Every attribute and extension of `event` as text, `specversion` included; values
/// percent-decoded when `format` is binary mode.
fn attributes(event: &Event, format: Format) -> BTreeMap<String, String> {
    let text = |value: String| match format {
        Format::CloudeventsBinary => percent_decoded(&value),
        _ => value,
    };
    let mut all: BTreeMap<String, String> = event
        .iter_attributes()
        .map(|(name, value)| (name.to_string(), text(value.to_string())))
        .collect();
    for (name, value) in event.iter_extensions() {
        all.insert(name.to_string(), text(value.to_string()));
    }
    all
}

/// The data as bytes, whatever variant the SDK chose.
fn data_bytes(event: &Event) -> Option<Vec<u8>> {
    event.data().map(|data| match data {
        Data::Binary(bytes) => bytes.clone(),
        Data::String(text) => text.clone().into_bytes(),
        Data::Json(value) => serde_json::to_vec(value).expect("JSON"),
    })
}

/// The data as JSON, whatever variant the SDK chose.
fn data_json(event: &Event) -> serde_json::Value {
    let bytes = data_bytes(event).expect("the event has data");
    serde_json::from_slice(&bytes).expect("JSON data")
}

/// Parses a request with the CloudEvents SDK, checking it is in the expected HTTP mode.
fn parse(request: &RecordedRequest, format: Format) -> Event {
    let content_type = request.header("content-type").unwrap_or_default();
    match format {
        Format::CloudeventsStructured => assert!(
            content_type.starts_with("application/cloudevents+json"),
            "structured mode: content-type {content_type:?}"
        ),
        _ => assert!(
            request.header("ce-specversion").is_some()
                && !content_type.starts_with("application/cloudevents"),
            "binary mode: content-type {content_type:?}"
        ),
    }
    to_event(&request.headers, request.body.to_vec()).unwrap_or_else(|error| {
        panic!(
            "the CloudEvents SDK rejects a request ({error}): headers {:?} body {:?}",
            request.headers,
            request.body_str()
        )
    })
}

/// Produces the test records: four plain ones (JSON with a key, binary with a binary key,
/// a non-ASCII key, a tombstone), the same CloudEvent in Kafka binary and structured mode,
/// and a record that claims to be a structured CloudEvent but is not valid JSON.
async fn produce_records(topic: &str) {
    produce_raw(
        topic,
        Some(b"k0"),
        Some(br#"{"plain":0}"#),
        &[
            ("content-type", Some(b"application/json")),
            ("source-app", Some(b"checkout")),
        ],
    )
    .await;
    produce_raw(topic, Some(b"\xff\x00"), Some(b"\x00\x01\x02\xff"), &[]).await;
    produce_raw(
        topic,
        Some("café 1".as_bytes()),
        Some(b"plain text"),
        &[("content-type", Some(b"text/plain"))],
    )
    .await;
    produce_raw(topic, Some(b"gone"), None, &[]).await;

    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("ce_specversion".into(), b"1.0".to_vec()),
        ("ce_id".into(), b"evt-binary".to_vec()),
    ];
    for (name, value) in PRODUCED_ATTRIBUTES {
        headers.push((format!("ce_{name}"), value.as_bytes().to_vec()));
    }
    headers.push(("content-type".into(), b"application/json".to_vec()));
    headers.push(("x-not-an-attribute".into(), b"kept".to_vec()));
    let borrowed: Vec<(&str, Option<&[u8]>)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), Some(value.as_slice())))
        .collect();
    produce_raw(
        topic,
        Some(b"ce"),
        Some(PRODUCED_DATA.as_bytes()),
        &borrowed,
    )
    .await;

    let mut structured = serde_json::Map::new();
    structured.insert("specversion".into(), "1.0".into());
    structured.insert("id".into(), "evt-structured".into());
    for (name, value) in PRODUCED_ATTRIBUTES {
        structured.insert(name.to_string(), (*value).into());
    }
    structured.insert("datacontenttype".into(), "application/json".into());
    let mut document = serde_json::to_string(&structured).unwrap();
    // The data exactly as written (spacing included), spliced in as raw JSON.
    document.pop();
    document.push_str(&format!(r#","data":{PRODUCED_DATA}}}"#));
    produce_raw(
        topic,
        Some(b"ce"),
        Some(document.as_bytes()),
        &[(
            "content-type",
            Some(b"application/cloudevents+json; charset=UTF-8"),
        )],
    )
    .await;
    // Claims to be a structured CloudEvent but is not one: wrapped, still delivered.
    produce_raw(
        topic,
        Some(b"bad"),
        Some(b"{not an event"),
        &[("content-type", Some(b"application/cloudevents+json"))],
    )
    .await;
}

/// Runs a sidecar in `format` over the test records and checks every request.
async fn cloudevents_mode(format: Format) {
    const RECORDS: usize = 7;
    let label = format!("{format:?}").to_lowercase();
    let topic = unique(&format!("ce-{label}"));
    let group = unique("ce-group");
    create_topic(&topic, 1).await;
    produce_records(&topic).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.format = format;
    let _sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(RECORDS, LONG).await;

    let requests = endpoint.successful_requests();
    assert_eq!(requests.len(), RECORDS, "{}", endpoint.summary());
    let events: HashMap<String, (Event, &RecordedRequest)> = requests
        .iter()
        .map(|request| {
            let event = parse(request, format);
            (event.id().to_string(), (event, request))
        })
        .collect();
    assert_eq!(events.len(), RECORDS, "distinct event ids");

    // Plain records are wrapped.
    for offset in 0..4 {
        let id = format!("{topic}-0-{offset}");
        let (event, request) = events.get(&id).unwrap_or_else(|| panic!("no event {id}"));
        assert_eq!(event.source(), format!("/kafka/{topic}").as_str());
        assert_eq!(event.ty(), "dev.knative.kafka.event");
        assert_eq!(
            event.subject(),
            Some(format!("partition:0#{offset}").as_str())
        );
        let timestamp: i64 = request.header("kafka-timestamp").unwrap().parse().unwrap();
        assert_eq!(
            event.time().map(|time| time.timestamp_millis()),
            Some(timestamp)
        );
        assert_eq!(request.idempotency_id(), Some(id.as_str()));
        let attributes = attributes(event, format);
        match offset {
            0 => {
                assert_eq!(event.datacontenttype(), Some("application/json"));
                assert_eq!(data_json(event), serde_json::json!({"plain": 0}));
                assert_eq!(attributes.get("key").map(String::as_str), Some("k0"));
                assert_eq!(request.header("kafka-header-source-app"), Some("checkout"));
            }
            1 => {
                assert_eq!(event.datacontenttype(), Some("application/octet-stream"));
                assert_eq!(data_bytes(event), Some(b"\x00\x01\x02\xff".to_vec()));
                assert_eq!(attributes.get("keyb64").map(String::as_str), Some("/wA="));
                assert!(!attributes.contains_key("key"));
            }
            2 => {
                assert_eq!(event.datacontenttype(), Some("text/plain"));
                assert_eq!(data_bytes(event), Some(b"plain text".to_vec()));
                assert_eq!(attributes.get("key").map(String::as_str), Some("café 1"));
            }
            _ => {
                assert_eq!(event.data(), None, "a tombstone has no data");
                assert_eq!(request.header("kafka-tombstone"), Some("true"));
            }
        }
    }

    // The CloudEvents come out as produced, identical but for their id.
    let mut expected: BTreeMap<String, String> = PRODUCED_ATTRIBUTES
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    expected.insert("specversion".into(), "1.0".into());
    expected.insert("datacontenttype".into(), "application/json".into());
    let mut seen = Vec::new();
    for id in ["evt-binary", "evt-structured"] {
        let (event, request) = events.get(id).unwrap_or_else(|| panic!("no event {id}"));
        let mut got = attributes(event, format);
        assert_eq!(got.remove("id").as_deref(), Some(id));
        // The SDK writes times in its own RFC 3339 form: compare the instant.
        let time = got.remove("time").expect("time");
        assert_eq!(
            event.time().map(|time| time.timestamp()),
            Some(1_704_164_645),
            "{id}: time {time}"
        );
        let mut want = expected.clone();
        want.remove("time");
        assert_eq!(got, want, "{id}: attributes");
        let data: serde_json::Value = serde_json::from_str(PRODUCED_DATA).unwrap();
        assert_eq!(data_json(event), data, "{id}: data");
        if format == Format::CloudeventsBinary {
            // Binary mode: the data is the body, byte for byte.
            assert_eq!(request.body_str(), PRODUCED_DATA, "{id}: body");
        } else {
            assert!(
                request.body_str().contains(PRODUCED_DATA),
                "{id}: the data is embedded as written: {}",
                request.body_str()
            );
        }
        assert_eq!(request.header("kafka-header-ce_id"), None);
        seen.push((got, data_bytes(event)));
    }
    assert_eq!(seen[0], seen[1], "both Kafka modes give the same event");

    // The invalid one is wrapped, its data kept byte for byte.
    let (invalid, _) = events
        .get(&format!("{topic}-0-6"))
        .expect("the invalid event, wrapped");
    assert_eq!(invalid.ty(), "dev.knative.kafka.event");
    assert_eq!(invalid.datacontenttype(), Some("application/octet-stream"));
    assert_eq!(data_bytes(invalid), Some(b"{not an event".to_vec()));
    let (_, binary) = events.get("evt-binary").unwrap();
    assert_eq!(
        binary.header("kafka-header-x-not-an-attribute"),
        Some("kept")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_binary_mode_parses_with_the_sdk() {
    cloudevents_mode(Format::CloudeventsBinary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_structured_mode_parses_with_the_sdk() {
    cloudevents_mode(Format::CloudeventsStructured).await;
}

/// Verifies every request with each secret; returns the requests grouped by `webhook-id`.
fn verify_all(requests: &[RecordedRequest], secrets: &[&str]) -> BTreeMap<String, Vec<u64>> {
    let mut timestamps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for request in requests {
        for secret in secrets {
            let webhook = Webhook::new(secret).expect("secret");
            if let Err(error) = webhook.verify(&request.body, &request.headers) {
                panic!(
                    "standardwebhooks rejects a request ({error}): {:?} {:?}",
                    request.headers,
                    request.body_str()
                );
            }
        }
        let id = request
            .header("webhook-id")
            .expect("webhook-id")
            .to_string();
        assert_eq!(request.idempotency_id(), Some(id.as_str()));
        let timestamp = request
            .header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .expect("webhook-timestamp");
        let signatures = request.header("webhook-signature").expect("signature");
        assert_eq!(signatures.split(' ').count(), secrets.len());
        timestamps.entry(id).or_default().push(timestamp);

        // The check can fail: a tampered body, or another secret.
        let mut tampered = request.body.to_vec();
        tampered.extend_from_slice(b" ");
        let webhook = Webhook::new(secrets[0]).unwrap();
        assert!(webhook.verify(&tampered, &request.headers).is_err());
        let stranger = Webhook::new("whsec_c3RyYW5nZXItc2VjcmV0LTI0LWJ5dGVzISE=").unwrap();
        assert!(stranger.verify(&request.body, &request.headers).is_err());
    }
    timestamps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_requests_verify_with_one_and_two_secrets_across_retries() {
    const RECORDS: usize = 4;
    let topic = unique("signed");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 2, RECORDS).await;

    // Each record: 429 with Retry-After: 2 (so attempts land in different seconds), then
    // 503, then 200.
    let handler = |_: &RecordedRequest, attempt: common::endpoint::Attempt| match attempt.nth_for_id
    {
        1 => Reply::status(429).with_header("retry-after", "2"),
        2 => Reply::status(503),
        _ => Reply::ok(),
    };
    let one = Endpoint::start().await;
    one.set_handler(handler);
    let two = Endpoint::start().await;
    two.set_handler(handler);

    // One secret, raw format, the secret inline.
    let mut config_one = test_config(&unique("signed-one"), &topic, &one.url());
    config_one.delivery.retry.max_backoff = Duration::from_secs(3);
    config_one.delivery.signing.secrets = vec![Secret(SECRET_A.into())];
    // Two secrets from the environment, structured CloudEvents, debug logs.
    let mut config_two = test_config(&unique("signed-two"), &topic, &two.url());
    config_two.delivery.retry.max_backoff = Duration::from_secs(3);
    config_two.delivery.format = Format::CloudeventsStructured;
    config_two.delivery.signing.secrets = vec![
        Secret("${KWS_TEST_SECRET_A}".into()),
        Secret("${KWS_TEST_SECRET_B}".into()),
    ];
    config_two.log.level = "debug".into();

    let sidecar_one = Sidecar::start(&config_one);
    let mut sidecar_two = Sidecar::start_with_env(
        &config_two,
        &[
            ("KWS_TEST_SECRET_A", SECRET_A),
            ("KWS_TEST_SECRET_B", SECRET_B),
        ],
    );
    sidecar_two.wait_ready(LONG).await;
    one.wait_for_requests(RECORDS, LONG).await;
    two.wait_for_requests(RECORDS, LONG).await;

    for (endpoint, secrets) in [(&one, &[SECRET_A][..]), (&two, &[SECRET_A, SECRET_B][..])] {
        let requests = endpoint.requests();
        assert_eq!(requests.len(), RECORDS * 3, "{}", endpoint.summary());
        let timestamps = verify_all(&requests, secrets);
        assert_eq!(timestamps.len(), RECORDS);
        for (id, attempts) in timestamps {
            assert_eq!(attempts.len(), 3, "{id}");
            // Signed per attempt: the retry after Retry-After: 2 carries a later time.
            assert!(
                attempts[1] > attempts[0] && attempts[2] >= attempts[1],
                "{id}: timestamps {attempts:?}"
            );
        }
    }
    for request in two.requests() {
        parse(&request, Format::CloudeventsStructured);
    }

    // No secret in the logs (debug level) or the metrics.
    for (sidecar, name) in [(&sidecar_one, "one"), (&sidecar_two, "two")] {
        let logs = sidecar.logs();
        assert!(
            logs.contains("DEBUG") || name == "one",
            "sidecar {name} logs at debug"
        );
        let metrics = sidecar.metrics();
        for secret in [SECRET_A, SECRET_B] {
            let encoded = secret.trim_start_matches("whsec_");
            for text in [&logs, &metrics] {
                assert!(!text.contains(encoded), "sidecar {name} shows a secret");
            }
        }
    }
}
