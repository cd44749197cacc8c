//! The rdkafka edge: the consumer context (rebalance callbacks that start and drain partition
//! workers, commit before release), the consumer's configuration, and the pump thread that polls
//! the main queue so callbacks are served and the member stays in the group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{Config, GroupProtocol, OffsetReset};
use crate::delivery::{Deliverer, Drain};
use crate::metrics::Metrics;
use crate::state::State;
use crate::worker::{PartitionWorker, WorkerExit, WorkerSettings};

pub type SidecarConsumer = BaseConsumer<SidecarContext>;

type PartitionId = (Arc<str>, i32);

struct WorkerHandle {
    drain: Drain,
    join: JoinHandle<WorkerExit>,
}

/// Callbacks from librdkafka, and the registry of running partition workers.
pub struct SidecarContext {
    runtime: tokio::runtime::Handle,
    consumer: OnceLock<Weak<SidecarConsumer>>,
    workers: Mutex<HashMap<PartitionId, WorkerHandle>>,
    deliverer: Arc<Deliverer>,
    settings: Arc<WorkerSettings>,
    rebalance_drain_timeout: Duration,
    group_id: String,
    instance_id: Option<String>,
    metrics: Metrics,
    state: Arc<State>,
}

impl SidecarContext {
    pub fn mark_unhealthy(&self) {
        self.state.set_failed();
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<PartitionId, WorkerHandle>> {
        // A poisoned lock means a panic while holding it; the map itself is still consistent
        // (single inserts and removes), so keep going.
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn owned(&self) -> Vec<String> {
        let mut owned: Vec<String> = self
            .workers()
            .keys()
            .map(|(topic, partition)| format!("{topic}[{partition}]"))
            .collect();
        owned.sort();
        owned
    }

    /// Splits the partition's queue (before librdkafka assigns it, so no record reaches the
    /// main queue) and starts its worker.
    fn start_worker(&self, topic: &str, partition: i32) {
        if self.state.is_shutting_down() {
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
        let Some(mut queue) = consumer.split_partition_queue(&topic, partition) else {
            error!(topic = %topic, partition, "Could not split partition queue");
            self.state.set_failed();
            return;
        };
        let wakeup = Arc::new(Notify::new());
        let notify = wakeup.clone();
        queue.set_nonempty_callback(move || notify.notify_one());
        let drain = Drain::default();
        let worker = PartitionWorker {
            topic,
            partition,
            queue,
            wakeup,
            consumer,
            deliverer: self.deliverer.clone(),
            settings: self.settings.clone(),
            drain: drain.clone(),
            metrics: self.metrics.clone(),
        };
        let join = self.runtime.spawn(worker.run());
        self.workers().insert(id, WorkerHandle { drain, join });
        self.metrics.assigned_partitions.inc();
    }

    /// Stops the given partitions' workers (all when `None`), waits up to `timeout` for their
    /// in-flight deliveries, then abandons what is left. Returns each drained partition's
    /// final committable offset.
    pub async fn drain_workers(
        &self,
        which: Option<&[PartitionId]>,
        timeout: Duration,
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
        let deadline = tokio::time::Instant::now() + timeout;
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
            self.metrics.assigned_partitions.dec();
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

    fn on_assign(&self, list: &TopicPartitionList) {
        self.metrics.rebalances.with_label_values(&["assign"]).inc();
        let gained: Vec<String> = list
            .elements()
            .iter()
            .map(|element| format!("{}[{}]", element.topic(), element.partition()))
            .collect();
        for element in list.elements() {
            self.start_worker(element.topic(), element.partition());
        }
        self.state.set_ready();
        info!(
            group_id = %self.group_id,
            instance_id = self.instance_id.as_deref().unwrap_or(""),
            gained = ?gained,
            owned = ?self.owned(),
            "Partitions assigned"
        );
    }

    fn on_revoke(&self, consumer: &SidecarConsumer, list: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        self.metrics
            .rebalances
            .with_label_values(&[if lost { "lost" } else { "revoke" }])
            .inc();
        let ids: Vec<PartitionId> = list
            .elements()
            .iter()
            .map(|element| (Arc::from(element.topic()), element.partition()))
            .collect();
        let revoked: Vec<String> = ids
            .iter()
            .map(|(topic, partition)| format!("{topic}[{partition}]"))
            .collect();
        info!(
            group_id = %self.group_id,
            instance_id = self.instance_id.as_deref().unwrap_or(""),
            revoked = ?revoked,
            lost,
            "Partitions being revoked; draining"
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
        let exits = self
            .runtime
            .block_on(self.drain_workers(Some(&ids), timeout));
        self.metrics
            .rebalance_drain
            .observe(started.elapsed().as_secs_f64());
        if !lost {
            commit_final(consumer, &exits, &self.metrics);
        }
        info!(
            group_id = %self.group_id,
            revoked = ?revoked,
            drain_ms = started.elapsed().as_millis() as u64,
            owned = ?self.owned(),
            "Partitions released"
        );
    }
}

/// Commits the drained partitions' final offsets synchronously, before they are released.
fn commit_final(
    consumer: &SidecarConsumer,
    exits: &[(PartitionId, Option<i64>)],
    metrics: &Metrics,
) {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), committable) in exits {
        let Some(offset) = committable else { continue };
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            warn!(topic = %topic, partition, %error, "Cannot commit this revoked partition; its next owner redelivers from the last commit");
        }
    }
    if list.count() == 0 {
        return;
    }
    match consumer.commit(&list, CommitMode::Sync) {
        Ok(()) => debug!(partitions = list.count(), "Committed revoked partitions"),
        Err(error) => {
            metrics.commits.with_label_values(&["error"]).inc();
            warn!(%error, "Could not commit revoked partitions; the next owner redelivers from the last commit");
        }
    }
}

impl ClientContext for SidecarContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(target: "librdkafka", %error, reason, "Kafka client error");
    }

