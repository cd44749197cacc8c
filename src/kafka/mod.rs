//! The rdkafka edge: everything that talks to Kafka.
//!
//! - [`client_config`]: librdkafka properties of the consumer and the dead-letter producer.
//! - [`context`]: the consumer's callbacks (logs, statistics, rebalances, commit results).
//! - [`registry`]: the running partition workers; assign, revoke (drain, then commit).
//! - [`source`]: a partition's split queue as a worker's record source.
//! - [`commit`]: the one synchronous commit used by revoke and shutdown.
//! - [`pump`]: the thread that polls the main queue and finally closes the consumer.
//! - [`dead_letter`]: the dead-letter producer.
//! - [`offset_reset`]: offsets skipped when a fetch position was out of range (retention).
//!
//! Here too: the subscribed topics' partition count (which sizes the prefetch, see
//! [`crate::budget`]) and the one position look-up for the whole assignment
//! ([`follow_positions`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::budget::Prefetch;
use crate::config::{GroupProtocol, KafkaConfig};
use crate::ops::{Health, Metrics};
use crate::routing::Route;

pub mod client_config;
pub mod commit;
pub mod context;
pub mod dead_letter;
pub mod offset_reset;
pub mod pump;
pub mod registry;
pub mod source;

pub use context::{SidecarConsumer, SidecarContext};

/// How long start-up waits for the subscribed topics' partition counts.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the consumer's position is looked up for the whole assignment.
const POSITION_INTERVAL: Duration = Duration::from_secs(1);

/// The partitions of the subscribed topics, which share librdkafka's half of the memory
/// budget (any of them may be assigned to this member). Blocks up to a few seconds (one
/// metadata request); on failure (brokers unreachable at start-up) it counts one partition
/// per topic, says so, and the prefetch keeps its full-speed size.
pub fn subscribed_partitions(kafka: &KafkaConfig) -> usize {
    let counted = client_config::producer_config(kafka)
        .create::<BaseConsumer>()
        .and_then(|client| {
            kafka.topics.iter().try_fold(0, |total, topic| {
                let metadata = client.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
                let partitions: usize = metadata
                    .topics()
                    .iter()
                    .map(|topic| topic.partitions().len())
                    .sum();
                Ok(total + partitions)
            })
        });
    match counted {
        Ok(partitions) => partitions.max(kafka.topics.len()),
        Err(error) => {
            warn!(%error, "Could not read the subscribed topics' partition counts; librdkafka's prefetch is not bounded by kafka.memory_budget until the sidecar restarts");
            kafka.topics.len()
        }
    }
}

/// Creates the consumer and subscribes it; `partitions` = [`subscribed_partitions`]. Must run
/// inside the tokio runtime the workers should run on.
pub fn create(
    kafka: &KafkaConfig,
    routes: Vec<Route>,
    metrics: Metrics,
    health: Arc<Health>,
    partitions: usize,
) -> Result<Arc<SidecarConsumer>, KafkaError> {
    // The prefetch is sized for the first route's batching and ordering (the top-level
    // `delivery`'s when there are no routes).
    let (batch, ordering) = routes
        .first()
        .map_or((None, crate::config::Ordering::Partition), |route| {
            (route.settings.batch, route.settings.ordering)
        });
    let prefetch = Prefetch::within(
        kafka.memory_budget.as_u64(),
        partitions,
        client_config::full_speed_prefetch(batch.as_ref(), ordering),
    );
    info!(
        memory_budget = %kafka.memory_budget.display().iec(),
        subscribed_partitions = partitions,
        prefetch_queued_kbytes = prefetch.queued_kbytes,
        prefetch_fetch_bytes = prefetch.fetch_bytes,
        "Memory budget shared out"
    );
    let context = SidecarContext {
        registry: registry::PartitionRegistry::new(
            tokio::runtime::Handle::current(),
            routes,
            kafka.rebalance_drain_timeout,
            kafka.group_id.clone(),
            kafka.instance_id().unwrap_or_default().to_string(),
            metrics.clone(),
            health,
            partitions,
        ),
        metrics,
        watch_group_state: kafka.group_protocol == GroupProtocol::Classic,
    };
    let consumer: Arc<SidecarConsumer> = Arc::new(
        client_config::consumer_config(kafka, batch.as_ref(), ordering, partitions)
            .create_with_context(context)?,
    );
    // Set once, right after creation, before subscribe can trigger any rebalance.
    let _ = consumer
        .context()
        .registry
        .consumer
        .set(Arc::downgrade(&consumer));
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(consumer)
}

/// Every [`POSITION_INTERVAL`] until `stop`: one look-up of the consumer's position for the
/// whole assignment, on the blocking pool (rdkafka's `position()` waits for librdkafka's
/// main thread), offered to the workers that ran when it began. librdkafka moves a
/// partition's position past transaction markers and aborted records, which never reach a
/// worker; without this the committed offset would stay below them. Idle partitions are not
/// woken (see [`crate::partition::PositionHint`]), so the cost does not grow with idle
/// partitions beyond one local call. The consumer reference is held only during a look-up;
/// the pump waits for it before it closes the consumer.
pub async fn follow_positions(consumer: Weak<SidecarConsumer>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(POSITION_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(consumer) = consumer.upgrade() else {
            break;
        };
        let registry = &consumer.context().registry;
        if registry.health.is_shutting_down() {
            continue;
        }
        let targets = registry.position_targets();
        if targets.is_empty() {
            continue;
        }
        let looked_up = tokio::task::spawn_blocking(move || {
            let positions = consumer.position();
            (consumer, positions)
        })
        .await;
        match looked_up {
            Ok((consumer, Ok(positions))) => {
                consumer
                    .context()
                    .registry
                    .offer_positions(&targets, &positions);
            }
            Ok((_, Err(error))) => debug!(%error, "Position look-up failed"),
            Err(join_error) => debug!(error = %join_error, "Position look-up did not finish"),
        }
    }
}
