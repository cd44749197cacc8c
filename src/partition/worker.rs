//! One task per assigned partition: takes records from the partition's source into a bounded
//! buffer, releases them to deliveries (one record each, or batches when `delivery.batch` is
//! on) as the ordering mode allows, and stores the committable offset (lowest
//! unacknowledged) after each acknowledgement. It runs inside a `partition` span carrying
//! `topic` and `partition`.
//!
//! A batch is released as soon as the records waiting reach `max_records` or `max_bytes`, or
//! when the oldest waiting record has waited `max_wait` and nothing more can be taken now
//! (the partition queue is empty or the buffer full). Its entries are settled one by one on a
//! channel as the endpoint's answers arrive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tracing::{debug, error, warn, Instrument};

use super::offsets::{OffsetTracker, PositionHint};
use super::pause::{PauseChange, PauseControl};
use super::scheduler::{Key, Scheduler};
use super::PartitionSource;
use crate::budget::BufferShare;
use crate::config::{BatchSettings, Ordering};
use crate::delivery::{Deliverer, Disposition, Drain, HttpClient, Transport};
use crate::format::batch;
use crate::ops::events::{self, PartitionMetrics};
use crate::ops::{Health, Metrics};
use crate::record::Record;

/// Sleeps until `at` (a partial batch's `max_wait`); never when `None` (the branch is off).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How often the head-of-line record's age is published and the pause decision taken, while
/// a record is unacknowledged.
const HEAD_CHECK: Duration = Duration::from_secs(1);

/// How often a fenced worker checks whether it may deliver again.
const FENCE_RECHECK: Duration = Duration::from_millis(100);

/// Settings shared by every partition worker.
pub struct WorkerSettings {
    pub ordering: Ordering,
    pub in_flight_cap: usize,
    /// Records buffered beyond those in flight (lets key mode find a free key).
    pub buffer_records: usize,
    /// Bytes held (buffered and in flight) before the worker stops taking records: this
    /// partition's share of the memory budget, which follows the assignment. At least one
    /// record is always taken, however large.
    pub buffer: BufferShare,
    /// Batching limits; `None` = one record per request.
    pub batch: Option<BatchSettings>,
    /// Pause fetching after the head waited this long with no progress; `None` = never.
    pub pause_fetch_after: Option<Duration>,
}

/// What a finished worker leaves behind.
#[derive(Debug, Clone, Copy)]
pub struct WorkerExit {
    /// The final committable offset it stored, if it received anything.
    pub committable: Option<i64>,
}

/// One partition's worker. `S` is where records come from, `T` how they are sent.
pub struct PartitionWorker<S, T = HttpClient> {
    pub topic: Arc<str>,
    pub partition: i32,
    /// The route it delivers for, when the config has routes (in its span and logs).
    pub route: Option<Arc<str>>,
    pub source: S,
    /// Notified when the source gets records, or its position hint an offer.
    pub wakeup: Arc<Notify>,
    /// The partition's position, offered by the consumer's position look-up.
    pub position: Arc<PositionHint>,
    pub deliverer: Arc<Deliverer<T>>,
    pub settings: Arc<WorkerSettings>,
    pub drain: Drain,
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

/// What the worker's buffer holds, in bytes.
#[derive(Default)]
struct Footprint {
    /// Records buffered or in flight, and the bodies of batches in flight.
    held: usize,
    /// Records waiting (not in flight).
    waiting: usize,
}

/// A finished delivery: what to give back to the scheduler and the buffer.
struct Completed {
    released: Released,
    /// Buffer bytes of its records.
    size: usize,
    records: usize,
}

enum Released {
    /// One record; its disposition.
    Record {
        offset: i64,
        key: Key,
        disposition: Disposition,
    },
    /// A batch (its entries were settled on the channel); the keys it held in `key` mode.
    Batch { keys: Vec<Bytes> },
}

impl<S: PartitionSource, T: Transport> PartitionWorker<S, T> {
    /// Runs until the drain signal stops it and its in-flight deliveries have finished.
    pub async fn run(self) -> WorkerExit {
        let span = tracing::info_span!(
            "partition",
            topic = %self.topic,
            partition = self.partition,
            route = tracing::field::Empty
        );
        if let Some(route) = &self.route {
            span.record("route", &**route);
        }
        self.work().instrument(span).await
    }

