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

use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;

use crate::config::{GroupProtocol, KafkaConfig};
use crate::delivery::Deliverer;
use crate::ops::{Health, Metrics};
use crate::partition::WorkerSettings;

pub mod client_config;
pub mod commit;
pub mod context;
pub mod dead_letter;
pub mod offset_reset;
pub mod pump;
pub mod registry;
pub mod source;

pub use context::{SidecarConsumer, SidecarContext};

/// Creates the consumer and subscribes it. Must run inside the tokio runtime the workers
/// should run on.
pub fn create(
    kafka: &KafkaConfig,
    deliverer: Arc<Deliverer>,
    settings: Arc<WorkerSettings>,
    metrics: Metrics,
    health: Arc<Health>,
) -> Result<Arc<SidecarConsumer>, KafkaError> {
    let (batch, ordering) = (settings.batch, settings.ordering);
    let context = SidecarContext {
        registry: registry::PartitionRegistry::new(
            tokio::runtime::Handle::current(),
            deliverer,
            settings,
            kafka.rebalance_drain_timeout,
            kafka.group_id.clone(),
            kafka.instance_id().unwrap_or_default().to_string(),
            metrics.clone(),
            health,
        ),
        metrics,
        watch_group_state: kafka.group_protocol == GroupProtocol::Classic,
    };
    let consumer: Arc<SidecarConsumer> = Arc::new(
        client_config::consumer_config(kafka, batch.as_ref(), ordering)
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
