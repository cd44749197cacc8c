//! Every JSON body the sidecar builds is valid for the strictest receiver, whatever a producer
//! wrote to Kafka: a property test over arbitrary records (any bytes for key, value and
//! header values, any text for header names, null keys, tombstones, empty values, and values
//! that are almost JSON) checked by `body_check` for every body kind. No broker needed: the
//! bodies are built by the library's own encoders, exactly as the partition workers call them.

mod body_check;

use std::sync::Arc;
use std::time::Instant;

use body_check::check_records;
use bytes::Bytes;
use kafka_webhook_sidecar::record::Record;
use proptest::prelude::*;
use serde_json::Value;

/// Bytes a strict parser must refuse, or that change a document's lines, inserted anywhere.
const FRAGMENTS: &[&[u8]] = &[
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"\xef\xbb\xbf",
    b"\r\n",
    b"\n",
    b"\r",
    "\u{2028}".as_bytes(),
    "\u{2029}".as_bytes(),
    b"\x00",
    b"\x1f",
    b"0",
    b"-",
    b"NaN",
    b"Infinity",
    b"\\",
    b"\"",
    b",",
    b"]",
    b"}",
    b" ",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |number| number.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[\u{2028}\u{2029}\r\n\t \"\\\\/a-z\u{e9}\u{1f600}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A JSON document as a producer may write it: compact, pretty with LF, pretty with CRLF,
/// or with whitespace (line breaks too) around it.
fn json_text() -> impl Strategy<Value = Vec<u8>> {
    (json_value(), 0..4u8).prop_map(|(value, layout)| {
        let compact = serde_json::to_vec(&value).expect("a value serializes");
        match layout {
            0 => compact,
            1 => serde_json::to_vec_pretty(&value).expect("a value serializes"),
            2 => String::from_utf8(serde_json::to_vec_pretty(&value).expect("serializes"))
                .expect("UTF-8")
                .replace('\n', "\r\n")
                .into_bytes(),
            _ => [&b"\r\n \t"[..], &compact, b"\n\r\n"].concat(),
        }
    })
}

/// Almost JSON: a document, then maybe one edit that may or may not break it.
fn almost_json() -> impl Strategy<Value = Vec<u8>> {
    (
        json_text(),
        0..8u8,
        any::<prop::sample::Index>(),
        0..FRAGMENTS.len(),
        json_text(),
    )
        .prop_map(|(mut text, edit, at, fragment, other)| {
            let at = at.index(text.len() + 1);
            match edit {
                0 | 1 => {}
                2 => text.truncate(at),
                3 => text.extend_from_slice(&other),
                4 => text
                    .splice(at..at, FRAGMENTS[fragment].iter().copied())
                    .for_each(drop),
                5 => text
                    .splice(0..0, FRAGMENTS[fragment].iter().copied())
                    .for_each(drop),
                6 => text.extend_from_slice(FRAGMENTS[fragment]),
                _ => {
                    if let Some(byte) = text.get_mut(at) {
                        *byte = FRAGMENTS[fragment][0];
                    }
                }
            }
            text
        })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        almost_json(),
        Just(br#""\ud800""#.to_vec()),
        Just(b"\"\xff\xfe\"".to_vec()),
    ]
}

/// A header value or name that makes the record claim to be a CloudEvent now and then.
fn header() -> impl Strategy<Value = (String, Option<Bytes>)> {
    let name = prop_oneof![
        any::<String>(),
        Just("content-type".to_string()),
        prop::sample::select(vec![
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_x"
        ])
        .prop_map(str::to_string),
    ];
    let value = prop_oneof![
        any_bytes(),
        prop::sample::select(vec![
            "application/json",
            "application/cloudevents+json",
            "text/plain",
            "1.0",
            "e-1",
        ])
        .prop_map(|text| text.as_bytes().to_vec()),
    ];
    (
        name,
        prop::option::weighted(0.9, value.prop_map(Bytes::from)),
    )
}

fn record() -> impl Strategy<Value = Record> {
    (
        "[a-zA-Z0-9._-]{1,20}",
        0..1000i32,
        0..i64::MAX,
        prop::option::of(any::<i64>()),
        prop::option::weighted(0.8, any_bytes().prop_map(Bytes::from)),
        prop::option::weighted(0.9, any_bytes().prop_map(Bytes::from)),
        prop::collection::vec(header(), 0..4),
    )
        .prop_map(
            |(topic, partition, offset, timestamp_ms, key, value, headers)| Record {
                topic: Arc::from(topic),
                partition,
                offset,
                timestamp_ms,
                key,
                value,
                headers,
                received_at: Instant::now(),
                target: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_body_parses_and_gives_back_its_records(
        records in prop::collection::vec(record(), 1..5)
    ) {
        check_records(&records);
    }
}

fn plain(offset: i64, value: Option<&[u8]>) -> Record {
    Record {
        topic: Arc::from("orders"),
        partition: 0,
        offset,
        timestamp_ms: Some(1_700_000_000_000),
        key: Some(Bytes::from_static(b"k")),
        value: value.map(Bytes::copy_from_slice),
        headers: vec![],
        received_at: Instant::now(),
        target: None,
    }
}

/// The records of the issue: a value that looks like JSON but is not UTF-8 inside its
/// string, pretty-printed JSON with LF and CRLF, a lone surrogate, amid plain records.
#[test]
fn the_odd_records_of_the_issue_leave_every_body_valid() {
    let odd: [&[u8]; 6] = [
        b"\"\xff\xfe\"",
        b"{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}",
        b"{\r\n  \"a\": \"x\"\r\n}\r\n",
        br#"{"s":"\ud800"}"#,
        "{\"u\":\"a\u{2028}b\"}".as_bytes(),
        b"\xef\xbb\xbf{}",
    ];
    let mut records = vec![plain(0, Some(br#"{"n":0}"#))];
    for (index, value) in odd.iter().enumerate() {
        records.push(plain(2 * index as i64 + 1, Some(value)));
        records.push(plain(2 * index as i64 + 2, Some(br#"{"n":1}"#)));
    }
    check_records(&records);
}

/// Crashes the fuzz target found, kept as regression tests (the input's first byte is the
/// target's flag byte: 0x08 = `content-type: application/cloudevents+json`).
#[test]
fn fuzz_crashes_stay_fixed() {
    // A structured event whose lone surrogate sits in a member that a later duplicate
    // replaces: it was passed through as it was, and the CloudEvents batch did not parse.
    let value = br#"{"specversion":"1.0","id":"e","soon":"0.0\udc00","bd":"e","source":"/s","type":"t","se6cversion":"1.0","id":"e","soon":"0.0","bd":"e","sourcetyp4":"AA%E="}"#;
    let mut record = plain(0, Some(value));
    record.headers = vec![(
        "content-type".into(),
        Some(Bytes::from_static(b"application/cloudevents+json")),
    )];
    check_records(&[record]);
}