    /// librdkafka statistics (every `statistics.interval.ms`): per-partition lag, computed
    /// from the cached high watermark and the stored (acknowledged) offset, without a request.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let workers = self.workers();
        for (topic_name, topic) in &statistics.topics {
            for (partition, stats) in &topic.partitions {
                let id: PartitionId = (Arc::from(topic_name.as_str()), *partition);
                if *partition < 0 || !workers.contains_key(&id) || stats.consumer_lag_stored < 0 {
                    continue;
                }
                self.metrics
                    .consumer_lag
                    .with_label_values(&[topic_name, &partition.to_string()])
                    .set(stats.consumer_lag_stored);
            }
        }
    }
}

impl ConsumerContext for SidecarContext {
    fn pre_rebalance(&self, consumer: &SidecarConsumer, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => self.on_assign(list),
            Rebalance::Revoke(list) => self.on_revoke(consumer, list),
            Rebalance::Error(error) => {
                self.metrics.rebalances.with_label_values(&["error"]).inc();
                error!(%error, "Rebalance error");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.metrics.commits.with_label_values(&["ok"]).inc(),
            // Nothing new to commit is not a failure.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                self.metrics.commits.with_label_values(&["error"]).inc();
                warn!(%error, "Offset commit failed; it is retried on the next interval");
            }
        }
    }
}

/// The librdkafka properties for the consumer: derived from the config, then the user's
/// `kafka.properties` on top.
pub fn client_config(config: &Config) -> ClientConfig {
    let kafka = &config.kafka;
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            kafka.commit_interval.as_millis().to_string(),
        )
        .set(
            "auto.offset.reset",
            match kafka.auto_offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        )
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        // Prefetch per partition (split queues): at most 512 KiB queued plus one 256 KiB
        // fetch. Measured with bench/run.sh (12 partitions, 1 KiB records): 1024 KiB gave
        // ~6% more records/s for ~6 MiB more peak RSS, 2048 KiB/1 MiB fetches ~10% more for
        // ~18 MiB more.
        .set("queued.max.messages.kbytes", "512")
        .set("max.partition.fetch.bytes", "262144")
        // When a partition's queue is full librdkafka postpones its next fetch by this much
        // (default 1 s): with a fast endpoint the queue drains long before that, and the
        // partition sat idle for the rest of the second (31k → 48k records/s when lowered).
        .set("fetch.queue.backoff.ms", "10")
        .set(
            "client.id",
            format!("kafka-webhook-sidecar-{}", std::process::id()),
        );
    match kafka.group_protocol {
        GroupProtocol::Classic => {
            client
                .set(
                    "partition.assignment.strategy",
                    kafka.assignment_strategy.librdkafka_name(),
                )
                .set(
                    "session.timeout.ms",
                    kafka.session_timeout.as_millis().to_string(),
                )
                .set(
                    "heartbeat.interval.ms",
                    // Members learn of a rebalance only from a heartbeat response: keep the
                    // usual 3 s, and never more than a third of the session timeout.
                    (kafka.session_timeout.as_millis() / 3)
                        .clamp(100, 3000)
                        .to_string(),
                );
        }
        GroupProtocol::Consumer => {
            // KIP-848: the broker assigns and owns the session timeout and heartbeat settings.
            client.set("group.protocol", "consumer");
        }
    }
    if !kafka.group_instance_id.is_empty() {
        client.set("group.instance.id", &kafka.group_instance_id);
    }
    for (key, value) in &kafka.properties {
        client.set(key, value);
    }
    client
}

