//! Fuzz target `bodies`: records made from the fuzzer's bytes through every JSON body the
//! sidecar builds, checked by the receiver-side checker of the property test
//! (`tests/body_check`): every body strict JSON, one document per NDJSON line, entries in
//! record order, every record's bytes given back. A broken rule panics, which libFuzzer
//! reports as a crash.
//!
//! Input: up to 8 records separated by `\n--\n`; each is one flag byte and the value's bytes
//! (so a seed is a test's value with a byte in front, see `fuzz/seeds.py`). Flags:
//! bit 0 the key is the value's bytes (else `k`), bit 1 a tombstone (the value still feeds
//! the key and headers), bit 2 `content-type: application/json`, bit 3
//! `content-type: application/cloudevents+json` (a structured event to pass through), bit 4
//! a header `h` with the value's bytes and a header named by their lossy text, bit 5 the
//! `ce_*` headers of a Kafka binary-mode event, bit 6 no timestamp, bit 7 the timestamp from
//! the value's first 8 bytes (any i64).
#![no_main]

#[path = "common/mod.rs"]
mod common;

#[path = "../../tests/body_check/mod.rs"]
mod body_check;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_webhook_sidecar::record::Record;
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n--\n";

fn record(offset: i64, part: &[u8]) -> Option<Record> {
    let (&flags, value) = part.split_first()?;
    let bytes = Bytes::copy_from_slice(value);
    let bit = |n: u8| flags & (1 << n) != 0;
    let mut headers = Vec::new();
    if bit(2) {
        headers.push((
            "content-type".to_string(),
            Some(Bytes::from_static(b"application/json")),
        ));
    }
    if bit(3) {
        headers.push((
            "content-type".to_string(),
            Some(Bytes::from_static(b"application/cloudevents+json")),
        ));
    }
    if bit(4) {
        headers.push(("h".to_string(), Some(bytes.clone())));
        headers.push((String::from_utf8_lossy(value).into_owned(), None));
    }
    if bit(5) {
        for (name, text) in [
            ("ce_specversion", "1.0"),
            ("ce_id", "e-1"),
            ("ce_source", "/s"),
            ("ce_type", "t"),
        ] {
            headers.push((name.to_string(), Some(Bytes::from_static(text.as_bytes()))));
        }
    }
    let timestamp_ms = if bit(7) {
        let mut first = [0u8; 8];
        let n = value.len().min(8);
        first[..n].copy_from_slice(&value[..n]);
        Some(i64::from_le_bytes(first))
    } else if bit(6) {
        None
    } else {
        Some(1_700_000_000_000)
    };
    Some(Record {
        topic: Arc::from("fuzz.topic-1"),
        partition: 3,
        offset,
        timestamp_ms,
        key: Some(if bit(0) {
            bytes.clone()
        } else {
            Bytes::from_static(b"k")
        }),
        value: (!bit(1)).then_some(bytes),
        headers,
        received_at: Instant::now(),
        target: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let records: Vec<Record> = common::split(data, SEPARATOR)
        .into_iter()
        .take(8)
        .enumerate()
        .filter_map(|(index, part)| record(index as i64, part))
        .collect();
    if !records.is_empty() {
        body_check::check_records(&records);
    }
});
