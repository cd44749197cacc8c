//! The whole program in-process, through `app::run` with an injected shutdown future: joins
//! the group, delivers every record once in order, reports ready on its admin port, and on
//! shutdown drains, commits everything acknowledged and returns `Exit::Clean` within the
//! grace period. Runs with `kafka.fetch_linger` set.

mod common;

use std::time::{Duration, Instant};

use common::endpoint::Endpoint;
use common::*;
use kafka_webhook_sidecar::app;
use kafka_webhook_sidecar::config::Ordering;
use kafka_webhook_sidecar::lifecycle::Exit;

const LONG: Duration = Duration::from_secs(120);

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

    let admin = app::bind_admin(&settings).await.expect("admin port");
    let admin_addr = admin.local_addr().expect("admin address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app::run(settings, admin, async {
        let _ = stopped.await;
    }));

    wait_until(LONG, "the member is ready", || {
        matches!(admin_get(admin_addr.port(), "/readyz"), Some((200, _)))
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
    let (_, metrics) = admin_get(admin_addr.port(), "/metrics").expect("metrics");
    assert_eq!(
        series(
            &metrics,
            &format!(r#"kws_deliveries_total{{outcome="success",topic="{topic}"}}"#)
        ),
        Some(produced.len() as f64)
    );

    let started = Instant::now();
    stop.send(()).expect("run is waiting for the signal");
    let exit = tokio::time::timeout(Duration::from_secs(8), run)
        .await
        .expect("app::run returns within the grace period")
        .expect("app::run task")
        .expect("app::run result");
    assert_eq!(exit, Exit::Clean);
    eprintln!("shut down in {:?}", started.elapsed());
    assert_eq!(
        committed_offsets(&group, &topic, 3),
        end_offsets(&topic, 3),
        "the shutdown commit covers every acknowledged record"
    );
    assert!(
        admin_get(admin_addr.port(), "/readyz").is_none(),
        "the admin server stopped with the run"
    );
}
