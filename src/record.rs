//! An owned Kafka record, detached from librdkafka's buffers so it can move between tasks.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// One record as delivered to the endpoint.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create or log-append time), if the broker gave one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    /// In record order; a header value may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// When the sidecar took the record from its partition queue.
    pub received_at: Instant,
}

impl Record {
    /// Copies a message out of librdkafka's buffer.
    pub fn from_message(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Record {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_string(),
                            header.value.map(Bytes::copy_from_slice),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Record {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(Bytes::copy_from_slice),
            value: message.payload().map(Bytes::copy_from_slice),
            headers,
            received_at: Instant::now(),
        }
    }

    /// `{topic}-{partition}-{offset}`: identical on every attempt of this record.
    pub fn idempotency_id(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }

    /// The value of the first header with this name (case-insensitive), if UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_deref())
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Approximate memory held by the record, for buffer accounting.
    pub fn size_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|(key, value)| key.len() + value.as_ref().map_or(0, Bytes::len))
                .sum::<usize>()
    }
}
