//! One partition read by several routes (or by one route with a filter): the partition's
//! source is polled once, each record offered to every route reading the topic, and a copy
//! queued for each route that takes it. Each route has its own partition worker ("lane",
//! with its order, retries and failure policy) that reads its queue through [`Lane`], a
//! [`PartitionSource`].
//!
//! Commit: a record is acknowledged for the partition when every lane that took it has
//! stored an offset past it (a lane's stored offset is its lowest unacknowledged record);
//! a record no lane took is acknowledged at once. The partition's committable offset is the
//! lowest offset not acknowledged that way, so a route that is down holds the commit back,
//! not another route's deliveries, until its queue is full: the fanout stops polling while
//! any lane's queue holds its share of the memory budget (at most 4 MiB) or
//! [`LANE_QUEUE_RECORDS`], which bounds memory.
//!
//! Fetching is paused only when every lane asked for it (each lane's head waited past
//! `pause_fetch_after`); one stuck lane lets the others go on until its queue is full.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prometheus::IntCounter;
use rdkafka::error::KafkaError;
use tokio::sync::Notify;
use tracing::{error, warn};

use super::{Decision, Matcher};
use crate::ops::Metrics;
use crate::partition::offsets::OffsetTracker;
use crate::partition::{PartitionSource, PositionHint, WorkerSettings};
use crate::record::Record;

/// One partition's records shared out to its lanes.
pub struct FanOut<S> {
    state: Mutex<State<S>>,
    /// Notified when every record taken is acknowledged by every lane that took it.
    settle: Notify,
}

struct State<S> {
    source: S,
    matcher: Matcher,
    lanes: Vec<LaneState>,
    /// Offsets some lane took, with how many lanes have yet to acknowledge them.
    pending: VecDeque<(i64, u32)>,
    /// Every record polled, acknowledged when no lane holds it any more.
    tracker: OffsetTracker,
    stored: Option<i64>,
    /// The partition's position hint (the consumer's position look-up offers it here).
    position: Arc<PositionHint>,
    paused_lanes: usize,
    decisions: Vec<Decision>,
    unrouted: IntCounter,
    /// The partition is being drained: hand out what the lanes' queues hold, poll no more.
    closing: bool,
}

struct LaneState {
    queue: VecDeque<Record>,
    bytes: usize,
    /// Offsets handed to this lane and not yet acknowledged by it, in order.
    taken: VecDeque<i64>,
    wakeup: Arc<Notify>,
    settings: Arc<WorkerSettings>,
    limit_records: usize,
    paused: bool,
    skipped: IntCounter,
}

/// Records a route's queue holds at most, however small they are.
pub const LANE_QUEUE_RECORDS: usize = 10_000;

impl LaneState {
    /// The queue holds its share of the memory budget (or [`LANE_QUEUE_RECORDS`]): poll no
    /// more until the lane's worker takes some.
    fn full(&self) -> bool {
        self.queue.len() >= self.limit_records
            || (!self.queue.is_empty() && self.bytes >= self.settings.buffer.bytes())
    }
}

/// One lane's view of the fanout: its queue as a partition source.
pub struct Lane<S> {
    fanout: Arc<FanOut<S>>,
    index: usize,
}

/// What each lane needs: its worker's settings (buffer bounds) and the notify that wakes it.
pub struct LaneSpec {
    pub settings: Arc<WorkerSettings>,
    pub wakeup: Arc<Notify>,
    /// Records its queue holds at most ([`LANE_QUEUE_RECORDS`]).
    pub limit_records: usize,
}

impl<S: PartitionSource> FanOut<S> {
    /// The fanout of `source` (topic `topic`) to the lanes of `matcher`'s routes, in order.
    pub fn new(
        source: S,
        topic: &str,
        matcher: Matcher,
        lanes: Vec<LaneSpec>,
        position: Arc<PositionHint>,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let lanes = lanes
            .into_iter()
            .zip(matcher.routes())
            .map(|(spec, route)| LaneState {
                queue: VecDeque::new(),
                bytes: 0,
                taken: VecDeque::new(),
                wakeup: spec.wakeup,
                settings: spec.settings,
                limit_records: spec.limit_records.max(1),
                paused: false,
                skipped: metrics
                    .route_skipped
                    .with_label_values(&[&route.name, topic]),
            })
            .collect();
        Arc::new(Self {
            state: Mutex::new(State {
                source,
                matcher,
                lanes,
                pending: VecDeque::new(),
                tracker: OffsetTracker::new(),
                stored: None,
                position,
                paused_lanes: 0,
                decisions: Vec::new(),
                unrouted: metrics.unrouted.with_label_values(&[topic]),
                closing: false,
            }),
            settle: Notify::new(),
        })
    }

