//! The consumer's librdkafka callbacks: its log lines as `tracing` events, statistics as the
//! lag gauges, rebalances handed to the [`PartitionRegistry`], commit results counted.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::TopicPartitionList;
use tracing::{debug, error, info, warn};

use super::commit;
use super::offset_reset;
use super::registry::PartitionRegistry;
use crate::ops::events;
use crate::ops::Metrics;

/// The sidecar's consumer.
pub type SidecarConsumer = BaseConsumer<SidecarContext>;

/// Callbacks from librdkafka (served on the pump thread), and the partition workers.
pub struct SidecarContext {
    pub registry: PartitionRegistry<SidecarContext>,
    pub metrics: Metrics,
    /// Watch the classic protocol's group state for a member stuck outside the group (the
    /// KIP-848 protocol reports other join states).
    pub watch_group_state: bool,
}

impl ClientContext for SidecarContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "OFFSET" {
            if let Some(reset) = offset_reset::parse(message) {
                self.registry
                    .offset_reset(&reset.topic, reset.partition, reset.from);
            }
        }
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
        if self.watch_group_state {
            if let Some(group) = &statistics.cgrp {
                let in_group = group.state == "up" && group.join_state == "steady";
                let broker_reachable = statistics
                    .brokers
                    .values()
                    .any(|broker| broker.nodeid >= 0 && broker.state == "UP");
                // librdkafka 2.12 can drop every broker, bootstrap ones included, after a
                // metadata response that lists none (confluentinc/librdkafka#5301); it never
                // reconnects then. Waiting does not help in that state either.
                let brokers_known = statistics
                    .brokers
                    .values()
                    .any(|broker| broker.source == "configured" || broker.source == "learned");
                let waiting_cannot_help = broker_reachable || !brokers_known;
                if let Some(outside) = self
                    .registry
                    .health
                    .group_observed(in_group, waiting_cannot_help)
                {
                    error!(
                        outside_s = outside.as_secs(),
                        state = %group.state,
                        join_state = %group.join_state,
                        brokers_known,
                        "The member has been outside the consumer group while a broker is reachable (or no broker is left to try); /healthz now fails so the container is restarted and rejoins"
                    );
                }
            }
        }
        for (topic_name, topic) in &statistics.topics {
            let mut topic_lag = None;
            for (partition, stats) in &topic.partitions {
                if *partition < 0
                    || stats.consumer_lag_stored < 0
                    || !self.registry.owns(topic_name, *partition)
                {
                    continue;
                }
                if self.metrics.per_partition {
                    events::lag_observed(
                        &self.metrics,
                        topic_name,
                        *partition,
                        stats.consumer_lag_stored,
                    );
                } else {
                    *topic_lag.get_or_insert(0) += stats.consumer_lag_stored;
                }
            }
            if let Some(lag) = topic_lag {
                events::topic_lag_observed(&self.metrics, topic_name, lag);
            }
        }
    }
}

impl ConsumerContext for SidecarContext {
    fn pre_rebalance(&self, consumer: &SidecarConsumer, rebalance: &Rebalance<'_>) {
        // The pump is busy here, not frozen: other partitions keep delivering.
        self.registry.health.callback_started();
        match rebalance {
            Rebalance::Assign(list) => self.registry.on_assign(list),
            Rebalance::Revoke(list) => self.registry.on_revoke(consumer, list),
            Rebalance::Error(error) => events::rebalance_failed(&self.metrics, &error.to_string()),
        }
        self.registry.health.callback_finished();
    }

    /// Every commit's result: automatic, revoke and shutdown commits alike.
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Some(outcome) = commit::classify(&result) {
            let error = result.err().map(|error| error.to_string());
            events::commit_finished(&self.metrics, outcome, error.as_deref());
        }
    }
}
