//! The librdkafka properties of the consumer and of the dead-letter producer, derived from the
//! `kafka:` section with the user's `kafka.properties` on top. Pure (no client is created).

use rdkafka::config::ClientConfig;

use crate::budget::Prefetch;
use crate::config::{BatchSettings, GroupProtocol, KafkaConfig, OffsetReset, Ordering};

/// The librdkafka properties for the consumer: derived from the config (and the batch size
/// and ordering, which set the prefetch, and the partitions of the subscribed topics, which
/// share the memory budget's prefetch half), then the user's `kafka.properties` on top.
pub fn consumer_config(
    kafka: &KafkaConfig,
    batch: Option<&BatchSettings>,
    ordering: Ordering,
    partitions: usize,
) -> ClientConfig {
    let prefetch = Prefetch::within(
        kafka.memory_budget.as_u64(),
        partitions,
        full_speed_prefetch(batch, ordering),
    );
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
        .set(
            "statistics.interval.ms",
            statistics_interval_ms(partitions).to_string(),
        )
        .set(
            "queued.max.messages.kbytes",
            prefetch.queued_kbytes.to_string(),
        )
        .set(
            "max.partition.fetch.bytes",
            prefetch.fetch_bytes.to_string(),
        )
        // When a partition's queue is full librdkafka postpones its next fetch by this much
        // (default 1 s): with a fast endpoint the queue drains long before that, and the
        // partition sat idle for the rest of the second (31k → 48k records/s when lowered).
        .set("fetch.queue.backoff.ms", "10")
        // Partitions added to a consumed topic are seen at the next metadata refresh
        // (librdkafka's default: 5 minutes). A producer writes to new partitions at once, so
        // refresh every 5 s: new partitions' records flow within ~5 s plus a rebalance, for
        // one small metadata request per interval.
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set(
            "client.id",
            format!("kafka-webhook-sidecar-{}", std::process::id()),
        );
    if kafka.fetch_linger.is_zero() {
        // librdkafka has one fetch in flight per broker, and leaves out of it the partitions
        // whose queue is full. When the others are all at their end, the broker holds that
        // fetch for `fetch.wait.max.ms` (librdkafka's default 500 ms) while the left-out
        // partitions, backlog and all, wait for it: at the end of a drain, or behind quiet
        // partitions under a skewed load. Measured (bench/README.md): 100 ms lifted a batched
        // 1M-record drain from 251-421k to 397-435k records/s and single-record key mode from
        // 43k to 51-60k/s, for one empty fetch per 100 ms when idle instead of 500 ms.
        client.set("fetch.wait.max.ms", "100");
    } else {
        // The broker answers a fetch when 1 MiB is ready or the linger passed: at moderate
        // rates one fetch (and one wake-up per partition) carries several records.
        client
            .set(
                "fetch.wait.max.ms",
                kafka.fetch_linger.as_millis().max(1).to_string(),
            )
            .set("fetch.min.bytes", (1 << 20).to_string());
    }
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
    if let Some(instance_id) = kafka.instance_id() {
        client.set("group.instance.id", instance_id);
    }
    for (key, value) in &kafka.properties {
        client.set(key, value);
    }
    client
}

/// How often librdkafka reports statistics (the lag gauge, the group-state check): every 5 s,
/// and less often for many partitions, up to 15 s from 1,000 on. The report of 1,000
/// partitions (~1.5 MB of JSON written by librdkafka, parsed here) was about a fifth of an
/// idle member's CPU at 5 s (issue 24, `perf record` of an idle 1,000-partition member).
pub fn statistics_interval_ms(partitions: usize) -> u64 {
    (partitions as u64 * 15).clamp(5_000, 15_000)
}

/// The prefetch per partition (split queues) for full speed: at most 512 KiB queued plus one
/// 256 KiB fetch.
///
/// Measured with bench/run.sh (12 partitions, 1 KiB records): 1024 KiB gave ~6% more
/// records/s for ~6 MiB more peak RSS, 2048 KiB/1 MiB fetches ~10% more for ~18 MiB more.
/// With batching one fetch holds a batch. In partition mode the queue holds two: the
/// partition's next batch is read while its one batch is in flight (500-record batches of
/// 1 KiB: 95k → 250k records/s; with a queue of one batch, 370k against 422k records/s
/// after the fetch-wait fix). In key and none mode several batches per partition are in
/// flight and the queue of one batch gave the same rate for 10–20 MiB less peak RSS
/// (1M drains, 2 runs each: key 313/357k vs 291/354k, none 350/400k vs 409/333k).
pub fn full_speed_prefetch(batch: Option<&BatchSettings>, ordering: Ordering) -> Prefetch {
    let (queued_kbytes, fetch_bytes) = match batch {
        None => (512, 256 << 10),
        Some(batch) => {
            let batches = if ordering == Ordering::Partition {
                2
            } else {
                1
            };
            (
                (batches * batch.max_bytes / 1024).max(512) as u64,
                batch.max_bytes.max(256 << 10) as u64,
            )
        }
    };
    Prefetch {
        queued_kbytes,
        fetch_bytes,
    }
}

