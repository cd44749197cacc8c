//! Batch bodies: many records of one partition in one request. Pure, no I/O.
//!
//! - `json` (`application/json`): a JSON array of envelopes; `ndjson`
//!   (`application/x-ndjson`): the same envelopes, one per line.
//! - With a CloudEvents format: `application/cloudevents-batch+json`, a JSON array of the
//!   records' CloudEvents in the JSON event format (as structured mode sends one).
//!
//! An envelope (the README's contract):
//!
//! ```json
//! {"id":"orders-3-42","topic":"orders","partition":3,"offset":42,"timestamp":1700000000000,
//!  "key":"k-1","headers":[{"name":"h","value":"text"}],"value":{"n":1}}
//! ```
//!
//! `id` is the record's idempotency id (the `entryId` a per-entry result names). `timestamp`
//! is absent when the broker gave none. The key is `key` when it is UTF-8, else
//! `key_base64`, absent when null. `headers` (absent when there are none) keeps every Kafka
//! header in order: `value` when UTF-8, `value_base64` otherwise, `"value":null` for a null
//! value. The record's value is embedded verbatim as `value` when its bytes are one valid JSON
//! document, otherwise it is `value_base64`; a tombstone has neither, and `"tombstone":true`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::base64::push_base64;
use super::cloudevent::CloudEvent;
use super::cloudevents_http;
use super::embed::{self, Layout};
use crate::config::{BatchBody, CloudEventsSettings};
use crate::record::Record;

pub const JSON_CONTENT_TYPE: &str = "application/json";
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";
pub const CLOUDEVENTS_BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// Writes batch bodies of one kind.
#[derive(Debug, Clone)]
pub struct BatchEncoder {
    body: BatchBody,
    cloudevents: CloudEventsSettings,
    /// What a plain record's data is declared as in a CloudEvent (`delivery.content_type`).
    default_type: String,
    /// Shared by every clone (every partition worker).
    spare: Arc<SpareBodies>,
}

/// Body buffers given back when a sent body's last reference drops (on whichever thread),
/// taken again for the next batch: a body is up to `max_bytes` and lives for one request,
/// and a fresh buffer for each costs page faults and leaves the allocator holding freed
/// memory for a while (RSS).
#[derive(Debug, Default)]
struct SpareBodies(Mutex<Vec<Vec<u8>>>);

impl SpareBodies {
    /// At most this many buffers wait here (a few MiB after a burst).
    const KEPT: usize = 8;

    fn take(&self, capacity: usize) -> Vec<u8> {
        let spare = self.0.lock().ok().and_then(|mut spare| spare.pop());
        match spare {
            Some(mut buffer) => {
                buffer.clear();
                buffer.reserve(capacity);
                buffer
            }
            None => Vec::with_capacity(capacity),
        }
    }

    fn give(&self, buffer: Vec<u8>) {
        if let Ok(mut spare) = self.0.lock() {
            if spare.len() < Self::KEPT {
                spare.push(buffer);
            }
        }
    }
}

/// A finished body: its buffer goes back to the spares when the last `Bytes` drops.
struct PooledBody {
    buffer: Vec<u8>,
    spare: Arc<SpareBodies>,
}

impl AsRef<[u8]> for PooledBody {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        self.spare.give(std::mem::take(&mut self.buffer));
    }
}

/// A body being filled up to a byte limit; the first entry always fits.
#[derive(Debug)]
pub struct BatchBuilder {
    body: BatchBody,
    out: Vec<u8>,
    entries: usize,
    max_bytes: usize,
    spare: Arc<SpareBodies>,
}

/// About how long the body of `records` records holding `raw_bytes` of keys, values and
/// headers is: base64 for binary values (4/3), plus the envelope's fields.
pub fn expected_len(records: usize, raw_bytes: usize) -> usize {
    const ENVELOPE: usize = 192;
    raw_bytes / 3 * 4 + records * ENVELOPE
}