    async fn work(mut self) -> WorkerExit {
        let partition_metrics = PartitionMetrics::new(&self.metrics, &self.topic, self.partition);
        let mut scheduler: Scheduler<Record> =
            Scheduler::new(self.settings.ordering, self.settings.in_flight_cap);
        let mut tracker = OffsetTracker::new();
        let mut deliveries: JoinSet<Completed> = JoinSet::new();
        let mut bytes = Footprint::default();
        let (settled_sender, mut settled) = mpsc::unbounded_channel::<(i64, Disposition)>();
        let mut draining = false;
        let mut stored: Option<i64> = None;
        let mut pause = PauseControl::new(self.settings.pause_fetch_after, Instant::now());
        // The head-of-line check (age gauge, pause decision): armed only while a record is
        // unacknowledged, so an idle partition has no timer at all.
        let mut check = std::pin::pin!(tokio::time::sleep(HEAD_CHECK));
        let mut check_armed = false;

        loop {
            // The drain begins here, before anything is polled or started, whatever woke the
            // loop: the select below may take a finished delivery before it sees the token
            // (the zombie fault test caught a partition being revoked that started its next
            // record that way, while the rebalance callback lifted the freeze fence).
            if !draining && self.drain.stop.is_cancelled() {
                draining = true;
                let unsent = scheduler.clear_waiting();
                bytes.held -= unsent.iter().map(Record::size_bytes).sum::<usize>();
                bytes.waiting = 0;
                debug!(
                    unsent = unsent.len(),
                    in_flight = deliveries.len(),
                    "Draining partition"
                );
            }

            // Trailing transaction markers and aborted records never reach us as records:
            // follow the consumer's position past them, or the committed offset would stay
            // below the end (lag tools would show phantom lag forever).
            if let Some(position) = self.position.take() {
                tracker.advance_to(position);
            }

            // Take what the partition queue holds, up to the buffer bounds.
            let mut queue_empty = false;
            let now = Instant::now();
            while !draining && self.has_room(&scheduler, bytes.held) {
                let Some(result) = self.source.poll(now) else {
                    queue_empty = true;
                    break;
                };
                match result {
                    Ok(record) => {
                        if let Err(track_error) =
                            tracker.received_at(record.offset, record.received_at)
                        {
                            // A record at or below one already held: librdkafka re-fetched it.
                            // We hold or acknowledged it already, so skipping loses nothing.
                            warn!(error = %track_error, "Skipped re-fetched record");
                            continue;
                        }
                        partition_metrics.record_received();
                        bytes.held += record.size_bytes();
                        bytes.waiting += record.size_bytes();
                        scheduler.push(record.key.clone(), record);
                    }
                    Err(kafka_error) => {
                        warn!(error = %kafka_error, "Partition queue error");
                    }
                }
            }

            // After a freeze, start nothing until librdkafka had a chance to report a lost
            // assignment (a zombie must not deliver what the new owner delivers).
            let fenced = !draining && scheduler.waiting() > 0 && !self.health.may_dispatch();
            let mut batch_due: Option<Instant> = None;
            if !draining && !fenced {
                match self.settings.batch {
                    None => {
                        while let Some((key, record)) = scheduler.next_ready() {
                            bytes.waiting -= record.size_bytes();
                            self.spawn_record(&mut deliveries, key, record);
                        }
                    }
                    Some(limits) => {
                        let can_wait = !queue_empty && self.has_room(&scheduler, bytes.held);
                        batch_due = self.dispatch_batches(
                            &mut scheduler,
                            &mut deliveries,
                            &mut bytes,
                            limits,
                            can_wait,
                            &settled_sender,
                        );
                    }
                }
            }

            // Entries of batches settled so far.
            while let Ok((offset, disposition)) = settled.try_recv() {
                if disposition.is_acknowledged() {
                    self.acknowledge(&mut tracker, &mut pause, &partition_metrics, offset);
                }
            }

            if let Some(committable) = tracker
                .committable()
                .filter(|offset| Some(*offset) != stored)
            {
                if let Err(error) = self.source.store(committable) {
                    // Happens when the partition was lost (not revoked) under us; the new
                    // owner resumes from the last commit, so nothing is skipped.
                    warn!(offset = committable, %error, "Could not store offset");
                }
                stored = Some(committable);
                self.position.stored(committable);
            }

            if draining && deliveries.is_empty() {
                break;
            }

            match (tracker.oldest_unacknowledged().is_some(), check_armed) {
                (true, false) => {
                    check.as_mut().reset((Instant::now() + HEAD_CHECK).into());
                    check_armed = true;
                }
                (false, true) => {
                    check_armed = false;
                    partition_metrics.head_of_line(Duration::ZERO);
                }
                _ => {}
            }

            let room = !draining && self.has_room(&scheduler, bytes.held);
            tokio::select! {
                // Only a wake-up: the drain begins at the top of the loop.
                _ = self.drain.stop.cancelled(), if !draining => {}
                Some(joined) = deliveries.join_next() => {
                    match joined {
                        Ok(done) => {
                            events::delivery_finished(&self.metrics, done.records);
                            bytes.held -= done.size;
                            match done.released {
                                Released::Record { offset, key, disposition } => {
                                    scheduler.finished(&key);
                                    if disposition.is_acknowledged() {
                                        self.acknowledge(&mut tracker, &mut pause, &partition_metrics, offset);
                                    }
                                }
                                Released::Batch { keys } => scheduler.finished_batch(&keys),
                            }
                        }
                        Err(join_error) => {
                            // A delivery task panicked: its record stays unacknowledged, so the
                            // committed offset can never pass it. Stop this partition and report
                            // unhealthy so the pod restarts and redelivers from the commit.
                            error!(error = %join_error, "Delivery task failed; stopping the partition");
                            self.health.set_failed();
                            // The drain begins at the top of the loop.
                            self.drain.stop.cancel();
                        }
                    }
                }
                Some((offset, disposition)) = settled.recv() => {
                    if disposition.is_acknowledged() {
                        self.acknowledge(&mut tracker, &mut pause, &partition_metrics, offset);
                    }
                }
                _ = self.wakeup.notified(), if room => {}
                _ = sleep_until(batch_due), if batch_due.is_some() => {}
                _ = tokio::time::sleep(FENCE_RECHECK), if fenced => {}
                _ = &mut check, if check_armed => {
                    // Re-armed above while a record is still unacknowledged.
                    check_armed = false;
                    let age = tracker
                        .oldest_unacknowledged()
                        .map_or(Duration::ZERO, |(_, at)| Instant::now().duration_since(at));
                    partition_metrics.head_of_line(age);
                    if !draining {
                        let change = pause.check(tracker.oldest_unacknowledged(), Instant::now());
                        self.apply(change, &partition_metrics);
                    }
                }
            }
        }

        // librdkafka keeps a partition paused across re-assignment: never leave it paused for
        // its next owner here (unless the whole consumer is paused for shutdown).
        if pause.is_paused() && !self.health.is_shutting_down() {
            self.apply(Some(PauseChange::Resume), &partition_metrics);
        }
        partition_metrics.forget();
        WorkerExit {
            committable: stored,
        }
    }