    /// The lane sources, one per route in order.
    pub fn lanes(self: &Arc<Self>) -> Vec<Lane<S>> {
        let count = self.lock().lanes.len();
        (0..count)
            .map(|index| Lane {
                fanout: self.clone(),
                index,
            })
            .collect()
    }

    /// Stops polling the partition (it is being drained): the lanes still get what their
    /// queues hold, so every route can reach the same offset before the final commit, and a
    /// graceful rebalance redelivers nothing to any of them.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closing = true;
        for lane in &state.lanes {
            lane.wakeup.notify_one();
        }
    }

    /// Returns once every record taken from the partition is acknowledged by every lane that
    /// took it (at once if it is so now).
    pub async fn settled(&self) {
        loop {
            let notified = self.settle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.lock().pending.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// The committable offset stored last, for the partition's final commit.
    pub fn stored(&self) -> Option<i64> {
        self.lock().stored
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // A panic while holding the lock leaves whole entries only; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: PartitionSource> State<S> {
    /// Follows the consumer's position past records that never arrive (transaction
    /// markers): every record below it was polled (and is tracked) already.
    fn follow_position(&mut self) {
        if let Some(position) = self.position.take() {
            self.tracker.advance_to(position);
            self.store();
        }
    }

    /// Offers a polled record to every lane; `polling` is the lane that polled.
    fn share(&mut self, record: Record, polling: usize) {
        if let Err(track_error) = self.tracker.received_at(record.offset, record.received_at) {
            // Re-fetched after a pause: the lanes hold or acknowledged it already.
            warn!(error = %track_error, "Skipped re-fetched record");
            return;
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        self.matcher.decide(&record, &mut decisions);
        let offset = record.offset;
        let takers = decisions
            .iter()
            .filter(|decision| matches!(decision, Decision::Deliver(_)))
            .count();
        if takers == 0 {
            self.unrouted.inc();
            for lane in &self.lanes {
                lane.skipped.inc();
            }
            self.acknowledge(offset);
            self.store();
        } else {
            self.pending.push_back((offset, takers as u32));
            let size = record.size_bytes();
            let mut left = takers;
            let mut record = Some(record);
            for (index, decision) in decisions.drain(..).enumerate() {
                let lane = &mut self.lanes[index];
                let Decision::Deliver(target) = decision else {
                    lane.skipped.inc();
                    continue;
                };
                left -= 1;
                let mut copy = if left == 0 {
                    record.take()
                } else {
                    record.clone()
                };
                if let Some(copy) = copy.as_mut() {
                    copy.target = target;
                }
                lane.queue.extend(copy);
                lane.bytes += size;
                lane.taken.push_back(offset);
                if index != polling {
                    lane.wakeup.notify_one();
                }
            }
        }
        self.decisions = decisions;
    }

    /// Lane `index` acknowledged everything below `committable`.
    fn lane_stored(&mut self, index: usize, committable: i64) {
        while let Some(&offset) = self.lanes[index].taken.front() {
            if offset >= committable {
                break;
            }
            self.lanes[index].taken.pop_front();
            let Ok(at) = self
                .pending
                .binary_search_by_key(&offset, |(pending, _)| *pending)
            else {
                error!(
                    offset,
                    "Route lane acknowledged an offset the partition does not hold"
                );
                continue;
            };
            self.pending[at].1 = self.pending[at].1.saturating_sub(1);
            if self.pending[at].1 == 0 {
                self.acknowledge(offset);
            }
        }
        while self.pending.front().is_some_and(|(_, left)| *left == 0) {
            self.pending.pop_front();
        }
        self.store();
    }

    fn settled(&self) -> bool {
        self.pending.is_empty()
    }

    fn acknowledge(&mut self, offset: i64) {
        if let Err(track_error) = self.tracker.acknowledged(offset) {
            error!(error = %track_error, "Offset tracking error");
        }
    }

    /// Stores the partition's committable offset when it moved.
    fn store(&mut self) {
        let Some(committable) = self
            .tracker
            .committable()
            .filter(|offset| Some(*offset) != self.stored)
        else {
            return;
        };
        if let Err(error) = self.source.store(committable) {
            // The partition was lost under us; its new owner resumes from the last commit.
            warn!(offset = committable, %error, "Could not store offset");
        }
        self.stored = Some(committable);
        self.position.stored(committable);
    }
}

impl<S: PartitionSource> PartitionSource for Lane<S> {
    fn poll(&mut self, now: Instant) -> Option<Result<Record, KafkaError>> {
        let mut state = self.fanout.lock();
        state.follow_position();
        loop {
            let lane = &mut state.lanes[self.index];
            if let Some(record) = lane.queue.pop_front() {
                lane.bytes = lane.bytes.saturating_sub(record.size_bytes());
                return Some(Ok(record));
            }
            if state.closing || state.lanes.iter().any(LaneState::full) {
                return None;
            }
            match state.source.poll(now)? {
                Ok(record) => state.share(record, self.index),
                Err(error) => return Some(Err(error)),
            }
        }
    }

    fn store(&self, offset: i64) -> Result<(), KafkaError> {
        let settled = {
            let mut state = self.fanout.lock();
            state.lane_stored(self.index, offset);
            state.settled()
        };
        if settled {
            self.fanout.settle.notify_waiters();
        }
        Ok(())
    }

    fn set_paused(&self, paused: bool) -> Result<(), KafkaError> {
        let mut state = self.fanout.lock();
        let lanes = state.lanes.len();
        if state.lanes[self.index].paused == paused {
            return Ok(());
        }
        state.lanes[self.index].paused = paused;
        if paused {
            state.paused_lanes += 1;
            if state.paused_lanes == lanes {
                return state.source.set_paused(true);
            }
        } else {
            let was_all = state.paused_lanes == lanes;
            state.paused_lanes -= 1;
            if was_all {
                return state.source.set_paused(false);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::BufferShare;
    use crate::config::{Config, Ordering};
    use crate::routing::RouteMatch;
    use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

    /// Records 0..n of `orders`, with header `type` = `a` for even offsets, `b` for odd.
    #[derive(Default)]
    struct Source {
        records: VecDeque<Record>,
        stored: Arc<Mutex<Vec<i64>>>,
        paused: Arc<AtomicBool>,
    }

    impl PartitionSource for Source {
        fn poll(&mut self, _now: Instant) -> Option<Result<Record, KafkaError>> {
            self.records.pop_front().map(Ok)
        }
        fn store(&self, offset: i64) -> Result<(), KafkaError> {
            self.stored.lock().expect("lock").push(offset);
            Ok(())
        }
        fn set_paused(&self, paused: bool) -> Result<(), KafkaError> {
            self.paused.store(paused, AtomicOrdering::SeqCst);
            Ok(())
        }
    }

    fn record(offset: i64) -> Record {
        let kind: &[u8] = if offset % 2 == 0 { b"a" } else { b"b" };
        Record {
            offset,
            headers: Record::example_headers(&[("type", kind)]),
            ..Record::example()
        }
    }

    fn settings() -> Arc<WorkerSettings> {
        Arc::new(WorkerSettings {
            ordering: Ordering::Partition,
            in_flight_cap: 1,
            buffer_records: 4,
            buffer: BufferShare::new(64 << 20, 4 << 20),
            batch: None,
            pause_fetch_after: None,
        })
    }

    /// Routes `evens` (type a), `all`, and `none` (takes nothing), over `count` records.
    fn fanout(count: i64) -> (Arc<FanOut<Source>>, Source) {
        let text = "kafka: {bootstrap_servers: 'k:9092', group_id: g, topics: [orders]}\n\
             delivery: {url: 'http://app/'}\n\
             routes: [{name: evens, filter: 'headers[\"type\"] == \"a\"'}, {name: all}, \
                      {name: none, filter: 'false'}]";
        let routes = Config::from_yaml(text, |_| None)
            .and_then(|config| config.settings())
            .expect("valid")
            .routes;
        let metrics = Metrics::new();
        let matcher = Matcher::new(
            routes.iter().map(RouteMatch::new).collect(),
            crate::config::CloudEventsSettings {
                source: "s".into(),
                event_type: "t".into(),
            },
            "application/json".into(),
            metrics.clone(),
        );
        let source = Source {
            records: (0..count).map(record).collect(),
            ..Source::default()
        };
        let probe = Source {
            records: VecDeque::new(),
            stored: source.stored.clone(),
            paused: source.paused.clone(),
        };
        let lanes = (0..3)
            .map(|_| LaneSpec {
                settings: settings(),
                wakeup: Arc::new(Notify::new()),
                limit_records: 4,
            })
            .collect();
        let fanout = FanOut::new(
            source,
            "orders",
            matcher,
            lanes,
            Arc::new(PositionHint::default()),
            &metrics,
        );
        (fanout, probe)
    }

    fn drain(lane: &mut Lane<Source>) -> Vec<i64> {
        std::iter::from_fn(|| lane.poll(Instant::now()))
            .map(|result| result.expect("record").offset)
            .collect()
    }

    #[test]
    fn each_lane_gets_what_its_route_takes_and_the_commit_waits_for_all() {
        let (fanout, probe) = fanout(6);
        let mut lanes = fanout.lanes();
        // Lane queues hold 4 records here: `all` fills first, so polling stops there.
        assert_eq!(drain(&mut lanes[0]), [0, 2]);
        assert_eq!(drain(&mut lanes[1]), [0, 1, 2, 3, 4, 5]);
        assert_eq!(drain(&mut lanes[0]), [4]);
        assert!(
            drain(&mut lanes[2]).is_empty(),
            "route `none` takes nothing"
        );
        // `all` acknowledged everything; `evens` nothing yet: nothing is committable.
        lanes[1].store(6).expect("store");
        assert_eq!(
            *probe.stored.lock().expect("lock"),
            [0],
            "offset 0 still pending"
        );
        // `evens` acknowledged 0 (its committable is 2): offsets 0 and 1 are done.
        lanes[0].store(2).expect("store");
        assert_eq!(*probe.stored.lock().expect("lock"), [0, 2]);
        lanes[0].store(5).expect("store");
        assert_eq!(*probe.stored.lock().expect("lock"), [0, 2, 6]);
    }

    #[test]
    fn a_full_lane_stops_polling_for_every_lane() {
        let (fanout, _probe) = fanout(20);
        let mut lanes = fanout.lanes();
        // Nobody drains `all` (lane 1): `evens` gets what was polled before it filled.
        assert_eq!(drain(&mut lanes[0]), [0, 2]);
        assert!(drain(&mut lanes[0]).is_empty());
        // `all` takes until `evens` holds 4 undrained records (4, 6, 8, 10).
        assert_eq!(drain(&mut lanes[1]), (0..=10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_closed_fanout_hands_out_what_it_took_and_settles_when_all_acknowledged() {
        let (fanout, probe) = fanout(10);
        let mut lanes = fanout.lanes();
        assert_eq!(drain(&mut lanes[0]), [0, 2]);
        fanout.close();
        // `all` gets the four records already taken, nothing more.
        assert_eq!(drain(&mut lanes[1]), [0, 1, 2, 3]);
        let settled = {
            let fanout = fanout.clone();
            tokio::spawn(async move { fanout.settled().await })
        };
        lanes[1].store(4).expect("store");
        tokio::task::yield_now().await;
        assert!(
            !settled.is_finished(),
            "`evens` has not acknowledged 0 and 2"
        );
        lanes[0].store(3).expect("store");
        settled.await.expect("settled");
        assert_eq!(probe.stored.lock().expect("lock").last(), Some(&4));
        assert_eq!(fanout.stored(), Some(4));
    }

    #[test]
    fn fetching_pauses_only_when_every_lane_asks() {
        let (fanout, probe) = fanout(0);
        let lanes = fanout.lanes();
        lanes[0].set_paused(true).expect("pause");
        lanes[1].set_paused(true).expect("pause");
        assert!(!probe.paused.load(AtomicOrdering::SeqCst));
        lanes[2].set_paused(true).expect("pause");
        assert!(probe.paused.load(AtomicOrdering::SeqCst));
        lanes[1].set_paused(false).expect("resume");
        assert!(!probe.paused.load(AtomicOrdering::SeqCst));
    }
}
