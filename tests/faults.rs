//! The fault suite (issue 14): delivery through the failures a production cluster has every
//! week, against real Apache Kafka. Each test checks: nothing lost, per-key order among first
//! deliveries, the committed offset never past an unacknowledged record (sampled while the
//! fault happens), and duplicates only where a crash allows them, within a stated bound.
//!
//! Tests that start their own cluster (three brokers, a long outage, SASL/TLS) get the script
//! from `KWS_KAFKA_SCRIPT`; the three-broker and long-outage ones are skipped when
//! `KWS_TEST_SKIP_SLOW=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::checks::*;
use common::cluster::{serial, skip_slow, Cluster, Kafka};
use common::endpoint::{Endpoint, Reply};
use common::proxy::ResettingProxy;
use common::*;
use kafka_webhook_sidecar::config::Ordering;

const LONG: Duration = Duration::from_secs(180);

/// `KWS_TEST_KAFKA_DEBUG` (e.g. `cgrp,broker`): librdkafka's `debug` contexts for the sidecars
/// of the cluster fault tests; run with `RUST_LOG=info,librdkafka=debug` to see them.
fn kafka_debug(config: &mut kafka_webhook_sidecar::config::Config) {
    if let Ok(contexts) = std::env::var("KWS_TEST_KAFKA_DEBUG") {
        config.kafka.properties.insert("debug".into(), contexts);
    }
}