impl BatchEncoder {
    pub fn new(body: BatchBody, cloudevents: CloudEventsSettings, default_type: String) -> Self {
        Self {
            body,
            cloudevents,
            default_type,
            spare: Arc::default(),
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self.body {
            BatchBody::JsonArray => JSON_CONTENT_TYPE,
            BatchBody::Ndjson => NDJSON_CONTENT_TYPE,
            BatchBody::CloudEvents => CLOUDEVENTS_BATCH_CONTENT_TYPE,
        }
    }

    /// An empty body that takes entries while it stays within `max_bytes`, with room for
    /// `expected` bytes (see [`expected_len`]: a fair guess spares the copies of a growing
    /// buffer).
    pub fn builder(&self, max_bytes: usize, expected: usize) -> BatchBuilder {
        BatchBuilder {
            body: self.body,
            out: self.spare.take(expected.min(max_bytes)),
            entries: 0,
            max_bytes,
            spare: Arc::clone(&self.spare),
        }
    }

    /// The whole body for `records` (no limit), e.g. for the entries a batch retries.
    pub fn body(&self, records: &[Record]) -> Bytes {
        let raw = records.iter().map(Record::size_bytes).sum();
        let mut builder = self.builder(usize::MAX, expected_len(records.len(), raw));
        for record in records {
            builder.try_add(self, record);
        }
        builder.finish()
    }

    /// Appends the entry of `record` to `out`, without separator.
    pub fn write_entry(&self, record: &Record, out: &mut Vec<u8>) {
        match self.body {
            BatchBody::JsonArray => write_envelope(record, Layout::Json, out),
            BatchBody::Ndjson => write_envelope(record, Layout::OneLine, out),
            BatchBody::CloudEvents => {
                let event = self.event(record);
                cloudevents_http::write_structured(&event, out);
            }
        }
    }

    /// The ids a per-entry result may name `record` by: its idempotency id, and in a
    /// CloudEvents batch its event's `id` when that differs (a record that is an event).
    pub fn entry_ids(&self, record: &Record) -> Vec<String> {
        let mut ids = vec![record.idempotency_id()];
        if self.body == BatchBody::CloudEvents {
            if let Some(id) = self.event(record).attribute("id") {
                if id != ids[0] {
                    ids.push(id);
                }
            }
        }
        ids
    }

    fn event(&self, record: &Record) -> CloudEvent {
        CloudEvent::from_record(record, &self.cloudevents, &self.default_type)
    }
}

impl BatchBuilder {
    /// Adds `record` if the body stays within the byte limit (or it is the first entry);
    /// `false` leaves the body as it was.
    pub fn try_add(&mut self, encoder: &BatchEncoder, record: &Record) -> bool {
        // Written in place (no copy through a scratch buffer), taken back if it does not fit.
        let start = self.out.len();
        let closing = match self.body {
            BatchBody::Ndjson => {
                encoder.write_entry(record, &mut self.out);
                self.out.push(b'\n');
                0
            }
            BatchBody::JsonArray | BatchBody::CloudEvents => {
                self.out.push(if self.entries == 0 { b'[' } else { b',' });
                encoder.write_entry(record, &mut self.out);
                1
            }
        };
        if self.entries > 0 && self.out.len() + closing > self.max_bytes {
            self.out.truncate(start);
            return false;
        }
        self.entries += 1;
        true
    }

    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The body's size once finished.
    pub fn len(&self) -> usize {
        match self.body {
            BatchBody::Ndjson => self.out.len(),
            _ => self.out.len() + 1 + usize::from(self.entries == 0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn finish(mut self) -> Bytes {
        if self.body != BatchBody::Ndjson {
            if self.entries == 0 {
                self.out.push(b'[');
            }
            self.out.push(b']');
        }
        // A buffer grown for a lone record larger than max_bytes is not kept.
        if self.out.capacity() > self.max_bytes.saturating_mul(2) {
            return Bytes::from(self.out);
        }
        Bytes::from_owner(PooledBody {
            buffer: self.out,
            spare: self.spare,
        })
    }
}

/// The envelope of the module doc; the value embedded as JSON in `layout` (one line in
/// NDJSON) when [`embed::document`] accepts it.
fn write_envelope(record: &Record, layout: Layout, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":\"");
    // Topic names are [a-zA-Z0-9._-]: nothing to escape.
    out.extend_from_slice(record.topic.as_bytes());
    out.push(b'-');
    write_number(out, i64::from(record.partition));
    out.push(b'-');
    write_number(out, record.offset);
    out.extend_from_slice(b"\",\"topic\":");
    write_string(out, &record.topic);
    out.extend_from_slice(b",\"partition\":");
    write_number(out, i64::from(record.partition));
    out.extend_from_slice(b",\"offset\":");
    write_number(out, record.offset);
    if let Some(timestamp) = record.timestamp_ms {
        out.extend_from_slice(b",\"timestamp\":");
        write_number(out, timestamp);
    }
    if let Some(key) = &record.key {
        write_bytes(out, "key", key);
    }
    if !record.headers.is_empty() {
        out.extend_from_slice(b",\"headers\":[");
        for (index, (name, value)) in record.headers.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            write_string(out, name);
            match value {
                Some(value) => write_bytes(out, "value", value),
                None => out.extend_from_slice(b",\"value\":null"),
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    match &record.value {
        None => out.extend_from_slice(b",\"tombstone\":true"),
        Some(value) => match embed::document(value, layout) {
            Some(document) => {
                out.extend_from_slice(b",\"value\":");
                document.write_to(out);
            }
            None => write_base64(out, "value_base64", value),
        },
    }
    out.push(b'}');
}

/// `,"{name}":"text"` when UTF-8, else `,"{name}_base64":"…"`.
fn write_bytes(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            write_string(out, text);
        }
        Err(_) => write_base64(out, &format!("{name}_base64"), bytes),
    }
}

fn write_base64(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    push_base64(out, bytes);
    out.push(b'"');
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing JSON into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_number(out: &mut Vec<u8>, number: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn encoder(body: BatchBody) -> BatchEncoder {
        BatchEncoder::new(
            body,
            CloudEventsSettings {
                source: "/kafka/{topic}".into(),
                event_type: "dev.knative.kafka.event".into(),
            },
            "application/octet-stream".into(),
        )
    }

    fn records() -> Vec<Record> {
        vec![
            Record {
                value: Some(Bytes::from_static(b" {\"n\": 1} ")),
                headers: Record::example_headers(&[("h", b"text"), ("bin", b"\xff\x00")]),
                ..Record::example()
            },
            Record {
                offset: 42,
                key: Some(Bytes::from_static(b"\xfe")),
                value: Some(Bytes::from_static(b"plain text")),
                timestamp_ms: None,
                ..Record::example()
            },
            Record {
                offset: 43,
                key: None,
                value: None,
                ..Record::example()
            },
            Record {
                offset: 44,
                value: Some(Bytes::new()),
                headers: vec![("nul".into(), None)],
                ..Record::example()
            },
        ]
    }

    #[test]
    fn json_array_envelopes_are_lossless() {
        let body = encoder(BatchBody::JsonArray).body(&records());
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed[0],
            json!({"id": "orders-2-41", "topic": "orders", "partition": 2, "offset": 41,
                   "timestamp": 1_700_000_000_123i64, "key": "k-1",
                   "headers": [{"name": "h", "value": "text"},
                               {"name": "bin", "value_base64": "/wA="}],
                   "value": {"n": 1}})
        );
        // Embedded verbatim: the receiver can take the exact bytes.
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains("\"value\": {\"n\": 1} }"));
        assert_eq!(
            parsed[1],
            json!({"id": "orders-2-42", "topic": "orders", "partition": 2, "offset": 42,
                   "key_base64": "/g==", "value_base64": "cGxhaW4gdGV4dA=="})
        );
        assert_eq!(parsed[2]["tombstone"], json!(true));
        assert!(parsed[2].get("value").is_none() && parsed[2].get("key").is_none());
        assert_eq!(parsed[3]["value_base64"], json!(""));
        assert_eq!(
            parsed[3]["headers"],
            json!([{"name": "nul", "value": null}])
        );
    }

    #[test]
    fn ndjson_is_one_envelope_per_line() {
        let body = encoder(BatchBody::Ndjson).body(&records());
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1]["offset"], json!(42));
    }

