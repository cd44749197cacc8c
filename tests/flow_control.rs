//! Flow control end to end against a real broker and a real HTTP listener: the adaptive
//! concurrency limit against an endpoint that rejects excess concurrency (compared with a
//! fixed cap), the rate limit's measured rate, and a partition whose endpoint is down being
//! paused while the others keep flowing, then delivered in order and committed.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::checks::{
    assert_commits_never_passed_unacknowledged, assert_key_order, assert_partition_order,
    delivered, wait_all_delivered, wait_committed, CommitWatcher,
};
use common::cluster::Kafka;
use common::endpoint::{Endpoint, Reply};
use common::*;
use kafka_webhook_sidecar::config::{
    ConcurrencyConfig, ConcurrencyMode, Config, Ordering as DeliveryOrdering, RateLimitConfig,
};

const LONG: Duration = Duration::from_secs(180);

/// One run against an endpoint that answers 503 to requests beyond `limit` in flight (each
/// answered after 20 ms): returns how many 503s it gave until everything was delivered.
async fn overload_run(limit: usize, concurrency: ConcurrencyConfig) -> usize {
    const PARTITIONS: i32 = 8;
    const RECORDS: usize = 2_000;
    let topic = unique("flow-overload");
    let group = unique("flow-overload-group");
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 64, RECORDS).await;
    let endpoint = Endpoint::start().await;
    endpoint.set_handler(move |_, attempt| {
        if attempt.in_flight > limit {
            Reply::status(503)
        } else {
            Reply::ok().after(Duration::from_millis(20))
        }
    });
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = DeliveryOrdering::Key;
    config.delivery.max_in_flight = 16;
    config.delivery.concurrency = Some(concurrency);
    let sidecar = Sidecar::start_ready(&config).await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    let deliveries = delivered(&endpoint);
    assert_key_order(&deliveries);
    let rejected = endpoint
        .requests()
        .iter()
        .filter(|request| request.answered_status == Some(503))
        .count();
    let kafka = Kafka::shared();
    wait_committed(&kafka, &group, &topic, &end_offsets(&topic, PARTITIONS)).await;
    eprintln!(
        "overload run ({:?}, max {}): {rejected} answers 503 for {RECORDS} records; limit metric {:?}",
        config.delivery.concurrency.as_ref().map(|c| c.mode),
        config.delivery.concurrency.as_ref().map_or(0, |c| c.max),
        sidecar.metric("kws_concurrency_limit"),
    );
    rejected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_concurrency_gets_far_fewer_503s_than_a_fixed_cap() {
    const N: usize = 4;
    let fixed = overload_run(
        N,
        ConcurrencyConfig {
            mode: ConcurrencyMode::Fixed,
            max: 4 * N,
            min: 1,
            latency_tolerance: 1.25,
        },
    )
    .await;
    let adaptive = overload_run(
        N,
        ConcurrencyConfig {
            mode: ConcurrencyMode::Adaptive,
            max: 4 * N,
            min: 1,
            latency_tolerance: 1.25,
        },
    )
    .await;
    eprintln!(
        "503 answers: fixed cap {} = {fixed}, adaptive = {adaptive}",
        4 * N
    );
    assert!(fixed > 0, "a fixed cap of 4N must overload the endpoint");
    assert!(
        adaptive * 4 < fixed,
        "adaptive got {adaptive} 503s, fixed {fixed}: not far fewer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_over_ten_seconds() {
    const PARTITIONS: i32 = 4;
    const RATE: f64 = 200.0;
    const RECORDS: usize = 3_000;
    let topic = unique("flow-rate");
    let group = unique("flow-rate-group");
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 40, RECORDS).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = DeliveryOrdering::None;
    config.delivery.max_in_flight = 16;
    config.delivery.rate_limit = Some(RateLimitConfig {
        records_per_second: RATE,
        burst: None,
    });
    let sidecar = Sidecar::start_ready(&config).await;
    wait_all_delivered(&endpoint, &produced, LONG).await;
    // The steady window: from the 200th success (past start-up and the initial burst), 10 s.
    let arrivals: Vec<Instant> = endpoint
        .successful_requests()
        .iter()
        .map(|request| request.at)
        .collect();
    let from = arrivals[200];
    let to = from + Duration::from_secs(10);
    let in_window = arrivals
        .iter()
        .filter(|at| **at >= from && **at < to)
        .count();
    let measured = in_window as f64 / 10.0;
    eprintln!("rate limit {RATE}/s: measured {measured:.1}/s over 10 s");
    assert!(
        (RATE * 0.9..=RATE * 1.1).contains(&measured),
        "measured {measured}/s, configured {RATE}/s"
    );
    assert!(
        sidecar
            .metric("kws_rate_limited_requests_total")
            .unwrap_or(0.0)
            > 0.0
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_endpoint_is_down_is_paused_while_others_flow() {
    const PARTITIONS: i32 = 3;
    let topic = unique("flow-pause");
    let group = unique("flow-pause-group");
    create_topic(&topic, PARTITIONS).await;
    let producer = producer();
    let mut produced = produce_keyed_from(&producer, &topic, 30, 1_500, 0).await;
    let endpoint = Endpoint::start().await;
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    endpoint.set_handler(move |request, _| {
        if flag.load(Ordering::SeqCst) && request.header("kafka-partition") == Some("0") {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let kafka = Kafka::shared();
    let watcher = CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);
    let mut config: Config = test_config(&group, &topic, &endpoint.url());
    config.delivery.pause_fetch_after = Some(Duration::from_secs(2));
    config.kafka.properties.insert(
        "queued.max.messages.kbytes".into(),
        "1024".into(), // a small prefetch, as in production
    );
    let sidecar = Sidecar::start_ready(&config).await;
    let outage = Instant::now();
    let paused_series = format!(r#"kws_partition_paused{{partition="0",topic="{topic}"}}"#);
    let healthy_series = format!(r#"kws_partition_paused{{partition="1",topic="{topic}"}}"#);
    wait_until(LONG, "partition 0 is paused", || {
        sidecar.metric(&paused_series) == Some(1.0)
    })
    .await;
    assert_eq!(
        sidecar.metric(r#"kws_paused_partitions{reason="head_of_line"}"#),
        Some(1.0)
    );
    assert_eq!(sidecar.metric(&healthy_series), Some(0.0));
    let rss_paused = rss_kib(sidecar.child.id());

    // The first record of partition 0 is the one failing: nothing of partition 0 got through.
    let failing = endpoint
        .requests()
        .iter()
        .filter(|request| request.header("kafka-partition") == Some("0"))
        .filter_map(|request| request.header("kafka-offset")?.parse::<i64>().ok())
        .min()
        .expect("partition 0 was attempted");

    // The others keep flowing: records produced during the outage reach them.
    let more = produce_keyed_from(&producer, &topic, 30, 1_500, 50).await;
    produced.extend(more.iter().cloned());
    let healthy_ends = end_offsets(&topic, PARTITIONS);
    wait_until(
        LONG,
        "partitions 1 and 2 are delivered to their end",
        || {
            let deliveries = delivered(&endpoint);
            (1..PARTITIONS).all(|partition| {
                let end = healthy_ends[partition as usize];
                deliveries
                    .iter()
                    .filter(|d| d.partition == partition)
                    .map(|d| d.offset)
                    .collect::<BTreeSet<_>>()
                    .len() as i64
                    == end
            })
        },
    )
    .await;
    assert!(
        delivered(&endpoint).iter().all(|d| d.partition != 0),
        "partition 0 delivered while its endpoint is down"
    );

    // Hold the outage 20 s; the partition stays paused, memory flat, the commit behind.
    wait_until(LONG, "20 s of outage passed", || {
        outage.elapsed() >= Duration::from_secs(20)
    })
    .await;
    assert_eq!(sidecar.metric(&paused_series), Some(1.0));
    let rss_late = rss_kib(sidecar.child.id());
    eprintln!("RSS while paused: {rss_paused} KiB, 20 s into the outage: {rss_late} KiB");
    assert!(
        rss_late <= rss_paused + rss_paused / 4 + 8 * 1024,
        "RSS grew from {rss_paused} to {rss_late} KiB"
    );
    let committed = committed_offsets(&group, &topic, PARTITIONS);
    assert!(
        committed[0] <= failing,
        "committed {} past the failing record {failing}",
        committed[0]
    );
    assert!(sidecar.is_ready(), "the member stays in the group");

    // Recovery: everything arrives, in order, and is committed to the end.
    down.store(false, Ordering::SeqCst);
    wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_until(LONG, "partition 0 resumed", || {
        sidecar.metric(&paused_series) == Some(0.0)
    })
    .await;
    wait_committed(&kafka, &group, &topic, &end_offsets(&topic, PARTITIONS)).await;
    let samples = watcher.finish();
    let deliveries = delivered(&endpoint);
    assert_partition_order(&deliveries);
    let checked = assert_commits_never_passed_unacknowledged(&samples, &deliveries);
    assert!(checked > 0, "the watcher saw commits");
    assert!(sidecar.logs().contains("Paused fetching"));
    assert!(sidecar.logs().contains("Resumed fetching"));
}
