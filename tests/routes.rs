//! Routes end to end, on the real broker with sidecar processes: CloudEvents routed by type to
//! three paths and a default, test traffic filtered out (acknowledged, committed past and
//! counted); a record two routes want, one of them down for 10 s (the other keeps
//! delivering, the commit waits for both); and a graceful rebalance and SIGTERM with routes,
//! which deliver nothing twice; a route with a consumer group of its own, which commits
//! independently of the others.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::checks::{self, Delivered};
use common::cluster::Kafka;
use common::endpoint::Endpoint;
use common::*;
use kafka_webhook_sidecar::config::{Config, RouteConfig};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

const LONG: Duration = Duration::from_secs(120);

/// `routes:` written as YAML.
fn routes(yaml: &str) -> Vec<RouteConfig> {
    serde_yaml::from_str(yaml).expect("routes YAML")
}

/// The CloudEvents types of the first test, in produce order; every tenth record is test
/// traffic (`env: test`).
const TYPES: [&str; 4] = [
    "order.created",
    "order.paid",
    "order.cancelled",
    "user.signup",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_by_type_go_to_their_paths_and_test_traffic_is_committed_past() {
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 600;
    let topic = unique("routes-types");
    let group = unique("routes-types-group");
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;

    // Binary-mode CloudEvents (`ce_*` headers), keyed so each key stays in one partition.
    let producer = producer();
    let mut expected: BTreeMap<Keyed, Option<&str>> = BTreeMap::new();
    let mut pending = Vec::new();
    for index in 0..RECORDS {
        let key = format!("k{}", index % 30);
        let keyed = Keyed {
            key: key.clone(),
            seq: (index / 30) as u64,
        };
        let event_type = TYPES[index % TYPES.len()];
        let test_traffic = index % 10 == 0;
        let id = index.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_specversion",
                value: Some("1.0"),
            })
            .insert(Header {
                key: "ce_id",
                value: Some(id.as_str()),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("/shop"),
            })
            .insert(Header {
                key: "ce_type",
                value: Some(event_type),
            });
        if test_traffic {
            headers = headers.insert(Header {
                key: "env",
                value: Some("test"),
            });
        }
        let path = match event_type {
            _ if test_traffic => None,
            "order.created" => Some("/created"),
            "order.paid" => Some("/paid"),
            "order.cancelled" => Some("/cancelled"),
            _ => Some("/other"),
        };
        expected.insert(keyed.clone(), path);
        let body = payload(&keyed.key, keyed.seq);
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&body)
            .headers(headers);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .expect("enqueue"),
        );
    }
    for delivery in pending {
        delivery
            .await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("produce");
    }
    let end = end_offsets(&topic, PARTITIONS);

    let mut config = test_config(&group, &topic, &endpoint.url_with_path("/"));
    config.routes = routes(
        r#"
- name: shop
  filter: '!("env" in headers) || headers["env"] != "test"'
  rules:
    - {match: 'ce.type == "order.created"', path: /created}
    - {match: 'ce.type == "order.paid"', path: /paid}
    - {match: 'ce.type == "order.cancelled"', path: /cancelled}
  default: /other
"#,
    );
    let mut sidecar = Sidecar::start_ready(&config).await;
    let routed = expected.values().filter(|path| path.is_some()).count();
    wait_until(
        LONG,
        lazy(|| format!("{routed} records delivered; {}", endpoint.summary())),
        || endpoint.successful_count() >= routed,
    )
    .await;
    let kafka = Kafka::shared();
    checks::wait_committed(&kafka, &group, &topic, &end).await;

    let requests = endpoint.successful_requests();
    assert_eq!(requests.len(), routed, "each routed record once");
    for request in &requests {
        let keyed = parse_payload(&request.body).expect("a test payload");
        assert_eq!(
            Some(request.path.as_str()),
            expected[&keyed],
            "{keyed:?} went to the wrong path"
        );
    }
    let paths: BTreeSet<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["/cancelled", "/created", "/other", "/paid"])
    );
    checks::assert_partition_order(&checks::delivered(&endpoint));

    let skipped = RECORDS - routed;
    let metrics = sidecar.metrics();
    assert_eq!(
        series(
            &metrics,
            &format!("kws_unrouted_records_total{{topic=\"{topic}\"}}")
        ),
        Some(skipped as f64),
        "{metrics}"
    );
    assert_eq!(
        series(
            &metrics,
            &format!("kws_route_skipped_records_total{{route=\"shop\",topic=\"{topic}\"}}")
        ),
        Some(skipped as f64)
    );
    assert_eq!(
        series(
            &metrics,
            &format!(
                "kws_deliveries_total{{outcome=\"success\",route=\"shop\",topic=\"{topic}\"}}"
            )
        ),
        Some(routed as f64)
    );
    sidecar.sigterm();
    assert!(sidecar.wait_exit(LONG).await.success());
    delete_topic(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_two_routes_want_is_committed_once_both_acknowledged_it() {
    const PARTITIONS: i32 = 2;
    const RECORDS: usize = 400;
    const OUTAGE: Duration = Duration::from_secs(10);
    let topic = unique("routes-two");
    let group = unique("routes-two-group");
    create_topic(&topic, PARTITIONS).await;
    let fast = Endpoint::start().await;
    let slow = Endpoint::start().await;
    let kafka = Kafka::shared();

    let mut config = test_config(&group, &topic, &fast.url());
    config.routes = routes(&format!(
        "- name: fast\n- name: slow\n  delivery: {{url: '{}'}}\n",
        slow.url()
    ));
    let mut sidecar = Sidecar::start_ready(&config).await;
    let watcher = checks::CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);

    slow.set_down(true);
    let outage = Instant::now();
    let produced = produce_keyed(&topic, 20, RECORDS).await;
    let end = end_offsets(&topic, PARTITIONS);
    checks::wait_all_delivered(&fast, &produced, LONG).await;
    assert!(
        outage.elapsed() < OUTAGE,
        "route `fast` delivered everything while `slow` was down"
    );
    assert_eq!(slow.successful_count(), 0);
    tokio::time::sleep_until((outage + OUTAGE).into()).await;
    let committed = committed_offsets(&group, &topic, PARTITIONS);
    assert!(
        committed.iter().all(|offset| *offset <= 0),
        "nothing may be committed while `slow` acknowledged nothing: {committed:?}"
    );

    slow.set_down(false);
    checks::wait_all_delivered(&slow, &produced, LONG).await;
    checks::wait_committed(&kafka, &group, &topic, &end).await;
    let samples = watcher.finish();
    for endpoint in [&fast, &slow] {
        let delivered = checks::delivered(endpoint);
        checks::assert_nothing_lost(&delivered, &produced);
        checks::assert_partition_order(&delivered);
        assert_eq!(checks::duplicates(&delivered), 0);
        checks::assert_commits_never_passed_unacknowledged(&samples, &delivered);
    }
    sidecar.sigterm();
    assert!(sidecar.wait_exit(LONG).await.success());
    delete_topic(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_rebalance_and_sigterm_with_routes_deliver_nothing_twice() {
    const PARTITIONS: i32 = 4;
    let topic = unique("routes-rebalance");
    let group = unique("routes-rebalance-group");
    create_topic(&topic, PARTITIONS).await;
    let all = Endpoint::start().await;
    let evens = Endpoint::start().await;
    let kafka = Kafka::shared();

    let mut config = test_config(&group, &topic, &all.url());
    config.shutdown.drain_timeout = Duration::from_secs(5);
    config.shutdown.termination_grace_period = Duration::from_secs(10);
    config.routes = routes(&format!(
        "- name: all\n- name: evens\n  filter: 'partition % 2 == 0'\n  delivery: {{url: '{}'}}\n",
        evens.url()
    ));
    let load = checks::Load::start(&kafka, &topic, 16, 400);
    let mut first = Sidecar::start_ready(&config).await;
    load.wait_progress(400, LONG).await;
    let mut second = Sidecar::start_ready(&config).await;
    wait_until(LONG, "the members own two partitions each", || {
        let of = |sidecar: &Sidecar| sidecar.metric("kws_assigned_partitions");
        (of(&first) == Some(2.0) && of(&second) == Some(2.0)).then_some(())
    })
    .await;
    load.wait_progress(400, LONG).await;
    second.sigterm();
    assert!(
        second.wait_exit(LONG).await.success(),
        "second member exits 0"
    );
    wait_until(
        LONG,
        "the first member takes back all four partitions",
        || first.metric("kws_assigned_partitions") == Some(4.0),
    )
    .await;
    load.wait_progress(400, LONG).await;
    let produced = load.finish().await;
    let end = end_offsets(&topic, PARTITIONS);
    checks::wait_all_delivered(&all, &produced, LONG).await;

    let everything = checks::delivered(&all);
    let wanted: BTreeSet<(i32, i64)> = everything
        .iter()
        .filter(|d| d.partition % 2 == 0)
        .map(|d| (d.partition, d.offset))
        .collect();
    let even_deliveries = || -> BTreeSet<(i32, i64)> {
        checks::delivered(&evens)
            .iter()
            .map(|d: &Delivered| (d.partition, d.offset))
            .collect()
    };
    wait_until(
        LONG,
        lazy(|| {
            format!(
                "route `evens` delivered the {} records of partitions 0 and 2 ({} so far)",
                wanted.len(),
                even_deliveries().len()
            )
        }),
        || even_deliveries() == wanted,
    )
    .await;
    checks::wait_committed(&kafka, &group, &topic, &end).await;
    first.sigterm();
    assert!(
        first.wait_exit(LONG).await.success(),
        "first member exits 0"
    );

    checks::assert_nothing_lost(&everything, &produced);
    for (name, endpoint) in [("all", &all), ("evens", &evens)] {
        let delivered = checks::delivered(endpoint);
        checks::assert_partition_order(&delivered);
        assert_eq!(
            checks::duplicates(&delivered),
            0,
            "route `{name}`: a graceful rebalance redelivers nothing"
        );
    }
    assert!(checks::delivered(&evens)
        .iter()
        .all(|d| d.partition % 2 == 0));
    delete_topic(&topic).await;
}

/// A config whose routes cannot be compiled stops before joining (exit 64, the route and
/// position named): the same check as `--check-config`, by the program that would run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_expression_stops_the_sidecar_with_exit_64() {
    let mut config: Config = test_config("g", "t", "http://127.0.0.1:9/");
    config.routes = routes("- name: orders\n  filter: 'ce.type == '\n");
    let mut sidecar = Sidecar::start(&config);
    let status = sidecar.wait_exit(LONG).await;
    assert_eq!(status.code(), Some(64));
    let logs = sidecar.logs();
    assert!(
        logs.contains("routes[orders].filter") && logs.contains("CEL syntax error at line 1"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_route_with_a_group_of_its_own_commits_independently() {
    const PARTITIONS: i32 = 2;
    let topic = unique("routes-group");
    let group = unique("routes-group-main");
    let audit_group = unique("routes-group-audit");
    create_topic(&topic, PARTITIONS).await;
    let main = Endpoint::start().await;
    let audit = Endpoint::start().await;
    let kafka = Kafka::shared();

    let mut config = test_config(&group, &topic, &main.url());
    config.routes = routes(&format!(
        "- name: main\n- name: audit\n  group_id: {audit_group}\n  delivery: {{url: '{}'}}\n",
        audit.url()
    ));
    let mut sidecar = Sidecar::start_ready(&config).await;
    audit.set_down(true);
    let produced = produce_keyed(&topic, 10, 200).await;
    let end = end_offsets(&topic, PARTITIONS);
    // The sidecar's group commits to the end while the audit route's endpoint is down: the
    // route with a group of its own holds nothing back.
    checks::wait_all_delivered(&main, &produced, LONG).await;
    checks::wait_committed(&kafka, &group, &topic, &end).await;
    assert_eq!(audit.successful_count(), 0);
    let audit_committed = committed_offsets(&audit_group, &topic, PARTITIONS);
    assert!(
        audit_committed.iter().all(|offset| *offset <= 0),
        "the audit group committed nothing it did not deliver: {audit_committed:?}"
    );

    audit.set_down(false);
    checks::wait_all_delivered(&audit, &produced, LONG).await;
    checks::wait_committed(&kafka, &audit_group, &topic, &end).await;
    for endpoint in [&main, &audit] {
        let delivered = checks::delivered(endpoint);
        checks::assert_partition_order(&delivered);
        assert_eq!(checks::duplicates(&delivered), 0);
    }
    sidecar.sigterm();
    assert!(
        sidecar.wait_exit(LONG).await.success(),
        "both consumers leave, exit 0"
    );
    let logs = sidecar.logs();
    assert!(
        logs.contains(&audit_group) && logs.contains(&group),
        "each consumer says which group it joins"
    );
    delete_topic(&topic).await;
}