    /// Marks `offset` acknowledged; resumes fetching if it was paused.
    fn acknowledge(
        &self,
        tracker: &mut OffsetTracker,
        pause: &mut PauseControl,
        metrics: &PartitionMetrics,
        offset: i64,
    ) {
        if let Err(track_error) = tracker.acknowledged(offset) {
            error!(error = %track_error, "Offset tracking error");
        }
        let change = pause.acknowledged();
        self.apply(change, metrics);
    }

    /// Pauses or resumes the source's fetching.
    fn apply(&self, change: Option<PauseChange>, metrics: &PartitionMetrics) {
        match change {
            None => {}
            Some(PauseChange::Pause { head, waited }) => {
                let result = self.source.set_paused(true);
                let error = result.as_ref().err().map(ToString::to_string);
                metrics.fetch_paused(head, waited, error.as_deref().map_or(Ok(()), Err));
            }
            Some(PauseChange::Resume) => {
                let result = self.source.set_paused(false);
                let error = result.as_ref().err().map(ToString::to_string);
                metrics.fetch_resumed(error.as_deref().map_or(Ok(()), Err));
            }
        }
    }

    /// Starts the delivery of one record.
    fn spawn_record(&self, deliveries: &mut JoinSet<Completed>, key: Key, record: Record) {
        events::delivery_started(&self.metrics, 1);
        let offset = record.offset;
        let size = record.size_bytes();
        let delivery = self.deliverer.clone().deliver(record, self.drain.clone());
        // Not instrumented with the partition span: entering a span on every poll of every
        // delivery costs more than the delivery's own events, which name their topic and
        // partition themselves.
        deliveries.spawn(async move {
            let disposition = delivery.await;
            Completed {
                released: Released::Record {
                    offset,
                    key,
                    disposition,
                },
                size,
                records: 1,
            }
        });
    }