    #[test]
    fn a_sent_body_buffer_is_reused_once_its_last_reference_drops() {
        let encoder = encoder(BatchBody::JsonArray);
        let record = Record::example();
        let mut builder = encoder.builder(1 << 20, 4096);
        assert!(builder.try_add(&encoder, &record));
        let body = builder.finish();
        let address = body.as_ptr();
        let in_flight = body.clone();
        drop(body);
        // Still referenced (a request in flight): the next body gets another buffer.
        let other = encoder.builder(1 << 20, 4096);
        assert_ne!(other.out.as_ptr(), address);
        drop(in_flight);
        let reused = encoder.builder(1 << 20, 4096);
        assert_eq!(reused.out.as_ptr(), address);
        assert!(reused.out.is_empty());

        // A buffer grown past twice max_bytes by a lone large record is not kept.
        let large = Record {
            value: Some(Bytes::from(vec![b'x'; 10_000])),
            ..Record::example()
        };
        let mut builder = encoder.builder(1024, 0);
        assert!(builder.try_add(&encoder, &large));
        let body = builder.finish();
        let address = body.as_ptr();
        drop(body);
        assert_ne!(encoder.builder(1024, 0).out.as_ptr(), address);
    }

    #[test]
    fn builder_stays_within_max_bytes_except_for_a_lone_large_record() {
        let encoder = encoder(BatchBody::JsonArray);
        let small = Record {
            value: Some(Bytes::from(vec![b'x'; 100])),
            ..Record::example()
        };
        let mut builder = encoder.builder(1024, 0);
        let mut added = 0;
        while builder.try_add(&encoder, &small) {
            added += 1;
        }
        assert!(added > 1);
        let len = builder.len();
        let body = builder.finish();
        assert_eq!(body.len(), len);
        assert!(body.len() <= 1024, "{}", body.len());
        assert_eq!(
            serde_json::from_slice::<Vec<Value>>(&body).unwrap().len(),
            added
        );

        let large = Record {
            value: Some(Bytes::from(vec![b'x'; 4096])),
            ..Record::example()
        };
        let mut builder = encoder.builder(1024, 0);
        assert!(builder.try_add(&encoder, &large));
        assert!(!builder.try_add(&encoder, &small));
        assert_eq!(builder.entries(), 1);
        assert_eq!(encoder.builder(10, 0).finish(), Bytes::from_static(b"[]"));
    }