/// Scrapes one series, retrying while the admin server is briefly busy.
fn metric_or_zero(sidecar: &Sidecar, name: &str) -> f64 {
    for _ in 0..3 {
        let text = sidecar.metrics();
        if !text.is_empty() {
            return series(&text, name).unwrap_or(0.0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    0.0
}

// ------------------------------------------------------------------------------------------
// 10: out-of-order acknowledgements in key mode, then kill -9
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_mode_failing_record_holds_the_commit_then_kill_9_and_a_new_member_delivers_it() {
    let _serial = serial().await;
    const KEYS: usize = 10;
    const COUNT: usize = 200;
    let kafka = Kafka::shared();
    let topic = unique("fault-ooo");
    let group = unique("fault-ooo-group");
    kafka.create_topic(&topic, 1, 1).await;
    let produced = produce_keyed(&topic, KEYS, COUNT).await;
    // k3 seq 5 is at offset 5 * KEYS + 3 (one partition, produced round-robin).
    let failing = Keyed {
        key: "k3".into(),
        seq: 5,
    };
    let failing_offset = (5 * KEYS + 3) as i64;
    let endpoint = Endpoint::start().await;
    let poisoned = failing.clone();
    endpoint.set_handler(move |request, _| {
        if parse_payload(&request.body).as_ref() == Some(&poisoned) {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = Ordering::Key;
    config.delivery.max_in_flight = 16;
    let watcher = CommitWatcher::start(&kafka, &group, &topic, 1);
    let mut first = Sidecar::start_ready(&config).await;

    // Every record but k3's from seq 5 on (blocked behind it in key mode) is delivered.
    let blocked = COUNT / KEYS - 5;
    endpoint.wait_for_distinct_ids(COUNT - blocked, LONG).await;
    // The commit settles on the failing record and stays there while it keeps failing.
    let reader = kafka.offset_reader(&group);
    wait_until(LONG, "the commit reaches the failing record", || {
        common::cluster::committed_with(&reader, &topic, 1, Duration::from_secs(5))
            == Some(vec![failing_offset])
    })
    .await;
    let attempts_before = endpoint.requests_for_id(&format!("{topic}-0-{failing_offset}"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        kafka.committed(&group, &topic, 1),
        Some(vec![failing_offset]),
        "the commit moved past the failing record"
    );
    let attempts = endpoint
        .requests_for_id(&format!("{topic}-0-{failing_offset}"))
        .len();
    assert!(
        attempts > attempts_before.len(),
        "the failing record is not retried"
    );
    let retries = metric_or_zero(
        &first,
        &format!("kws_delivery_retries_total{{topic=\"{topic}\"}}"),
    );
    let oldest = metric_or_zero(
        &first,
        &format!("kws_oldest_unacked_record_age_seconds{{partition=\"0\",topic=\"{topic}\"}}"),
    );
    eprintln!(
        "blocked record: {attempts} attempts, kws_delivery_retries_total {retries}, \
         oldest unacknowledged age {oldest} s"
    );
    assert!(retries >= 1.0);

    first.kill9();
    let killed_at = Instant::now();
    let acked_above: BTreeSet<i64> = delivered(&endpoint)
        .iter()
        .filter(|d| d.offset > failing_offset)
        .map(|d| d.offset)
        .collect();
    endpoint.always_ok();
    let _second = Sidecar::start_ready(&config).await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let end = kafka.end_offsets(&topic, 1);
    wait_committed(&kafka, &group, &topic, &end).await;
    let samples = watcher.finish();

    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_per_key_order(&endpoint.successful_requests());
    let checked = assert_commits_never_passed_unacknowledged(&samples, &deliveries);
    assert!(checked > 0, "no committed offset was sampled");
    let after: Vec<&Delivered> = deliveries.iter().filter(|d| d.at >= killed_at).collect();
    assert!(
        after.iter().all(|d| d.offset >= failing_offset),
        "the new member redelivered below the committed offset"
    );
    // It resumes at the committed (failing) record (key mode: several in flight, so that
    // record need not arrive first).
    assert_eq!(
        after.iter().map(|d| d.offset).min(),
        Some(failing_offset),
        "the new member resumes at the committed (failing) record"
    );
    // Bound: exactly the records above the failing one that the killed member had acknowledged.
    let dups = duplicates(&deliveries);
    eprintln!(
        "kill -9 after out-of-order acks: {dups} duplicates (bound: {} acknowledged above the \
         committed offset)",
        acked_above.len()
    );
    assert!(dups <= acked_above.len());
}

// ------------------------------------------------------------------------------------------
// 5: connection resets between the sidecar and the endpoint
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_resets_every_second_lose_nothing_and_keep_order() {
    let _serial = serial().await;
    const PARTITIONS: i32 = 3;
    let kafka = Kafka::shared();
    let topic = unique("fault-reset");
    let group = unique("fault-reset-group");
    kafka.create_topic(&topic, PARTITIONS, 1).await;
    let endpoint = Endpoint::start().await;
    // A little latency so resets often catch a request or a response in flight.
    endpoint.set_handler(|_, _| Reply::ok().after(Duration::from_millis(3)));
    let proxy = ResettingProxy::start(
        endpoint.addr(),
        Duration::from_millis(500),
        Duration::from_millis(1500),
    )
    .await;
    let config = test_config(&group, &topic, &proxy.url());
    let watcher = CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);
    let sidecar = Sidecar::start_ready(&config).await;
    let load = Load::start(&kafka, &topic, 30, 300);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let produced = load.finish().await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let end = kafka.end_offsets(&topic, PARTITIONS);
    wait_committed(&kafka, &group, &topic, &end).await;
    let samples = watcher.finish();

    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_partition_order(&deliveries);
    assert_per_key_order(&endpoint.successful_requests());
    assert_commits_never_passed_unacknowledged(&samples, &deliveries);
    let text = sidecar.metrics();
    let retries = series(
        &text,
        &format!("kws_delivery_retries_total{{topic=\"{topic}\"}}"),
    )
    .unwrap_or(0.0);
    let connection_errors = series(
        &text,
        &format!("kws_delivery_attempts_total{{class=\"connection_error\",topic=\"{topic}\"}}"),
    )
    .unwrap_or(0.0);
    let timeouts = series(
        &text,
        &format!("kws_delivery_attempts_total{{class=\"timeout\",topic=\"{topic}\"}}"),
    )
    .unwrap_or(0.0);
    let dups = duplicates(&deliveries);
    eprintln!(
        "connection resets: {} resets over {} connections; {} records, {} requests, {dups} \
         duplicates; kws_delivery_retries_total {retries}, connection_error attempts \
         {connection_errors}, timeouts {timeouts}",
        proxy.resets(),
        proxy.connections(),
        produced.len(),
        endpoint.request_count()
    );
    assert!(
        proxy.resets() >= 10,
        "the proxy reset only {}",
        proxy.resets()
    );
    assert!(retries >= 1.0, "no retry counted; {text}");
    // A duplicate needs a retry: the endpoint answered, the reset ate the answer.
    assert!(
        dups as f64 <= retries,
        "{dups} duplicates but only {retries} retries"
    );
}

// ------------------------------------------------------------------------------------------
// 6: transactions (committed and aborted, interleaved) and compressed batches
// ------------------------------------------------------------------------------------------

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// One transaction of `records` (key, payload) pairs, committed or aborted.
async fn transaction(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, String)],
    commit: bool,
) {
    producer.begin_transaction().expect("begin transaction");
    let mut pending = Vec::new();
    for (key, payload) in records {
        let delivery = producer
            .send_result(FutureRecord::to(topic).key(key).payload(payload))
            .map_err(|(error, _)| error)
            .expect("enqueue");
        pending.push(delivery);
    }
    for delivery in pending {
        delivery
            .await
            .expect("delivery")
            .map_err(|(error, _)| error)
            .expect("produce in transaction");
    }
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || {
        if commit {
            producer.commit_transaction(Duration::from_secs(60))
        } else {
            producer.abort_transaction(Duration::from_secs(60))
        }
    })
    .await
    .expect("end transaction task")
    .expect("end transaction");
}

fn transactional_producer(kafka: &Kafka, id: &str) -> FutureProducer {
    let producer: FutureProducer = kafka
        .producer_config()
        .set("transactional.id", id)
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(60))
        .expect("init transactions");
    producer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aborted_transactions_never_reach_the_endpoint() {
    let _serial = serial().await;
    const PARTITIONS: i32 = 2;
    const KEYS: usize = 10;
    const ROUNDS: u64 = 12;
    let kafka = Kafka::shared();
    let topic = unique("fault-txn");
    let group = unique("fault-txn-group");
    kafka.create_topic(&topic, PARTITIONS, 1).await;
    let endpoint = Endpoint::start().await;
    let config = test_config(&group, &topic, &endpoint.url());
    let watcher = CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);
    let sidecar = Sidecar::start_ready(&config).await;

    // Producer a: committed rounds of keyed records, each followed by an aborted transaction;
    // producer b: only aborted transactions, at the same time, on the same partitions.
    let a = transactional_producer(&kafka, &unique("txn-a"));
    let b = transactional_producer(&kafka, &unique("txn-b"));
    let topic_a = topic.clone();
    let task_a = tokio::spawn(async move {
        let mut produced = Vec::new();
        for round in 0..ROUNDS {
            let records: Vec<(String, String)> = (0..KEYS)
                .map(|k| (format!("k{k}"), payload(&format!("k{k}"), round)))
                .collect();
            transaction(&a, &topic_a, &records, true).await;
            produced.extend((0..KEYS).map(|k| Keyed {
                key: format!("k{k}"),
                seq: round,
            }));
            let aborted: Vec<(String, String)> = (0..KEYS)
                .map(|k| (format!("k{k}"), format!("aborted-a-{round}-{k}")))
                .collect();
            transaction(&a, &topic_a, &aborted, false).await;
        }
        produced
    });
    let topic_b = topic.clone();
    let task_b = tokio::spawn(async move {
        for round in 0..ROUNDS {
            let aborted: Vec<(String, String)> = (0..KEYS)
                .map(|k| (format!("k{k}"), format!("aborted-b-{round}-{k}")))
                .collect();
            transaction(&b, &topic_b, &aborted, false).await;
        }
    });
    let produced = task_a.await.expect("producer a");
    task_b.await.expect("producer b");
    wait_all_delivered(&endpoint, &produced, LONG).await;
    // Let the sidecar see the trailing transaction markers, then check nothing else arrived.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let samples = watcher.finish();

    let aborted: Vec<String> = endpoint
        .requests()
        .iter()
        .map(|r| r.body_str())
        .filter(|body| body.starts_with("aborted"))
        .collect();
    assert!(
        aborted.is_empty(),
        "{} aborted records reached the endpoint, e.g. {:?}",
        aborted.len(),
        aborted.first()
    );
    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_eq!(duplicates(&deliveries), 0, "no crash, so no duplicate");
    assert_eq!(deliveries.len(), produced.len());
    assert_per_key_order(&endpoint.successful_requests());
    assert_commits_never_passed_unacknowledged(&samples, &deliveries);

    // The committed offset: past the last delivered record; ideally past the last
    // transaction marker too (the end), so that lag reaches 0.
    let end = kafka.end_offsets(&topic, PARTITIONS);
    let mut last_delivered = vec![-1i64; PARTITIONS as usize];
    for d in &deliveries {
        let slot = &mut last_delivered[d.partition as usize];
        *slot = (*slot).max(d.offset);
    }
    let committed = kafka
        .committed(&group, &topic, PARTITIONS)
        .expect("committed");
    let lag = metric_or_zero(
        &sidecar,
        &format!("kws_consumer_lag_records{{partition=\"0\",topic=\"{topic}\"}}"),
    );
    eprintln!(
        "transactions: end offsets {end:?}, last delivered {last_delivered:?}, committed \
         {committed:?}, kws_consumer_lag_records[0] {lag}"
    );
    for partition in 0..PARTITIONS as usize {
        assert!(committed[partition] > last_delivered[partition]);
    }
    assert_eq!(
        committed, end,
        "the committed offset stops before the trailing transaction marker: the group shows a \
         lag that never reaches 0"
    );
}

/// A value of `len` bytes, every byte value present, compressible (repeated runs) but not
/// trivially.
fn binary_value(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 7 + seed * 31) % 256) as u8 ^ ((i % 3) as u8))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compressed_batches_are_delivered_byte_for_byte() {
    let _serial = serial().await;
    let kafka = Kafka::shared();
    let features = kafka
        .client_config()
        .create_native_config()
        .expect("native config")
        .get("builtin.features")
        .expect("builtin.features");
    eprintln!("librdkafka builtin.features: {features}");
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        assert!(
            features.split(',').any(|f| f == codec),
            "the bundled librdkafka lacks {codec}: {features}"
        );
    }
    let topic = unique("fault-codec");
    let group = unique("fault-codec-group");
    kafka.create_topic(&topic, 1, 1).await;
    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for (c, codec) in codecs.iter().enumerate() {
        let producer: FutureProducer = kafka
            .producer_config()
            .set("compression.type", *codec)
            .set("linger.ms", "50")
            .set("batch.num.messages", "1000")
            .create()
            .unwrap_or_else(|error| panic!("producer with {codec}: {error}"));
        let mut pending = Vec::new();
        for i in 0..100 {
            // Sizes from empty to 256 KiB, several records per batch.
            let len = [0, 1, 100, 4096, 65_536, 262_144][i % 6];
            let value = binary_value(c * 1000 + i, len);
            let key = format!("{codec}-{i}");
            pending.push(
                producer
                    .send_result(FutureRecord::to(&topic).key(&key).payload(&value))
                    .map_err(|(error, _)| error)
                    .expect("enqueue"),
            );
            expected.push((key, value));
        }
        for delivery in pending {
            delivery
                .await
                .expect("delivery")
                .map_err(|(error, _)| error)
                .expect("produce");
        }
    }
    let endpoint = Endpoint::start().await;
    let config = test_config(&group, &topic, &endpoint.url());
    let _sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_distinct_ids(expected.len(), LONG).await;
    let requests = endpoint.successful_requests();
    assert_eq!(requests.len(), expected.len(), "no crash, so no duplicate");
    for (request, (key, value)) in requests.iter().zip(&expected) {
        assert_eq!(request.header("kafka-key"), Some(key.as_str()));
        assert!(
            request.body.as_ref() == value.as_slice(),
            "record {key}: {} bytes delivered, {} produced, or different bytes",
            request.body.len(),
            value.len()
        );
    }
    eprintln!(
        "compression: {} records in gzip, snappy, lz4 and zstd batches delivered byte for byte",
        expected.len()
    );
}

