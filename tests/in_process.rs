//! The whole program in-process, through `app::run` with an injected shutdown future: joins
//! the group, delivers every record once in order, reports ready on its admin port, and on
//! shutdown drains, commits everything acknowledged and returns `Exit::Clean` within the
//! grace period. Runs with `kafka.fetch_linger` set.

mod common;

use std::time::{Duration, Instant};

use common::checks::{assert_partition_order, delivered, wait_committed};
use common::cluster::Kafka;
use common::endpoint::Endpoint;
use common::*;
use kafka_webhook_sidecar::app;
use kafka_webhook_sidecar::config::Ordering;
use kafka_webhook_sidecar::lifecycle::Exit;

const LONG: Duration = Duration::from_secs(120);

/// `app::run` on its own task, with the injected shutdown signal.
struct Running {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<Exit, app::Error>>,
}

impl Running {
    async fn start(settings: kafka_webhook_sidecar::config::Settings) -> Running {
        let admin = app::bind_admin(&settings).await.expect("admin port");
        let port = admin.local_addr().expect("admin address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(app::run(settings, admin, async {
            let _ = stopped.await;
        }));
        Running { port, stop, run }
    }

    /// Sends the signal; the run must return `Exit::Clean` within the grace period (8 s).
    async fn stop_cleanly(self) {
        self.stop.send(()).expect("run is waiting for the signal");
        let exit = tokio::time::timeout(Duration::from_secs(8), self.run)
            .await
            .expect("app::run returns within the grace period")
            .expect("app::run task")
            .expect("app::run result");
        assert_eq!(exit, Exit::Clean);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_run_delivers_then_shuts_down_cleanly_on_the_injected_signal() {
    let topic = unique("in-process");
    let group = unique("in-process-group");
    create_topic(&topic, 3).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = Ordering::Key;
    config.delivery.max_in_flight = 4;
    // With fetch coalescing on: librdkafka accepts the derived fetch properties and records
    // still flow (and commit) as without.
    config.kafka.fetch_linger = Duration::from_millis(5);
    config.shutdown.drain_timeout = Duration::from_secs(3);
    config.shutdown.termination_grace_period = Duration::from_secs(8);
    let settings = config.settings().expect("valid test config");

    let running = Running::start(settings).await;
    let port = running.port;

    wait_until(LONG, "the member is ready", || {
        matches!(admin_get(port, "/readyz"), Some((200, _)))
    })
    .await;
    let produced = produce_keyed(&topic, 10, 600).await;
    wait_until(LONG, "every record is delivered", || {
        endpoint.distinct_successful_ids().len() >= produced.len()
    })
    .await;
    let requests = endpoint.successful_requests();
    assert_eq!(
        requests.len(),
        produced.len(),
        "a record was delivered twice"
    );
    assert_per_key_order(&requests);
    let (_, metrics) = admin_get(port, "/metrics").expect("metrics");
    assert_eq!(
        series(
            &metrics,
            &format!(r#"kws_deliveries_total{{outcome="success",topic="{topic}"}}"#)
        ),
        Some(produced.len() as f64)
    );

    let started = Instant::now();
    running.stop_cleanly().await;
    eprintln!("shut down in {:?}", started.elapsed());
    assert_eq!(
        committed_offsets(&group, &topic, 3),
        end_offsets(&topic, 3),
        "the shutdown commit covers every acknowledged record"
    );
    assert!(
        admin_get(port, "/readyz").is_none(),
        "the admin server stopped with the run"
    );
}

/// Issue 24: a small `kafka.memory_budget` over many partitions gives each partition a share
/// smaller than one record (the prefetch share is 8 MiB ÷ (4 × 48) ≈ 43 KiB and the buffer
/// share 4 MiB ÷ 48 ≈ 85 KiB, the records are 128 KiB): every record still arrives once,
/// byte for byte and in partition order, and the commit reaches the end. With
/// `admin.partition_metrics: false` the per-partition gauges are one series per topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_larger_than_a_partitions_share_of_a_small_budget_all_arrive() {
    const PARTITIONS: i32 = 48;
    const RECORDS: usize = 144;
    const SIZE: usize = 128 << 10;
    let topic = unique("budget");
    let group = unique("budget-group");
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.kafka.memory_budget = bytesize::ByteSize::mib(8);
    config.admin.partition_metrics = false;
    config.shutdown.drain_timeout = Duration::from_secs(3);
    config.shutdown.termination_grace_period = Duration::from_secs(8);
    let settings = config.settings().expect("valid test config");
    let value = |seq: usize| -> Vec<u8> {
        let mut value = format!("{seq:08}").into_bytes();
        value.extend((0..SIZE - 8).map(|i| (i * 7 + seq) as u8));
        value
    };
    let started = Instant::now();
    for seq in 0..RECORDS {
        produce_raw(
            &topic,
            Some(format!("k{seq}").as_bytes()),
            Some(&value(seq)),
            &[],
        )
        .await;
    }
    eprintln!("produced in {:?}", started.elapsed());

    let running = Running::start(settings).await;
    let port = running.port;
    wait_until(LONG, "every record is delivered", || {
        endpoint.successful_requests().len() >= RECORDS
    })
    .await;
    eprintln!("delivered after {:?}", started.elapsed());
    let requests = endpoint.successful_requests();
    assert_eq!(requests.len(), RECORDS, "a record was delivered twice");
    let mut seen: Vec<usize> = requests
        .iter()
        .map(|request| {
            let seq: usize = std::str::from_utf8(&request.body[..8])
                .expect("sequence digits")
                .parse()
                .expect("sequence number");
            assert_eq!(request.body.as_ref(), value(seq).as_slice(), "record {seq}");
            seq
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..RECORDS).collect::<Vec<_>>());
    assert_partition_order(&delivered(&endpoint));
    wait_committed(
        &Kafka::shared(),
        &group,
        &topic,
        &end_offsets(&topic, PARTITIONS),
    )
    .await;
    eprintln!("committed after {:?}", started.elapsed());

    let (_, metrics) = admin_get(port, "/metrics").expect("metrics");
    for name in [
        "kws_oldest_unacked_record_age_seconds",
        "kws_partition_paused",
    ] {
        assert_eq!(
            series(
                &metrics,
                &format!(r#"{name}{{partition="all",topic="{topic}"}}"#)
            ),
            Some(0.0),
            "{name} per topic:\n{metrics}"
        );
        assert!(
            !metrics.contains(&format!(r#"{name}{{partition="0""#)),
            "{name} has no per-partition series"
        );
    }
    running.stop_cleanly().await;
}