/// The properties shared with the dead-letter producer: connection and security only.
pub fn producer_base_config(config: &Config) -> ClientConfig {
    const CONSUMER_ONLY: [&str; 4] = ["fetch.", "queued.", "partition.assignment", "group."];
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    let passthrough = config
        .kafka
        .properties
        .iter()
        .filter(|(key, _)| !CONSUMER_ONLY.iter().any(|prefix| key.starts_with(prefix)))
        .filter(|(key, _)| {
            !matches!(
                key.as_str(),
                "session.timeout.ms"
                    | "heartbeat.interval.ms"
                    | "max.poll.interval.ms"
                    | "auto.offset.reset"
                    | "auto.commit.interval.ms"
                    | "enable.partition.eof"
                    | "isolation.level"
            )
        });
    for (key, value) in passthrough {
        client.set(key, value);
    }
    client
}

/// Creates the consumer and subscribes it. Must run inside the tokio runtime whose handle the
/// workers use.
pub fn create(
    config: &Config,
    deliverer: Arc<Deliverer>,
    settings: Arc<WorkerSettings>,
    metrics: Metrics,
    state: Arc<State>,
) -> Result<Arc<SidecarConsumer>, KafkaError> {
    let context = SidecarContext {
        runtime: tokio::runtime::Handle::current(),
        consumer: OnceLock::new(),
        workers: Mutex::new(HashMap::new()),
        deliverer,
        settings,
        rebalance_drain_timeout: config.kafka.rebalance_drain_timeout,
        group_id: config.kafka.group_id.clone(),
        instance_id: (!config.kafka.group_instance_id.is_empty())
            .then(|| config.kafka.group_instance_id.clone()),
        metrics,
        state,
    };
    let consumer: Arc<SidecarConsumer> =
        Arc::new(client_config(config).create_with_context(context)?);
    // Set once, right after creation, before subscribe can trigger any rebalance.
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    let topics: Vec<&str> = config.kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Polls the main queue on its own OS thread (never a runtime thread, so rebalance callbacks
/// may block while partitions drain) until `stop`; then drops its reference to the consumer so
/// it closes (leaving the group) on this same thread. `done` fires when the consumer is closed.
pub fn spawn_pump(
    consumer: Arc<SidecarConsumer>,
    state: Arc<State>,
    stop: CancellationToken,
    done: tokio::sync::oneshot::Sender<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kafka-pump".into())
        .spawn(move || {
            while !stop.is_cancelled() {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) => {
                        use rdkafka::Message;
                        // Unreachable by construction (queues are split before assignment). The
                        // record is not stored, so the committed offset cannot pass it.
                        error!(
                            topic = message.topic(),
                            partition = message.partition(),
                            offset = message.offset(),
                            "Record arrived on the main queue instead of its partition queue"
                        );
                        state.set_failed();
                    }
                    Some(Err(error)) => warn!(%error, "Kafka consumer error"),
                }
                state.beat();
            }
            let started = Instant::now();
            // Wait until the workers' references are gone, so this drop is the one that closes.
            while Arc::strong_count(&consumer) > 1 && started.elapsed() < Duration::from_secs(30) {
                consumer.poll(Duration::from_millis(50));
                state.beat();
            }
            drop(consumer);
            info!(
                close_ms = started.elapsed().as_millis() as u64,
                "Consumer closed; left the group"
            );
            let _ = done.send(());
        })
}

impl SidecarContext {
    /// The consumer's assignment as seen by librdkafka, for pausing on shutdown.
    pub fn pause_all(&self, consumer: &SidecarConsumer) -> usize {
        match consumer.assignment() {
            Ok(list) if list.count() > 0 => match consumer.pause(&list) {
                Ok(()) => {
                    self.metrics.paused_partitions.set(list.count() as i64);
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