// ------------------------------------------------------------------------------------------
// 3: a member frozen (SIGSTOP) past the session timeout comes back as a zombie
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_member_resumed_after_takeover_delivers_nothing_new() {
    let _serial = serial().await;
    let kafka = Kafka::shared();
    let topic = unique("fault-zombie");
    let group = unique("fault-zombie-group");
    kafka.create_topic(&topic, 1, 1).await;
    let endpoint = Endpoint::start().await;
    // Slow answers: the frozen member always has a request in flight and records buffered.
    endpoint.set_handler(|_, _| Reply::ok().after(Duration::from_millis(100)));
    let config_for = |instance: &str| {
        let mut config = test_config(&group, &topic, &endpoint.url());
        config
            .delivery
            .headers
            .insert("x-instance".into(), instance.into());
        config
    };
    let instance = |request: &common::endpoint::RecordedRequest| {
        request.header("x-instance").unwrap_or("?").to_string()
    };
    let watcher = CommitWatcher::start(&kafka, &group, &topic, 1);
    let load = Load::start(&kafka, &topic, 10, 20);
    let a = Sidecar::start_ready(&config_for("a")).await;
    endpoint.wait_for_distinct_ids(20, LONG).await;
    let b = Sidecar::start_ready(&config_for("b")).await; // an idle standby
    let commits = metric_or_zero(&a, "kws_offset_commits_total{result=\"ok\"}");
    wait_until(LONG, "a commits in the steady state", || {
        metric_or_zero(&a, "kws_offset_commits_total{result=\"ok\"}") >= commits + 3.0
    })
    .await;

    a.signal("STOP");
    let frozen_at = Instant::now();
    wait_until(LONG, "b takes over", || {
        endpoint.requests().iter().any(|r| instance(r) == "b")
    })
    .await;
    let requests = endpoint.requests();
    let b_started = requests
        .iter()
        .find(|r| instance(r) == "b")
        .map(|r| r.at)
        .expect("b's first request");
    eprintln!(
        "zombie: b's first delivery {:?} after a froze (session timeout 6 s)",
        b_started - frozen_at
    );
    // Let b deliver for a while, then wake a up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The highest offset a sent before it resumed (a request written just before SIGSTOP
    // may arrive a little after it): the record a had in flight at the freeze. A retry of it
    // is allowed after b started; any higher offset is new work by a zombie.
    let requests_at_freeze = endpoint.requests();
    let offset_of = |r: &common::endpoint::RecordedRequest| -> i64 {
        r.header("kafka-offset")
            .and_then(|o| o.parse().ok())
            .expect("kafka-offset header")
    };
    let a_highest_before = requests_at_freeze
        .iter()
        .filter(|r| instance(r) == "a")
        .map(offset_of)
        .max()
        .expect("a sent requests");
    a.signal("CONT");
    let resumed_at = Instant::now();
    wait_until(LONG, "a learns it lost its partition", || {
        metric_or_zero(&a, "kws_rebalances_total{kind=\"lost\"}") >= 1.0
            || metric_or_zero(&a, "kws_rebalances_total{kind=\"revoke\"}") >= 1.0
    })
    .await;
    let learned = resumed_at.elapsed();
    load.wait_progress(40, LONG).await;
    let produced = load.finish().await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let end = kafka.end_offsets(&topic, 1);
    wait_committed(&kafka, &group, &topic, &end).await;
    let samples = watcher.finish();

    // After b started, a may only finish what it had in flight when it froze (same ids).
    let requests = endpoint.requests();
    let zombie: Vec<(String, Duration)> = requests
        .iter()
        .filter(|r| instance(r) == "a" && r.at >= b_started)
        .filter_map(|r| {
            r.idempotency_id()
                .map(|id| (id.to_string(), r.at.saturating_duration_since(resumed_at)))
        })
        .collect();
    let new_work: Vec<&(String, Duration)> = zombie
        .iter()
        .filter(|(id, _)| {
            let offset: i64 = id
                .rsplit('-')
                .next()
                .and_then(|o| o.parse().ok())
                .expect("id");
            offset > a_highest_before
        })
        .collect();
    let lost = metric_or_zero(&a, "kws_rebalances_total{kind=\"lost\"}");
    eprintln!(
        "zombie: a learned of the loss {learned:?} after SIGCONT (lost callbacks: {lost}); after \
         b started, a sent {} requests ({} for records after the one in flight at the freeze) \
         (id, time after SIGCONT): {zombie:?}",
        zombie.len(),
        new_work.len()
    );
    assert!(
        new_work.is_empty(),
        "the resumed zombie delivered records it had not started before it froze, while b owned \
         the partition: {new_work:?}; log of a:\n{}",
        a.logs()
    );
    // Bound of the in-flight work: one record per partition (partition mode).
    assert!(
        zombie
            .iter()
            .map(|(id, _)| id)
            .collect::<BTreeSet<_>>()
            .len()
            <= 1,
        "more than the in-flight record: {zombie:?}"
    );

    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_per_key_order(&endpoint.successful_requests());
    assert_partition_order(
        &deliveries
            .iter()
            .filter(|d| d.at < b_started)
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_commits_never_passed_unacknowledged(&samples, &deliveries);
    // Redeliveries: what a acknowledged since its last commit (200 ms interval; allow 1.2 s)
    // plus its in-flight record, plus what a finished after b started.
    let recent = requests_at_freeze
        .iter()
        .filter(|r| {
            instance(r) == "a"
                && r.is_success()
                && frozen_at.duration_since(r.at) <= Duration::from_millis(1200)
        })
        .count();
    let bound = recent + 1 + zombie.len();
    let dups = duplicates(&deliveries);
    eprintln!("zombie: {dups} duplicates (bound {bound})");
    assert!(dups <= bound, "{dups} duplicates exceed the bound {bound}");
    drop(b);
}

// ------------------------------------------------------------------------------------------
// 2: the only broker down for longer than the session timeout
// ------------------------------------------------------------------------------------------

/// Status codes of `/healthz` and `/readyz` (0: no answer).
fn probes(sidecar: &Sidecar) -> (u16, u16) {
    let status = |path| sidecar.admin_get(path).map_or(0, |(status, _)| status);
    (status("/healthz"), status("/readyz"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_broker_down_longer_than_the_session_timeout() {
    let _serial = serial().await;
    if skip_slow("only_broker_down_longer_than_the_session_timeout") {
        return;
    }
    const PARTITIONS: i32 = 3;
    const OUTAGE: Duration = Duration::from_secs(20);
    let cluster = tokio::task::block_in_place(|| Cluster::start(1, &[]));
    let kafka = cluster.kafka();
    let topic = unique("fault-outage");
    let group = unique("fault-outage-group");
    kafka.create_topic(&topic, PARTITIONS, 1).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.kafka.bootstrap_servers = kafka.bootstrap.clone();
    kafka_debug(&mut config);
    let watcher = CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);
    let load = Load::start(&kafka, &topic, 10, 100);
    let mut sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_distinct_ids(200, LONG).await;
    let commits = metric_or_zero(&sidecar, "kws_offset_commits_total{result=\"ok\"}");
    wait_until(LONG, "commits in the steady state", || {
        metric_or_zero(&sidecar, "kws_offset_commits_total{result=\"ok\"}") >= commits + 3.0
    })
    .await;

    // The producer stops before the outage and a new one starts after it: librdkafka 2.12
    // can lose every broker for good when the only broker shuts down (see the README's known
    // gaps), which would stall the test's own producer too.
    let mut produced = load.finish().await;
    let outage_started = Instant::now();
    tokio::task::block_in_place(|| cluster.stop_node(1));
    let stopped_at = Instant::now();
    eprintln!(
        "outage: broker stopped in {:?}",
        stopped_at - outage_started
    );
    let mut seen: BTreeMap<(u16, u16), usize> = BTreeMap::new();
    while stopped_at.elapsed() < OUTAGE {
        assert!(
            matches!(sidecar.child.try_wait(), Ok(None)),
            "the sidecar exited during the outage; log:\n{}",
            sidecar.logs()
        );
        *seen.entry(probes(&sidecar)).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let assigned_during = metric_or_zero(&sidecar, "kws_assigned_partitions");
    let lost_during = metric_or_zero(&sidecar, "kws_rebalances_total{kind=\"lost\"}");
    eprintln!(
        "outage: (healthz, readyz) samples during {OUTAGE:?}: {seen:?}; assigned partitions \
         {assigned_during}, lost callbacks {lost_during}"
    );
    let restart_begun = Instant::now();
    tokio::task::block_in_place(|| cluster.start_node(1));
    let restarted_at = Instant::now();
    let delivered_before = endpoint.distinct_successful_ids().len();
    let rounds = produced.iter().map(|k| k.seq + 1).max().unwrap_or(0);
    let load = Load::start_from(&kafka, &topic, 10, 100, rounds);
    load.wait_progress(100, LONG).await;
    produced.extend(load.finish().await);
    // Act as the kubelet: a member stuck outside the group (librdkafka 2.12 can drop every
    // broker and never reconnect, confluentinc/librdkafka#5301) fails /healthz after
    // max(2 × session timeout, 60 s); the kubelet then restarts it, and so does this test.
    let mut liveness_restarts = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while endpoint.distinct_successful_ids().len() < produced.len() && Instant::now() < deadline {
        if probes(&sidecar).0 == 503 {
            liveness_restarts += 1;
            eprintln!(
                "outage: /healthz failed ({:?} after the broker came back): restarting the \
                 sidecar as the kubelet would; its log:\n{}",
                restarted_at.elapsed(),
                sidecar.logs()
            );
            sidecar.kill9();
            sidecar = Sidecar::start_ready(&config).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_all_delivered(&endpoint, &produced, LONG).await;
    eprintln!("outage: liveness restarts {liveness_restarts}");
    let first_after = endpoint
        .successful_requests()
        .iter()
        .skip(delivered_before)
        .find(|r| r.at >= restarted_at)
        .map(|r| r.at - restarted_at);
    let end = kafka.end_offsets(&topic, PARTITIONS);
    wait_committed(&kafka, &group, &topic, &end).await;
    let samples = watcher.finish();
    let (healthz, readyz) = probes(&sidecar);
    let log = sidecar.logs();
    let log_lines = |needle: &str| log.lines().filter(|line| line.contains(needle)).count();
    eprintln!(
        "outage: broker back after {:?} (restart took {:?}); first delivery {:?} after; probes \
         now ({healthz}, {readyz}); lost callbacks {}, assign callbacks {}; log lines: {} \
         'Kafka client error', {} WARN, {} ERROR",
        restarted_at - stopped_at,
        restarted_at - restart_begun,
        first_after,
        metric_or_zero(&sidecar, "kws_rebalances_total{kind=\"lost\"}"),
        metric_or_zero(&sidecar, "kws_rebalances_total{kind=\"assign\"}"),
        log_lines("Kafka client error"),
        log_lines(" WARN "),
        log_lines(" ERROR "),
    );
    // Alive and ready throughout: the pump keeps polling, and a broker outage must not take the
    // application out of its Service (native-sidecar form).
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        vec![(200, 200)],
        "probes during the outage"
    );
    assert_eq!((healthz, readyz), (200, 200));
    assert!(matches!(sidecar.child.try_wait(), Ok(None)));

    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_per_key_order(&endpoint.successful_requests());
    assert_commits_never_passed_unacknowledged(&samples, &deliveries);
    // Redeliveries: at most what was acknowledged from one commit interval before the outage
    // until the broker came back (those commits could not reach the broker).
    let bound = deliveries
        .iter()
        .filter(|d| d.at + Duration::from_millis(1200) >= outage_started && d.at <= restarted_at)
        .count();
    let dups = duplicates(&deliveries);
    eprintln!("outage: {dups} duplicates (bound {bound})");
    assert!(dups <= bound, "{dups} duplicates exceed the bound {bound}");
}

// ------------------------------------------------------------------------------------------
// 1: three brokers, rolling restarts, then one SIGKILLed
// ------------------------------------------------------------------------------------------

/// Waits until every partition of every topic has all its replicas in sync.
async fn wait_fully_replicated(kafka: &Kafka) {
    let client: rdkafka::consumer::BaseConsumer =
        kafka.client_config().create().expect("metadata client");
    let started = Instant::now();
    wait_until(LONG, "every partition has its full ISR", || {
        client
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|metadata| {
                metadata.topics().iter().all(|topic| {
                    topic.partitions().iter().all(|p| {
                        p.leader() >= 0
                            && p.error().is_none()
                            && p.isr().len() == p.replicas().len()
                    })
                })
            })
            .unwrap_or(false)
    })
    .await;
    eprintln!(
        "three brokers: fully replicated after {:?}",
        started.elapsed()
    );
}

/// Waits until the endpoint saw `more` new distinct records; returns how long it took.
async fn wait_delivering(endpoint: &Endpoint, more: usize, what: &str) -> Duration {
    let started = Instant::now();
    let from = endpoint.distinct_successful_ids().len();
    wait_until(
        LONG,
        lazy(|| format!("delivering {what}: {}", endpoint.summary())),
        || endpoint.distinct_successful_ids().len() >= from + more,
    )
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_brokers_rolling_restarts_and_a_sigkill() {
    let _serial = serial().await;
    if skip_slow("three_brokers_rolling_restarts_and_a_sigkill") {
        return;
    }
    const PARTITIONS: i32 = 3;
    let cluster = tokio::task::block_in_place(|| Cluster::start(3, &[]));
    let kafka = cluster.kafka();
    let topic = unique("fault-rolling");
    let group = unique("fault-rolling-group");
    kafka.create_topic(&topic, PARTITIONS, 3).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.kafka.bootstrap_servers = kafka.bootstrap.clone();
    kafka_debug(&mut config);
    let watcher = CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);
    let load = Load::start(&kafka, &topic, 10, 100);
    let sidecar = Sidecar::start_ready(&config).await;
    wait_delivering(&endpoint, 200, "at the start").await;
    wait_fully_replicated(&kafka).await;

    let started = Instant::now();
    let mut windows = Vec::new();
    for node in 1..=3 {
        let down_at = Instant::now();
        tokio::task::block_in_place(|| cluster.stop_node(node));
        let took = wait_delivering(&endpoint, 100, &format!("while node {node} is down")).await;
        eprintln!("three brokers: node {node} stopped; 100 more records delivered in {took:?}");
        tokio::task::block_in_place(|| cluster.start_node(node));
        windows.push((down_at, Instant::now()));
        wait_delivering(&endpoint, 100, &format!("after node {node} restarted")).await;
        wait_fully_replicated(&kafka).await;
    }
    let killed_at = Instant::now();
    cluster.kill_node(2).await;
    let took = wait_delivering(&endpoint, 100, "while node 2 is killed").await;
    eprintln!("three brokers: node 2 SIGKILLed; 100 more records delivered in {took:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| cluster.start_node(2));
    windows.push((killed_at, Instant::now()));
    wait_delivering(&endpoint, 100, "after node 2 restarted").await;
    let faults_took = started.elapsed();

    let produced = load.finish().await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let end = kafka.end_offsets(&topic, PARTITIONS);
    wait_committed(&kafka, &group, &topic, &end).await;
    let samples = watcher.finish();

    let deliveries = delivered(&endpoint);
    // The longest pause between two deliveries while the faults happened.
    let mut gap = Duration::ZERO;
    for pair in deliveries.windows(2) {
        if pair[0].at >= started {
            gap = gap.max(pair[1].at - pair[0].at);
        }
    }
    let dups = duplicates(&deliveries);
    let text = sidecar.metrics();
    let value = |name: &str| series(&text, name).unwrap_or(0.0);
    eprintln!(
        "three brokers: {} records over {faults_took:?} of restarts; longest delivery pause \
         {gap:?}; {dups} duplicates; rebalances assign {} revoke {} lost {}; commits ok {} \
         error {}",
        produced.len(),
        value("kws_rebalances_total{kind=\"assign\"}"),
        value("kws_rebalances_total{kind=\"revoke\"}"),
        value("kws_rebalances_total{kind=\"lost\"}"),
        value("kws_offset_commits_total{result=\"ok\"}"),
        value("kws_offset_commits_total{result=\"error\"}"),
    );
    assert!(matches!(probes(&sidecar), (200, 200)));
    assert_nothing_lost(&deliveries, &produced);
    assert_partition_order(&deliveries);
    assert_per_key_order(&endpoint.successful_requests());
    assert_commits_never_passed_unacknowledged(&samples, &deliveries);
    // The sidecar never crashed: a redelivery needs a lost assignment (whose uncommitted
    // acknowledgements the next assignment repeats); without one, nothing is delivered twice.
    if value("kws_rebalances_total{kind=\"lost\"}") == 0.0 {
        assert_eq!(dups, 0, "duplicates without a lost assignment");
    } else {
        let bound = deliveries
            .iter()
            .filter(|d| {
                windows
                    .iter()
                    .any(|(from, to)| d.at + Duration::from_millis(1200) >= *from && d.at <= *to)
            })
            .count();
        assert!(dups <= bound, "{dups} duplicates exceed the bound {bound}");
    }
}

// ------------------------------------------------------------------------------------------
// 9: SASL/SCRAM-SHA-512 over TLS; a wrong password
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sasl_scram_over_tls_delivers_and_a_wrong_password_is_a_clear_error() {
    let _serial = serial().await;
    const PARTITIONS: i32 = 2;
    let cluster = tokio::task::block_in_place(|| Cluster::start(1, &["--sasl-ssl"]));
    let read = |name: &str| {
        std::fs::read_to_string(cluster.dir.join(name))
            .unwrap_or_else(|error| panic!("{name}: {error}"))
            .trim()
            .to_string()
    };
    let password = read("sasl-password");
    let security = |password: &str| {
        vec![
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ("sasl.mechanism".to_string(), "SCRAM-SHA-512".to_string()),
            ("sasl.username".to_string(), read("sasl-username")),
            ("sasl.password".to_string(), password.to_string()),
            (
                "ssl.ca.location".to_string(),
                cluster.dir.join("tls/ca.pem").display().to_string(),
            ),
        ]
    };
    let kafka = Kafka {
        bootstrap: read("sasl-bootstrap"),
        properties: security(&password),
    };
    let topic = unique("fault-sasl");
    let group = unique("fault-sasl-group");
    kafka.create_topic(&topic, PARTITIONS, 1).await;
    let produced = produce_keyed_from(&kafka.producer(), &topic, 10, 500, 0).await;

    let endpoint = Endpoint::start().await;
    let config_with = |group: &str, password: &str| {
        let mut config = test_config(group, &topic, &endpoint.url());
        config.kafka.bootstrap_servers = kafka.bootstrap.clone();
        for (key, value) in security(password) {
            config.kafka.properties.insert(key, value);
        }
        config
    };
    let good = Sidecar::start_ready(&config_with(&group, &password)).await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let end = kafka.end_offsets(&topic, PARTITIONS);
    wait_committed(&kafka, &group, &topic, &end).await;
    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_eq!(duplicates(&deliveries), 0);
    assert_per_key_order(&endpoint.successful_requests());
    let good_log = good.logs();
    assert!(
        !good_log.contains(&password) && !good.metrics().contains(&password),
        "the SASL password appears in the log or metrics"
    );
    drop(good);

    // A wrong password: the member never joins. It must say why, stay unready without
    // exiting or failing liveness (no crash loop), and never print the password.
    let wrong = format!("wrong-{}", unique("pw"));
    let bad = Sidecar::start(&config_with(&unique("fault-sasl-bad"), &wrong));
    let started = Instant::now();
    let mut seen: BTreeMap<(u16, u16), usize> = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(20) {
        *seen.entry(probes(&bad)).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut bad = bad;
    let still_running = matches!(bad.child.try_wait(), Ok(None));
    let log = bad.logs();
    let auth_lines: Vec<&str> = log
        .lines()
        .filter(|line| {
            line.contains("Authentication failed") || line.contains("invalid credentials")
        })
        .collect();
    eprintln!(
        "wrong password: (healthz, readyz) samples over 20 s {seen:?}; still running \
         {still_running}; {} log lines in 20 s, {} about the authentication failure, e.g. {:?}",
        log.lines().count(),
        auth_lines.len(),
        auth_lines.first()
    );
    eprintln!("wrong password: the sidecar's log:\n{log}");
    assert!(still_running, "the sidecar exited; log:\n{log}");
    // (0, 0): the admin server is not listening yet, right after the start.
    assert!(
        seen.keys()
            .all(|probe| matches!(probe, (200, 503) | (0, 0))),
        "ready, or not alive, with a wrong password (a restart cannot fix a password): {seen:?}"
    );
    assert!(seen.get(&(200, 503)).is_some_and(|n| *n >= 20), "{seen:?}");
    assert!(
        !auth_lines.is_empty(),
        "no log line says the authentication failed; log:\n{log}"
    );
    assert!(
        !log.contains(&wrong) && !log.contains(&password),
        "a SASL password appears in the log"
    );
    assert!(!bad.metrics().contains(&wrong));
    bad.sigterm();
    let status = bad.wait_exit(Duration::from_secs(30)).await;
    eprintln!("wrong password: SIGTERM exit {status}");
}

// ------------------------------------------------------------------------------------------
// 7: partitions added while running
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_added_while_running_are_delivered() {
    let _serial = serial().await;
    let kafka = Kafka::shared();
    let topic = unique("fault-grow");
    let group = unique("fault-grow-group");
    kafka.create_topic(&topic, 2, 1).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    // Set explicitly here; the product's default for a sidecar is documented in the README.
    config
        .kafka
        .properties
        .insert("topic.metadata.refresh.interval.ms".into(), "5000".into());
    let sidecar = Sidecar::start_ready(&config).await;
    let mut produced = produce_keyed(&topic, 10, 100).await;
    wait_all_delivered(&endpoint, &produced, LONG).await;

    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        kafka.client_config().create().expect("admin client");
    admin
        .create_partitions(
            &[rdkafka::admin::NewPartitions::new(&topic, 4)],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .expect("create partitions")
        .into_iter()
        .for_each(|result| {
            if let Err((topic, error)) = result {
                panic!("create partitions {topic}: {error}");
            }
        });
    let added_at = Instant::now();
    let producer = kafka.producer();
    let mut pending = Vec::new();
    for seq in 0..10u64 {
        for partition in [2, 3] {
            let key = format!("n{partition}");
            let body = payload(&key, seq);
            let delivery = loop {
                let record = FutureRecord::to(&topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&body);
                match producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    // The producer may not know the new partitions yet.
                    Err((_, _)) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            pending.push(delivery);
            produced.push(Keyed { key, seq });
        }
    }
    for delivery in pending {
        delivery
            .await
            .expect("delivery")
            .map_err(|(error, _)| error)
            .expect("produce to a new partition");
    }
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let took = added_at.elapsed();
    let assigned = metric_or_zero(&sidecar, "kws_assigned_partitions");
    eprintln!(
        "new partitions: records on them delivered {took:?} after they were added \
         (topic.metadata.refresh.interval.ms 5000); assigned partitions now {assigned}"
    );
    assert!(
        took <= Duration::from_secs(30),
        "new partitions delivered after {took:?}"
    );
    assert_eq!(assigned, 4.0);
    let deliveries = delivered(&endpoint);
    assert_nothing_lost(&deliveries, &produced);
    assert_eq!(duplicates(&deliveries), 0);
    assert_per_key_order(&endpoint.successful_requests());
}

// ------------------------------------------------------------------------------------------
// 8: records deleted (retention, DeleteRecords) before the group consumed them
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_deleted_before_consumption_are_counted_and_logged() {
    let _serial = serial().await;
    let kafka = Kafka::shared();
    let topic = unique("fault-deleted");
    let group = unique("fault-deleted-group");
    kafka.create_topic(&topic, 1, 1).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.kafka.auto_offset_reset = kafka_webhook_sidecar::config::OffsetReset::Earliest;
    let mut produced = produce_keyed(&topic, 5, 100).await;
    let mut first = Sidecar::start_ready(&config).await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_committed(&kafka, &group, &topic, &[100]).await;
    first.sigterm();
    assert!(first.wait_exit(Duration::from_secs(30)).await.success());

    // 100 more (offsets 100..200); the first 50 of them are deleted before anyone reads them.
    produced.extend(produce_keyed_from(&kafka.producer(), &topic, 5, 100, 20).await);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        kafka.client_config().create().expect("admin client");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(150))
        .expect("offset list");
    admin
        .delete_records(&list, &rdkafka::admin::AdminOptions::new())
        .await
        .expect("delete records");

    let second = Sidecar::start_ready(&config).await;
    endpoint.wait_for_distinct_ids(150, LONG).await;
    wait_committed(&kafka, &group, &topic, &[200]).await;
    let deliveries = delivered(&endpoint);
    let offsets: BTreeSet<i64> = deliveries.iter().map(|d| d.offset).collect();
    assert_eq!(
        offsets,
        (0..100).chain(150..200).collect::<BTreeSet<i64>>(),
        "delivered: everything but the deleted offsets 100..150"
    );
    assert_eq!(duplicates(&deliveries), 0);
    assert_partition_order(&deliveries);
    let skipped = second.metric(&format!("kws_offsets_skipped_total{{topic=\"{topic}\"}}"));
    let log = second.logs();
    let line = log
        .lines()
        .find(|line| line.contains("Records skipped: offset out of range"));
    eprintln!("retention gap: kws_offsets_skipped_total {skipped:?}; log line {line:?}");
    assert_eq!(skipped, Some(50.0), "the skipped offsets are counted");
    let line = line.expect("a warning names the skipped range");
    for field in [
        format!("topic={topic}"),
        "partition=0".to_string(),
        "from_offset=100".to_string(),
        "to_offset=150".to_string(),
    ] {
        assert!(line.contains(&field), "{field} missing from: {line}");
    }
    assert!(line.contains("WARN"), "not a warning: {line}");
}
