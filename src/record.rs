//! An owned Kafka record, detached from librdkafka's buffers so it can move between tasks
//! (`kafka::source` makes it; every later stage reads it).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

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
    /// The URL a route's rule chose for this record; `None` = the route's `delivery.url`.
    pub target: Option<http::Uri>,
}

impl Record {
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

#[cfg(test)]
impl Record {
    /// A record for unit tests: `orders`, partition 2, offset 41, a timestamp, key `k-1`,
    /// value `v`, no headers. Tests change what they look at with `..Record::example()`.
    pub(crate) fn example() -> Record {
        Record {
            topic: Arc::from("orders"),
            partition: 2,
            offset: 41,
            timestamp_ms: Some(1_700_000_000_123),
            key: Some(Bytes::from_static(b"k-1")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
            received_at: Instant::now(),
            target: None,
        }
    }

    /// Headers for a test record, each with a value.
    pub(crate) fn example_headers(headers: &[(&str, &[u8])]) -> Vec<(String, Option<Bytes>)> {
        headers
            .iter()
            .map(|(name, value)| (name.to_string(), Some(Bytes::copy_from_slice(value))))
            .collect()
    }
}
