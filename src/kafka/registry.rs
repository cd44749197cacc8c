//! The running partition workers and the rebalance handling around them: on assign, split
//! each partition's queue (before librdkafka assigns it, so no record reaches the main queue)
//! and start its worker; on revoke, drain the revoked workers and commit their final offsets
//! before the partitions are released; on a lost assignment, abandon without committing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, warn};

use super::commit;
use super::offset_reset::ResetWatch;
use super::source::KafkaPartition;
use crate::delivery::Drain;
use crate::ops::events;
use crate::ops::{Health, Metrics};
use crate::partition::{PartitionSource, PartitionWorker, PositionHint, WorkerExit};
use crate::routing::fanout::{LaneSpec, LANE_QUEUE_RECORDS};
use crate::routing::{FanOut, Matcher, Route};

/// A partition: topic and number.
pub type PartitionId = (Arc<str>, i32);

struct WorkerHandle {
    drain: Drain,
    join: JoinHandle<WorkerExit>,
    resets: ResetWatch,
    position: Arc<PositionHint>,
    /// The notify of each of its workers (one per route reading the partition).
    wakeups: Wakeups,
    /// Buffers it holds a share of the budget for: one per worker, two per fanned-out route
    /// (the route's queue in the fanout and its worker's buffer).
    buffers: usize,
}

/// The notifies of a partition's workers.
type Wakeups = Arc<[Arc<Notify>]>;

/// The workers running when a position look-up began: its answer is offered to them only
/// (a partition revoked and assigned again meanwhile has a new worker, which may not have
/// received every record below the old one's position).
pub struct PositionTargets(HashMap<Arc<str>, HashMap<i32, Target>>);

impl PositionTargets {
    /// No worker ran: nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A partition's position hint and the notifies that wake its workers.
type Target = (Arc<PositionHint>, Wakeups);

/// The partition workers of one consumer, keyed by partition.
pub struct PartitionRegistry<C: ConsumerContext + 'static> {
    /// The runtime the workers run on (callbacks arrive on the pump thread, outside it).
    pub runtime: tokio::runtime::Handle,
    /// Set once right after the consumer is created, before it subscribes.
    pub consumer: OnceLock<Weak<BaseConsumer<C>>>,
    workers: Mutex<HashMap<PartitionId, WorkerHandle>>,
    /// The routes; a partition gets a worker for each route that reads its topic.
    pub routes: Vec<Route>,
    pub rebalance_drain_timeout: Duration,
    pub group_id: String,
    pub instance_id: String,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    /// The subscribed topics' partitions when the consumer was created: librdkafka's
    /// prefetch is sized to share the memory budget among that many.
    pub prefetch_partitions: usize,
    warned_over_prefetch: std::sync::atomic::AtomicBool,
}