    #[test]
    fn an_entry_that_does_not_fit_leaves_no_trace_in_any_body_kind() {
        let record = Record {
            value: Some(Bytes::from(vec![0xffu8; 300])),
            ..Record::example()
        };
        for kind in [
            BatchBody::JsonArray,
            BatchBody::Ndjson,
            BatchBody::CloudEvents,
        ] {
            let encoder = encoder(kind);
            // Sized too small on purpose: the body grows past its first guess.
            let mut builder = encoder.builder(4096, 16);
            let mut added = 0;
            while builder.try_add(&encoder, &record) {
                added += 1;
            }
            let body = builder.finish();
            assert!(added > 1 && body.len() <= 4096, "{kind:?}: {}", body.len());
            let entries: Vec<Value> = match kind {
                BatchBody::Ndjson => body
                    .split(|byte| *byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| serde_json::from_slice(line).unwrap())
                    .collect(),
                _ => serde_json::from_slice(&body).unwrap(),
            };
            assert_eq!(entries.len(), added, "{kind:?}");
            // Each entry is whole: the rejected one was cut away, not left half written.
            assert_eq!(encoder.body(&vec![record.clone(); added]), body, "{kind:?}");
        }
    }

    #[test]
    fn cloudevents_batch_reads_with_the_official_sdk() {
        let encoder = encoder(BatchBody::CloudEvents);
        let body = encoder.body(&records());
        let events: Vec<cloudevents::Event> = serde_json::from_slice(&body).unwrap();
        assert_eq!(events.len(), 4);
        use cloudevents::AttributesReader;
        assert_eq!(events[0].id(), "orders-2-41");
        assert_eq!(events[1].id(), "orders-2-42");
        assert_eq!(
            encoder.entry_ids(&records()[1]),
            vec!["orders-2-42".to_string()]
        );
    }
}