/// The properties shared with the dead-letter producer: connection and security only.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    const CONSUMER_ONLY: [&str; 4] = ["fetch.", "queued.", "partition.assignment", "group."];
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &kafka.bootstrap_servers);
    let passthrough = kafka
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{AssignmentStrategy, Config};

    fn kafka() -> KafkaConfig {
        Config::new(
            "broker:9092",
            "orders-webhook",
            &["orders"],
            "http://127.0.0.1:1/",
        )
        .kafka
    }

    fn get<'a>(config: &'a ClientConfig, key: &str) -> Option<&'a str> {
        config.get(key)
    }

    #[test]
    fn fetch_linger_sets_the_broker_wait_and_minimum() {
        let mut kafka = kafka();
        let config = consumer_config(&kafka, None, Ordering::Key, 12);
        // No linger: the broker answers at once when records are there, and holds an empty
        // fetch at most 100 ms (not librdkafka's 500 ms, which stalls partitions left out).
        assert_eq!(get(&config, "fetch.wait.max.ms"), Some("100"));
        assert_eq!(get(&config, "fetch.min.bytes"), None);
        kafka.fetch_linger = Duration::from_millis(5);
        let config = consumer_config(&kafka, None, Ordering::Key, 12);
        assert_eq!(get(&config, "fetch.wait.max.ms"), Some("5"));
        assert_eq!(get(&config, "fetch.min.bytes"), Some("1048576"));
        kafka
            .properties
            .insert("fetch.min.bytes".into(), "65536".into());
        let config = consumer_config(&kafka, None, Ordering::Key, 12);
        assert_eq!(
            get(&config, "fetch.min.bytes"),
            Some("65536"),
            "properties win"
        );
    }

    #[test]
    fn consumer_stores_offsets_only_after_acknowledgement() {
        let config = consumer_config(&kafka(), None, Ordering::Key, 12);
        assert_eq!(get(&config, "bootstrap.servers"), Some("broker:9092"));
        assert_eq!(get(&config, "group.id"), Some("orders-webhook"));
        assert_eq!(get(&config, "enable.auto.offset.store"), Some("false"));
        assert_eq!(get(&config, "enable.auto.commit"), Some("true"));
        assert_eq!(get(&config, "auto.commit.interval.ms"), Some("1000"));
        assert_eq!(get(&config, "auto.offset.reset"), Some("earliest"));
        assert_eq!(
            get(&config, "partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(get(&config, "session.timeout.ms"), Some("45000"));
        assert_eq!(get(&config, "group.instance.id"), None);
        assert_eq!(get(&config, "group.protocol"), None);
        assert_eq!(
            get(&config, "topic.metadata.refresh.interval.ms"),
            Some("5000")
        );
    }

    #[test]
    fn batching_sizes_the_prefetch_to_the_batches_read_ahead() {
        // A budget that leaves the full-speed sizes alone at 12 partitions.
        let mut kafka = kafka();
        kafka.memory_budget = bytesize::ByteSize::mib(256);
        let kafka = || kafka.clone();
        let single = consumer_config(&kafka(), None, Ordering::Key, 12);
        assert_eq!(get(&single, "queued.max.messages.kbytes"), Some("512"));
        assert_eq!(get(&single, "max.partition.fetch.bytes"), Some("262144"));
        let batch = crate::config::BatchSettings {
            max_records: 500,
            max_bytes: 1 << 20,
            max_wait: std::time::Duration::from_millis(5),
            body: crate::config::BatchBody::JsonArray,
        };
        let batched = consumer_config(&kafka(), Some(&batch), Ordering::Partition, 12);
        assert_eq!(get(&batched, "queued.max.messages.kbytes"), Some("2048"));
        assert_eq!(get(&batched, "max.partition.fetch.bytes"), Some("1048576"));
        for ordering in [Ordering::Key, Ordering::None] {
            let batched = consumer_config(&kafka(), Some(&batch), ordering, 12);
            assert_eq!(get(&batched, "queued.max.messages.kbytes"), Some("1024"));
            assert_eq!(get(&batched, "max.partition.fetch.bytes"), Some("1048576"));
        }
        let small = crate::config::BatchSettings {
            max_bytes: 4096,
            ..batch
        };
        let small = consumer_config(&kafka(), Some(&small), Ordering::Partition, 12);
        assert_eq!(get(&small, "queued.max.messages.kbytes"), Some("512"));
    }

    #[test]
    fn the_memory_budget_bounds_the_prefetch_of_every_subscribed_partition() {
        let kafka = kafka();
        assert_eq!(kafka.memory_budget, bytesize::ByteSize::mib(64));
        let few = consumer_config(&kafka, None, Ordering::Key, 12);
        assert_eq!(get(&few, "queued.max.messages.kbytes"), Some("512"));
        let many = consumer_config(&kafka, None, Ordering::Key, 1000);
        assert_eq!(get(&many, "queued.max.messages.kbytes"), Some("16"));
        assert_eq!(get(&many, "max.partition.fetch.bytes"), Some("16777"));
        let mut override_ = kafka.clone();
        override_
            .properties
            .insert("queued.max.messages.kbytes".into(), "64".into());
        let overridden = consumer_config(&override_, None, Ordering::Key, 1000);
        assert_eq!(
            get(&overridden, "queued.max.messages.kbytes"),
            Some("64"),
            "kafka.properties still win"
        );
    }

    #[test]
    fn statistics_come_less_often_for_many_partitions() {
        let get_interval = |partitions| {
            consumer_config(&kafka(), None, Ordering::Key, partitions)
                .get("statistics.interval.ms")
                .map(str::to_owned)
        };
        assert_eq!(get_interval(12).as_deref(), Some("5000"));
        assert_eq!(get_interval(500).as_deref(), Some("7500"));
        assert_eq!(get_interval(1000).as_deref(), Some("15000"));
        assert_eq!(get_interval(20_000).as_deref(), Some("15000"));
    }

    #[test]
    fn heartbeat_is_a_third_of_the_session_at_most_three_seconds() {
        let mut kafka = kafka();
        kafka.session_timeout = Duration::from_secs(6);
        assert_eq!(
            get(
                &consumer_config(&kafka, None, Ordering::Key, 12),
                "heartbeat.interval.ms"
            ),
            Some("2000")
        );
        kafka.session_timeout = Duration::from_secs(45);
        assert_eq!(
            get(
                &consumer_config(&kafka, None, Ordering::Key, 12),
                "heartbeat.interval.ms"
            ),
            Some("3000")
        );
        kafka.session_timeout = Duration::from_secs(1);
        assert_eq!(
            get(
                &consumer_config(&kafka, None, Ordering::Key, 12),
                "heartbeat.interval.ms"
            ),
            Some("333")
        );
    }

    #[test]
    fn keys_map_to_librdkafka_properties() {
        let mut kafka = kafka();
        kafka.group_instance_id = "pod-0".into();
        kafka.assignment_strategy = AssignmentStrategy::Roundrobin;
        kafka.auto_offset_reset = OffsetReset::Latest;
        kafka.commit_interval = Duration::from_millis(250);
        let config = consumer_config(&kafka, None, Ordering::Key, 12);
        assert_eq!(get(&config, "group.instance.id"), Some("pod-0"));
        assert_eq!(
            get(&config, "partition.assignment.strategy"),
            Some("roundrobin")
        );
        assert_eq!(get(&config, "auto.offset.reset"), Some("latest"));
        assert_eq!(get(&config, "auto.commit.interval.ms"), Some("250"));
    }

    #[test]
    fn kip_848_leaves_assignment_and_session_to_the_broker() {
        let mut kafka = kafka();
        kafka.group_protocol = GroupProtocol::Consumer;
        let config = consumer_config(&kafka, None, Ordering::Key, 12);
        assert_eq!(get(&config, "group.protocol"), Some("consumer"));
        assert_eq!(get(&config, "partition.assignment.strategy"), None);
        assert_eq!(get(&config, "session.timeout.ms"), None);
        assert_eq!(get(&config, "heartbeat.interval.ms"), None);
    }

    #[test]
    fn user_properties_win_over_derived_ones() {
        let mut kafka = kafka();
        kafka
            .properties
            .insert("queued.max.messages.kbytes".into(), "2048".into());
        kafka
            .properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        let config = consumer_config(&kafka, None, Ordering::Key, 12);
        assert_eq!(get(&config, "queued.max.messages.kbytes"), Some("2048"));
        assert_eq!(get(&config, "security.protocol"), Some("SASL_SSL"));
    }

    #[test]
    fn producer_takes_connection_and_security_but_no_consumer_properties() {
        let mut kafka = kafka();
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.password", "secret"),
            ("fetch.wait.max.ms", "100"),
            ("queued.max.messages.kbytes", "2048"),
            ("group.instance.id", "x"),
            ("session.timeout.ms", "10000"),
            ("isolation.level", "read_uncommitted"),
            ("auto.offset.reset", "latest"),
        ] {
            kafka.properties.insert(key.into(), value.into());
        }
        let config = producer_config(&kafka);
        assert_eq!(get(&config, "bootstrap.servers"), Some("broker:9092"));
        assert_eq!(get(&config, "security.protocol"), Some("SASL_SSL"));
        assert_eq!(get(&config, "sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get(&config, "sasl.password"), Some("secret"));
        for consumer_only in [
            "fetch.wait.max.ms",
            "queued.max.messages.kbytes",
            "group.instance.id",
            "group.id",
            "session.timeout.ms",
            "isolation.level",
            "auto.offset.reset",
        ] {
            assert_eq!(get(&config, consumer_only), None, "{consumer_only}");
        }
    }
}