impl<C: ConsumerContext + 'static> PartitionRegistry<C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: tokio::runtime::Handle,
        routes: Vec<Route>,
        rebalance_drain_timeout: Duration,
        group_id: String,
        instance_id: String,
        metrics: Metrics,
        health: Arc<Health>,
        prefetch_partitions: usize,
    ) -> Self {
        Self {
            runtime,
            consumer: OnceLock::new(),
            workers: Mutex::new(HashMap::new()),
            routes,
            rebalance_drain_timeout,
            group_id,
            instance_id,
            metrics,
            health,
            prefetch_partitions,
            warned_over_prefetch: Default::default(),
        }
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<PartitionId, WorkerHandle>> {
        // A poisoned lock means a panic while holding it; the map itself is still consistent
        // (single inserts and removes), so keep going.
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this member runs a worker for the partition.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.workers().contains_key(&(Arc::from(topic), partition))
    }

    /// librdkafka reset the partition's position from `from` (see [`super::offset_reset`]).
    pub fn offset_reset(&self, topic: &str, partition: i32, from: i64) {
        if let Some(handle) = self.workers().get(&(Arc::from(topic), partition)) {
            handle.resets.mark(from);
        }
    }

    fn owned(&self) -> Vec<String> {
        let mut owned: Vec<String> = self.workers().keys().map(label).collect();
        owned.sort();
        owned
    }

    /// Splits the partition's queue and starts its worker.
    fn start_worker(&self, topic: &str, partition: i32) {
        if self.health.is_shutting_down() {
            return;
        }
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            return;
        };
        let topic: Arc<str> = Arc::from(topic);
        let id = (topic.clone(), partition);
        if self.workers().contains_key(&id) {
            return;
        }
        // A partition paused by a worker that did not get to resume it (librdkafka keeps the
        // pause across re-assignment) must fetch again: clear it before it is assigned.
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition(&topic, partition);
        if let Err(error) = consumer.resume(&list) {
            debug!(topic = %topic, partition, %error, "Could not clear a pause before assignment");
        }
        let Some(queue) = consumer.split_partition_queue(&topic, partition) else {
            error!(topic = %topic, partition, "Could not split partition queue");
            self.health.set_failed();
            return;
        };
        let position = Arc::new(PositionHint::default());
        let drain = Drain::default();
        let resets = ResetWatch::default();
        let mut source = KafkaPartition {
            topic: topic.clone(),
            partition,
            queue,
            consumer,
            resets: resets.clone(),
            metrics: self.metrics.clone(),
        };
        let routes: Vec<&Route> = self
            .routes
            .iter()
            .filter(|route| route.reads(&topic))
            .collect();
        let (join, wakeups, buffers) = match routes.as_slice() {
            [route] if route.takes_everything => {
                let wakeup = Arc::new(Notify::new());
                let notify = wakeup.clone();
                source
                    .queue
                    .set_nonempty_callback(move || notify.notify_one());
                let worker = self.worker(route, &topic, partition, source, &wakeup, &drain);
                let worker = PartitionWorker {
                    position: position.clone(),
                    ..worker
                };
                (self.runtime.spawn(worker.run()), vec![wakeup], 1)
            }
            _ => self.start_fanout(&routes, &topic, partition, source, &position, &drain),
        };
        let wakeups: Wakeups = wakeups.into();
        let assigned = {
            let mut workers = self.workers();
            workers.insert(
                id,
                WorkerHandle {
                    drain,
                    join,
                    resets,
                    position,
                    wakeups,
                    buffers,
                },
            );
            workers.len()
        };
        self.assigned(assigned);
        events::partition_started(&self.metrics);
    }

    /// A worker of `route` for the partition, reading `source`.
    fn worker<S: PartitionSource>(
        &self,
        route: &Route,
        topic: &Arc<str>,
        partition: i32,
        source: S,
        wakeup: &Arc<Notify>,
        drain: &Drain,
    ) -> PartitionWorker<S> {
        PartitionWorker {
            topic: topic.clone(),
            partition,
            route: (self.routes.len() > 1 || !route.takes_everything)
                .then(|| route.matching.name.clone()),
            source,
            wakeup: wakeup.clone(),
            position: Arc::new(PositionHint::default()),
            deliverer: route.deliverer.clone(),
            settings: route.settings.clone(),
            drain: drain.clone(),
            metrics: route.metrics.clone(),
            health: self.health.clone(),
        }
    }

    /// Starts a worker per route over one fanout of the partition's queue; the returned task
    /// ends when they all have, with the partition's final committable offset.
    fn start_fanout(
        &self,
        routes: &[&Route],
        topic: &Arc<str>,
        partition: i32,
        mut source: KafkaPartition<C>,
        position: &Arc<PositionHint>,
        drain: &Drain,
    ) -> (JoinHandle<WorkerExit>, Vec<Arc<Notify>>, usize) {
        let wakeups: Vec<Arc<Notify>> = routes.iter().map(|_| Arc::new(Notify::new())).collect();
        let notifies = wakeups.clone();
        source.queue.set_nonempty_callback(move || {
            for notify in &notifies {
                notify.notify_one();
            }
        });
        let first = routes.first();
        let matcher = Matcher::new(
            routes.iter().map(|route| route.matching.clone()).collect(),
            first
                .map(|route| route.cloudevents.clone())
                .unwrap_or_else(|| crate::config::CloudEventsSettings {
                    source: String::new(),
                    event_type: String::new(),
                }),
            first
                .map(|route| route.content_type.clone())
                .unwrap_or_default(),
            self.metrics.clone(),
        );
        let lanes = routes
            .iter()
            .zip(&wakeups)
            .map(|(route, wakeup)| LaneSpec {
                settings: route.settings.clone(),
                wakeup: wakeup.clone(),
                limit_records: LANE_QUEUE_RECORDS,
            })
            .collect();
        let fanout = FanOut::new(
            source,
            topic,
            matcher,
            lanes,
            position.clone(),
            &self.metrics,
        );
        // The routes' workers have a drain of their own: on revoke the partition first stops
        // polling and lets every route reach the same offset, then stops them.
        let lanes_drain = Drain::default();
        let mut workers = JoinSet::new();
        for ((route, lane), wakeup) in routes.iter().zip(fanout.lanes()).zip(&wakeups) {
            let worker = self.worker(route, topic, partition, lane, wakeup, &lanes_drain);
            workers.spawn_on(worker.run(), &self.runtime);
        }
        let (topic, outer) = (topic.clone(), drain.clone());
        let join = self.runtime.spawn(async move {
            // Running, until the partition is drained (or a route's worker failed and
            // stopped the others).
            tokio::select! {
                _ = outer.stop.cancelled() => {
                    fanout.close();
                    tokio::select! {
                        _ = fanout.settled() => {}
                        _ = outer.abandon.cancelled() => {}
                    }
                }
                _ = lanes_drain.stop.cancelled() => {}
            }
            lanes_drain.stop.cancel();
            if outer.abandon.is_cancelled() {
                lanes_drain.abandon.cancel();
            }
            loop {
                tokio::select! {
                    joined = workers.join_next() => match joined {
                        None => break,
                        Some(Ok(_)) => {}
                        Some(Err(join_error)) => {
                            error!(topic = %topic, partition, error = %join_error, "Route worker failed");
                        }
                    },
                    _ = outer.abandon.cancelled(), if !lanes_drain.abandon.is_cancelled() => {
                        lanes_drain.abandon.cancel();
                    }
                }
            }
            // Each route's worker stored into the fanout: its offset is the partition's.
            WorkerExit {
                committable: fanout.stored(),
            }
        });
        (join, wakeups, 2 * routes.len())
    }

    /// The number of assigned partitions changed: re-share the workers' half of the memory
    /// budget; warn once when librdkafka's prefetch was sized for fewer partitions (topics
    /// gained partitions after start-up).
    fn assigned(&self, partitions: usize) {
        let buffers: usize = self.workers().values().map(|handle| handle.buffers).sum();
        for route in &self.routes {
            route.settings.buffer.assigned(buffers);
        }
        if partitions > self.prefetch_partitions
            && !self
                .warned_over_prefetch
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            warn!(
                assigned = partitions,
                sized_for = self.prefetch_partitions,
                "More partitions assigned than the subscribed topics had at start-up: librdkafka's prefetch may exceed its half of kafka.memory_budget until the sidecar restarts"
            );
        }
    }

    /// The running workers, before a position look-up.
    pub fn position_targets(&self) -> PositionTargets {
        let mut targets: HashMap<Arc<str>, HashMap<i32, _>> = HashMap::new();
        for ((topic, partition), handle) in self.workers().iter() {
            targets.entry(topic.clone()).or_default().insert(
                *partition,
                (handle.position.clone(), handle.wakeups.clone()),
            );
        }
        PositionTargets(targets)
    }

    /// Offers each target its position from `positions` (the look-up's answer); wakes only
    /// the workers whose position moved past what they stored.
    pub fn offer_positions(&self, targets: &PositionTargets, positions: &TopicPartitionList) {
        for element in positions.elements() {
            let Some((hint, wakeups)) = targets
                .0
                .get(element.topic())
                .and_then(|partitions| partitions.get(&element.partition()))
            else {
                continue;
            };
            if let Offset::Offset(position) = element.offset() {
                if hint.offer(position) {
                    for wakeup in wakeups.iter() {
                        wakeup.notify_one();
                    }
                }
            }
        }
    }

    /// Stops the given partitions' workers (all when `None`), waits until `deadline` for
    /// their in-flight deliveries, then abandons what is left. Returns each drained
    /// partition's final committable offset.
    pub async fn drain_workers(
        &self,
        which: Option<&[PartitionId]>,
        deadline: tokio::time::Instant,
    ) -> Vec<(PartitionId, Option<i64>)> {
        let handles: Vec<(PartitionId, WorkerHandle)> = {
            let mut workers = self.workers();
            match which {
                None => workers.drain().collect(),
                Some(ids) => ids
                    .iter()
                    .filter_map(|id| workers.remove_entry(id))
                    .collect(),
            }
        };
        for (_, handle) in &handles {
            handle.drain.stop.cancel();
        }
        let mut exits = Vec::with_capacity(handles.len());
        for (id, mut handle) in handles {
            let exit = match tokio::time::timeout_at(deadline, &mut handle.join).await {
                Ok(joined) => joined,
                Err(_) => {
                    warn!(topic = %id.0, partition = id.1, "Drain timeout passed; abandoning in-flight deliveries (they will be redelivered)");
                    handle.drain.abandon.cancel();
                    handle.join.await
                }
            };
            events::partition_stopped(&self.metrics);
            let assigned = self.workers().len();
            self.assigned(assigned);
            match exit {
                Ok(exit) => exits.push((id, exit.committable)),
                Err(join_error) => {
                    error!(topic = %id.0, partition = id.1, error = %join_error, "Partition worker failed");
                    exits.push((id, None));
                }
            }
        }
        exits
    }

    /// The rebalance assigned `list`: start a worker per partition; the member is ready.
    pub fn on_assign(&self, list: &TopicPartitionList) {
        let gained: Vec<String> = list
            .elements()
            .iter()
            .map(|element| format!("{}[{}]", element.topic(), element.partition()))
            .collect();
        for element in list.elements() {
            self.start_worker(element.topic(), element.partition());
        }
        self.health.set_ready();
        events::partitions_assigned(
            &self.metrics,
            &self.group_id,
            &self.instance_id,
            &gained,
            &self.owned(),
        );
    }

    /// The rebalance revokes `list`: drain those workers, then (unless the assignment was
    /// lost to another member already) commit their final offsets before returning, which
    /// is when librdkafka releases them. Runs on the pump thread, so it may block.
    pub fn on_revoke(&self, consumer: &BaseConsumer<C>, list: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        let ids: Vec<PartitionId> = list
            .elements()
            .iter()
            .map(|element| (Arc::from(element.topic()), element.partition()))
            .collect();
        let revoked: Vec<String> = ids.iter().map(label).collect();
        events::partitions_revoked(
            &self.metrics,
            &self.group_id,
            &self.instance_id,
            &revoked,
            lost,
        );
        if tokio::runtime::Handle::try_current().is_ok() {
            // Never block a runtime thread: this only happens if the consumer is dropped on
            // one. Abandon at once; nothing unacknowledged is committed either way.
            for (_, handle) in self.workers().iter().filter(|(id, _)| ids.contains(id)) {
                handle.drain.stop.cancel();
                handle.drain.abandon.cancel();
            }
            return;
        }
        let started = Instant::now();
        // A lost assignment belongs to someone else already: stop at once, commit nothing.
        let timeout = if lost {
            Duration::ZERO
        } else {
            self.rebalance_drain_timeout
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let exits = self
            .runtime
            .block_on(self.drain_workers(Some(&ids), deadline));
        if !lost {
            let list = final_offsets(&exits);
            if list.count() > 0 {
                let committed = commit::commit_sync(consumer, Some(&list));
                commit::log_revoke_commit(&committed, list.count());
            }
        }
        events::partitions_released(
            &self.metrics,
            &self.group_id,
            &revoked,
            &self.owned(),
            started.elapsed(),
        );
    }

    /// Pauses fetching of every assigned partition (shutdown); returns how many.
    pub fn pause_all(&self, consumer: &BaseConsumer<C>) -> usize {
        match consumer.assignment() {
            Ok(list) if list.count() > 0 => match consumer.pause(&list) {
                Ok(()) => {
                    events::partitions_paused(&self.metrics, list.count());
                    list.count()
                }
                Err(error) => {
                    warn!(%error, "Could not pause partitions");
                    0
                }
            },
            _ => 0,
        }
    }
}

/// The drained partitions' final committable offsets as a commit list.
fn final_offsets(exits: &[(PartitionId, Option<i64>)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), committable) in exits {
        let Some(offset) = committable else { continue };
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            warn!(topic = %topic, partition, %error, "Cannot commit this revoked partition; its next owner redelivers from the last commit");
        }
    }
    list
}

fn label((topic, partition): &PartitionId) -> String {
    format!("{topic}[{partition}]")
}
