//! A partition's own librdkafka queue as a worker's [`PartitionSource`]: records are copied
//! out of librdkafka's buffers into owned [`Record`]s, offsets stored through the consumer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::offset_reset::ResetWatch;
use crate::ops::events;
use crate::ops::Metrics;
use crate::partition::PartitionSource;
use crate::record::Record;

/// One partition's split queue and the consumer that stores its offsets. Holding the
/// consumer `Arc` keeps it open until the worker ends.
pub struct KafkaPartition<C: ConsumerContext + 'static> {
    pub topic: Arc<str>,
    pub partition: i32,
    pub queue: PartitionQueue<C>,
    pub consumer: Arc<BaseConsumer<C>>,
    /// Set when librdkafka reset this partition's position (records were skipped).
    pub resets: ResetWatch,
    pub metrics: Metrics,
}

impl<C: ConsumerContext + 'static> PartitionSource for KafkaPartition<C> {
    fn poll(&mut self, now: Instant) -> Option<Result<Record, KafkaError>> {
        let result = self.queue.poll(Duration::ZERO)?;
        Some(result.map(|message| {
            let record = record_from(&message, self.topic.clone(), now);
            if let Some((from, to)) = self.resets.check(record.offset) {
                events::offsets_skipped(&self.metrics, &self.topic, self.partition, from, to);
            }
            record
        }))
    }

    fn set_paused(&self, paused: bool) -> Result<(), KafkaError> {
        // librdkafka drops what it prefetched for the partition on pause and fetches again
        // from the application position (one past the last record polled) on resume, so
        // nothing is lost or reordered; records re-fetched below what the worker holds are
        // skipped by its tracker.
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition(&self.topic, self.partition);
        if paused {
            self.consumer.pause(&list)
        } else {
            self.consumer.resume(&list)
        }
    }

    fn store(&self, offset: i64) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))?;
        self.consumer.store_offsets(&list)
    }
}

/// Copies a message out of librdkafka's buffer; it was received at `received_at`.
pub fn record_from(message: &BorrowedMessage<'_>, topic: Arc<str>, received_at: Instant) -> Record {
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
        received_at,
        target: None,
    }
}
