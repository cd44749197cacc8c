//! One task per assigned partition: takes records from the partition's own rdkafka queue into a
//! bounded buffer, releases them to deliveries as the ordering mode allows, and stores the
//! committable offset (lowest unacknowledged) after each acknowledgement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{debug, error, warn};

use crate::config::Ordering;
use crate::consumer::SidecarContext;
use crate::delivery::{Deliverer, Disposition, Drain};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::record::Record;
use crate::scheduler::{Key, Scheduler};

/// librdkafka's queue of one partition.
pub type PartitionQueue = rdkafka::consumer::base_consumer::PartitionQueue<SidecarContext>;

/// Settings shared by every partition worker.
pub struct WorkerSettings {
    pub ordering: Ordering,
    pub in_flight_cap: usize,
    /// Records buffered beyond those in flight (lets key mode find a free key).
    pub buffer_records: usize,
    /// Bytes held (buffered and in flight) before the worker stops taking records; at least
    /// one record is always taken, however large.
    pub buffer_bytes: usize,
}

/// What a finished worker leaves behind.
#[derive(Debug, Clone, Copy)]
pub struct WorkerExit {
    /// The final committable offset it stored, if it received anything.
    pub committable: Option<i64>,
}

pub struct PartitionWorker {
    pub topic: Arc<str>,
    pub partition: i32,
    pub queue: PartitionQueue,
    pub wakeup: Arc<Notify>,
    pub consumer: Arc<BaseConsumer<SidecarContext>>,
    pub deliverer: Arc<Deliverer>,
    pub settings: Arc<WorkerSettings>,
    pub drain: Drain,
    pub metrics: Metrics,
}

struct Completed {
    offset: i64,
    key: Key,
    size: usize,
    disposition: Disposition,
}

impl PartitionWorker {
    /// Runs until the drain signal stops it and its in-flight deliveries have finished.
    pub async fn run(self) -> WorkerExit {
        let topic = self.topic.clone();
        let partition_label = self.partition.to_string();
        let mut scheduler: Scheduler<Record> =
            Scheduler::new(self.settings.ordering, self.settings.in_flight_cap);
        let mut tracker = OffsetTracker::new();
        let mut deliveries: JoinSet<Completed> = JoinSet::new();
        let mut held_bytes = 0usize;
        let mut draining = false;
        let mut stored: Option<i64> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let received_counter = self.metrics.records_received.with_label_values(&[&topic]);

        loop {
            // Take what the partition queue holds, up to the buffer bounds.
            while !draining && self.has_room(&scheduler, held_bytes) {
                let Some(result) = self.queue.poll(Duration::ZERO) else {
                    break;
                };
                match result {
                    Ok(message) => {
                        let record = Record::from_message(&message, topic.clone());
                        drop(message);
                        if let Err(track_error) = tracker.received(record.offset) {
                            // A record at or below one already held: librdkafka re-fetched it.
                            // We hold or acknowledged it already, so skipping loses nothing.
                            warn!(topic = %topic, partition = self.partition, error = %track_error, "Skipped re-fetched record");
                            continue;
                        }
                        received_counter.inc();
                        held_bytes += record.size_bytes();
                        scheduler.push(record.key.clone(), record);
                    }
                    Err(kafka_error) => {
                        warn!(topic = %topic, partition = self.partition, error = %kafka_error, "Partition queue error");
                    }
                }
            }

            if !draining {
                while let Some((key, record)) = scheduler.next_ready() {
                    self.metrics.in_flight.inc();
                    let offset = record.offset;
                    let size = record.size_bytes();
                    let delivery = self.deliverer.clone().deliver(record, self.drain.clone());
                    deliveries.spawn(async move {
                        let disposition = delivery.await;
                        Completed {
                            offset,
                            key,
                            size,
                            disposition,
                        }
                    });
                }
            }

            if let Some(committable) = tracker
                .committable()
                .filter(|offset| Some(*offset) != stored)
            {
                self.store(committable);
                stored = Some(committable);
            }

            if draining && deliveries.is_empty() {
                break;
            }

            let room = !draining && self.has_room(&scheduler, held_bytes);
            tokio::select! {
                _ = self.drain.stop.cancelled(), if !draining => {
                    draining = true;
                    let unsent = scheduler.clear_waiting();
                    held_bytes -= unsent.iter().map(Record::size_bytes).sum::<usize>();
                    debug!(topic = %topic, partition = self.partition, unsent = unsent.len(), in_flight = deliveries.len(), "Draining partition");
                }
                Some(joined) = deliveries.join_next() => {
                    self.metrics.in_flight.dec();
                    match joined {
                        Ok(done) => {
                            scheduler.finished(&done.key);
                            held_bytes -= done.size;
                            if done.disposition.is_acknowledged() {
                                if let Err(track_error) = tracker.acknowledged(done.offset) {
                                    error!(topic = %topic, partition = self.partition, error = %track_error, "Offset tracking error");
                                }
                            }
                        }
                        Err(join_error) => {
                            // A delivery task panicked: its record stays unacknowledged, so the
                            // committed offset can never pass it. Stop this partition and report
                            // unhealthy so the pod restarts and redelivers from the commit.
                            error!(topic = %topic, partition = self.partition, error = %join_error, "Delivery task failed; stopping the partition");
                            self.consumer.context().mark_unhealthy();
                            draining = true;
                            self.drain.stop.cancel();
                        }
                    }
                }
                _ = self.wakeup.notified(), if room => {}
                _ = tick.tick() => {
                    self.update_gauges(&tracker, &partition_label);
                }
            }
        }

        self.metrics.forget_partition(&topic, self.partition);
        WorkerExit {
            committable: stored,
        }
    }

    fn has_room(&self, scheduler: &Scheduler<Record>, held_bytes: usize) -> bool {
        let waiting = scheduler.waiting();
        waiting < self.settings.buffer_records
            && (held_bytes < self.settings.buffer_bytes
                || (waiting == 0 && scheduler.in_flight() == 0))
    }

    /// Stores the committable offset; librdkafka commits it on the next auto-commit, on
    /// revoke and on close.
    fn store(&self, offset: i64) {
        let mut list = TopicPartitionList::with_capacity(1);
        if let Err(error) =
            list.add_partition_offset(&self.topic, self.partition, Offset::Offset(offset))
        {
            error!(topic = %self.topic, partition = self.partition, %error, "Could not build offset list");
            return;
        }
        if let Err(error) = self.consumer.store_offsets(&list) {
            // Happens when the partition was lost (not revoked) under us; the new owner
            // resumes from the last commit, so nothing is skipped.
            warn!(topic = %self.topic, partition = self.partition, offset, %error, "Could not store offset");
        }
    }

    fn update_gauges(&self, tracker: &OffsetTracker, partition_label: &str) {
        let age = tracker.oldest_unacknowledged().map_or(0.0, |(_, at)| {
            Instant::now().duration_since(at).as_secs_f64()
        });
        self.metrics
            .oldest_unacked_age
            .with_label_values(&[self.topic.as_ref(), partition_label])
            .set(age);
    }
}