    /// Starts every batch that is due: full (`max_records` or `max_bytes` waiting), or
    /// holding a record that waited `max_wait` while no more records can come now
    /// (`can_wait` false). Returns when the oldest waiting record's `max_wait` ends, if a
    /// partial batch is waiting for it.
    fn dispatch_batches(
        &self,
        scheduler: &mut Scheduler<Record>,
        deliveries: &mut JoinSet<Completed>,
        bytes: &mut Footprint,
        limits: BatchSettings,
        can_wait: bool,
        settled: &mpsc::UnboundedSender<(i64, Disposition)>,
    ) -> Option<Instant> {
        let encoder = self.deliverer.template.batch_encoder()?;
        loop {
            let oldest = scheduler.front()?.received_at;
            // The cap, and the memory bound: another batch only while the bytes held (records
            // and the bodies in flight) are within the buffer.
            let over_memory =
                scheduler.in_flight() > 0 && bytes.held >= self.settings.buffer.bytes();
            if scheduler.in_flight() >= scheduler.cap() || over_memory {
                return None;
            }
            let full =
                scheduler.waiting() >= limits.max_records || bytes.waiting >= limits.max_bytes;
            let due_at = oldest + limits.max_wait;
            if !full && (can_wait || Instant::now() < due_at) {
                return Some(due_at);
            }
            let count = scheduler.waiting().min(limits.max_records);
            let raw = bytes.waiting / scheduler.waiting().max(1) * count;
            let mut body = encoder.builder(limits.max_bytes, batch::expected_len(count, raw));
            let (records, keys) =
                scheduler.take_batch(limits.max_records, |record| body.try_add(encoder, record));
            if records.is_empty() {
                // Every waiting record's key is in flight: a finished batch wakes us.
                return None;
            }
            let raw: usize = records.iter().map(Record::size_bytes).sum();
            bytes.waiting -= raw;
            let count = records.len();
            let body = body.finish();
            // The body is held as long as the batch: it counts toward the buffer bound.
            let size = raw + body.len();
            bytes.held += body.len();
            events::batch_sent(&self.metrics, count, body.len());
            events::delivery_started(&self.metrics, count);
            let delivery = self.deliverer.clone().deliver_batch(
                records,
                body,
                self.drain.clone(),
                settled.clone(),
            );
            deliveries.spawn(async move {
                delivery.await;
                Completed {
                    released: Released::Batch { keys },
                    size,
                    records: count,
                }
            });
        }
    }

    fn has_room(&self, scheduler: &Scheduler<Record>, held_bytes: usize) -> bool {
        let waiting = scheduler.waiting();
        waiting < self.settings.buffer_records
            && (held_bytes < self.settings.buffer.bytes()
                || (waiting == 0 && scheduler.in_flight() == 0))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use rdkafka::error::KafkaError;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::delivery::fakes::{self, Scripted};
    use crate::delivery::OnFailure;

    /// A partition queue holding `records` (a test may push more while the worker runs),
    /// remembering each stored offset.
    struct Queue {
        records: Arc<Mutex<VecDeque<Record>>>,
        stored: Arc<Mutex<Vec<i64>>>,
    }

    impl PartitionSource for Queue {
        fn poll(&mut self, _now: Instant) -> Option<Result<Record, KafkaError>> {
            self.records.lock().unwrap().pop_front().map(Ok)
        }
        fn store(&self, offset: i64) -> Result<(), KafkaError> {
            self.stored.lock().unwrap().push(offset);
            Ok(())
        }
        fn set_paused(&self, _: bool) -> Result<(), KafkaError> {
            Ok(())
        }
    }

    fn worker(
        count: i64,
        transport: Scripted,
        ordering: Ordering,
    ) -> (PartitionWorker<Queue, Scripted>, Arc<Mutex<Vec<i64>>>) {
        let stored = Arc::new(Mutex::new(Vec::new()));
        let records = Arc::new(Mutex::new((0..count).map(keyed).collect()));
        let source = Queue {
            records,
            stored: stored.clone(),
        };
        (worker_on(source, transport, ordering), stored)
    }

    /// Record `offset` of the test partition, keyed by `offset % 3`.
    fn keyed(offset: i64) -> Record {
        Record {
            offset,
            key: Some(Bytes::from(format!("k{}", offset % 3))),
            ..Record::example()
        }
    }

    fn worker_on<S: PartitionSource>(
        source: S,
        transport: Scripted,
        ordering: Ordering,
    ) -> PartitionWorker<S, Scripted> {
        let deliverer = fakes::deliverer(transport, 1, OnFailure::Block);
        PartitionWorker {
            topic: Arc::from("orders"),
            partition: 2,
            route: None,
            source,
            wakeup: Arc::new(Notify::new()),
            position: Arc::default(),
            metrics: deliverer.metrics.clone(),
            deliverer,
            settings: Arc::new(WorkerSettings {
                ordering,
                in_flight_cap: 4,
                buffer_records: 16,
                buffer: BufferShare::new(64 << 20, 1 << 20),
                batch: None,
                pause_fetch_after: None,
            }),
            drain: Drain {
                stop: CancellationToken::new(),
                abandon: CancellationToken::new(),
            },
            health: Arc::new(Health::new(Duration::from_secs(30))),
        }
    }

    /// Waits until `stored` holds `offset`, with a deadline.
    async fn wait_stored(stored: &Mutex<Vec<i64>>, offset: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stored.lock().unwrap().contains(&offset) {
            assert!(Instant::now() < deadline, "offset {offset} never stored");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn every_acknowledged_record_is_stored_in_each_mode() {
        for ordering in [Ordering::Partition, Ordering::Key, Ordering::None] {
            let (worker, stored) = worker(50, Scripted::new(vec![fakes::status(200)]), ordering);
            let stop = worker.drain.stop.clone();
            let deliverer = worker.deliverer.clone();
            let running = tokio::spawn(worker.run());
            wait_stored(&stored, 50).await;
            stop.cancel();
            let exit = running.await.unwrap();
            assert_eq!(exit.committable, Some(50), "{ordering:?}");
            assert_eq!(deliverer.transport.sent().len(), 50, "{ordering:?}");
            let stored = stored.lock().unwrap();
            assert!(
                stored.windows(2).all(|pair| pair[0] < pair[1]),
                "{stored:?}"
            );
        }
    }

    /// Once the partition is being given up (revoked or lost), nothing new starts, even when
    /// the worker has not yet taken the drain branch of its select (it may take a finished
    /// delivery first; the zombie fault test caught a record sent that way while the rebalance
    /// callback, which lifts the freeze fence, ran).
    #[tokio::test]
    async fn nothing_new_starts_once_the_drain_has_begun() {
        for ordering in [Ordering::Partition, Ordering::Key, Ordering::None] {
            let (worker, stored) = worker(5, Scripted::new(vec![fakes::status(200)]), ordering);
            worker.drain.stop.cancel();
            let deliverer = worker.deliverer.clone();
            let exit = tokio::time::timeout(Duration::from_secs(10), worker.run())
                .await
                .expect("the worker ends");
            assert!(deliverer.transport.sent().is_empty(), "{ordering:?}");
            // Nothing acknowledged: the commit may only say "from offset 0".
            assert!(
                exit.committable.is_none_or(|offset| offset == 0),
                "{ordering:?}: {exit:?}"
            );
            assert!(
                stored.lock().unwrap().iter().all(|offset| *offset == 0),
                "{ordering:?}"
            );
        }
    }

    /// Issue 32: a periodic task of the worker (then a 1 s position look-up, which blocked
    /// for up to tens of milliseconds in librdkafka) held every record behind it. The
    /// look-up now runs once for the whole assignment, off the worker; the worker's own
    /// periodic work (the 1 s head-of-line check, armed while records are unacknowledged,
    /// as here throughout) must hold no record of a paced stream: none waits over 1 s to be
    /// sent (a worker that blocked in the check would hold them for its whole duration).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn no_record_of_a_paced_stream_waits_behind_a_periodic_task() {
        const BOUND: Duration = Duration::from_secs(1);
        const RECORDS: i64 = 120;
        const PACE: Duration = Duration::from_millis(25);
        for ordering in [Ordering::Partition, Ordering::Key, Ordering::None] {
            let (records, stored) = Default::default();
            let source = Queue {
                records: Arc::clone(&records),
                stored: Arc::clone(&stored),
            };
            let worker = worker_on(source, Scripted::new(vec![fakes::status(200)]), ordering);
            let (stop, deliverer, wakeup) = (
                worker.drain.stop.clone(),
                worker.deliverer.clone(),
                worker.wakeup.clone(),
            );
            let running = tokio::spawn(worker.run());
            // The producer is an OS thread: a stalled runtime must not also stall the pace.
            let producer = std::thread::spawn(move || {
                let mut pushed = Vec::new();
                for offset in 0..RECORDS {
                    let at = Instant::now();
                    records.lock().unwrap().push_back(Record {
                        received_at: at,
                        target: None,
                        ..keyed(offset)
                    });
                    wakeup.notify_one();
                    pushed.push(at);
                    std::thread::sleep(PACE);
                }
                pushed
            });
            let pushed = tokio::task::spawn_blocking(move || producer.join().unwrap())
                .await
                .unwrap();
            // Every record acknowledged and its offset stored, each sent once.
            wait_stored(&stored, RECORDS).await;
            stop.cancel();
            let exit = running.await.unwrap();
            assert_eq!(exit.committable, Some(RECORDS), "{ordering:?}");
            assert_eq!(deliverer.transport.sent().len(), RECORDS as usize);
            // The k-th send comes at most BOUND after the k-th record arrived when every
            // record is sent within BOUND of its arrival (sends may interleave in key and
            // none mode, so they are compared sorted).
            let mut sent: Vec<Instant> = deliverer
                .transport
                .sent()
                .into_iter()
                .map(tokio::time::Instant::into_std)
                .collect();
            sent.sort();
            let late: Vec<Duration> = pushed
                .iter()
                .zip(&sent)
                .map(|(arrived, sent)| sent.saturating_duration_since(*arrived))
                .filter(|waited| *waited > BOUND)
                .collect();
            assert!(late.is_empty(), "{ordering:?}: records waited {late:?}");
        }
    }

    /// Trailing transaction markers: the records are acknowledged, then the consumer's
    /// position look-up finds the partition three offsets further on (a commit marker and
    /// an aborted transaction's two records, never handed out): the worker stores it.
    #[tokio::test]
    async fn an_offered_position_past_the_last_record_is_stored() {
        let (worker, stored) = worker(5, Scripted::new(vec![fakes::status(200)]), Ordering::Key);
        let (stop, wakeup, position) = (
            worker.drain.stop.clone(),
            worker.wakeup.clone(),
            worker.position.clone(),
        );
        let running = tokio::spawn(worker.run());
        wait_stored(&stored, 5).await;
        assert!(!position.offer(5), "stored already: no wake-up");
        assert!(position.offer(8));
        wakeup.notify_one();
        wait_stored(&stored, 8).await;
        stop.cancel();
        assert_eq!(running.await.unwrap().committable, Some(8));
    }

    #[tokio::test]
    async fn a_panicking_delivery_stops_the_partition_and_never_passes_its_record() {
        // No scripted answer: the first attempt panics inside the delivery.
        let transport = Scripted::new(Vec::new());
        let (worker, stored) = worker(5, transport, Ordering::Partition);
        let health = worker.health.clone();
        health.set_ready();
        health.pump_polled();
        let exit = tokio::time::timeout(Duration::from_secs(10), worker.run())
            .await
            .expect("the worker stops by itself after the panic");
        assert!(
            !health.is_healthy(),
            "a panicked delivery must fail /healthz"
        );
        // Offset 0 panicked: nothing may be committed past it.
        assert!(
            exit.committable.is_none_or(|offset| offset == 0),
            "{exit:?}"
        );
        assert!(stored.lock().unwrap().iter().all(|offset| *offset == 0));
    }
}
