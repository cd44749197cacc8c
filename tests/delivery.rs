//! The core promises, end to end against a real broker and a real HTTP listener: every record
//! delivered, in order, committed only after acknowledgement; retries, Retry-After, timeouts,
//! the failure policies, a crash, and records of every shape.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::endpoint::{Endpoint, Reply};
use common::*;
use kafka_webhook_sidecar::config::{FailurePolicy, GroupProtocol, Ordering as DeliveryOrdering};

const LONG: Duration = Duration::from_secs(120);

async fn delivers_everything_in_order(ordering: DeliveryOrdering) {
    delivers_everything_in_order_with(ordering, GroupProtocol::Classic).await
}

/// (With `GroupProtocol::Consumer` the broker owns the session timeout: the sidecar does not
/// pass `kafka.session_timeout` on.)
async fn delivers_everything_in_order_with(ordering: DeliveryOrdering, protocol: GroupProtocol) {
    const PARTITIONS: i32 = 6;
    const RECORDS: usize = 10_000;
    let label = format!("{ordering:?}").to_lowercase();
    let topic = unique(&format!("bulk-{label}"));
    let group = unique("bulk-group");
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 100, RECORDS).await;
    let endpoint = Endpoint::start().await;
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = ordering;
    config.delivery.max_in_flight = 16;
    config.kafka.group_protocol = protocol;
    let sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(RECORDS, LONG).await;

    let delivered = endpoint.successful_requests();
    let ids: HashSet<String> = delivered
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert_eq!(ids.len(), RECORDS, "distinct records delivered");
    assert_eq!(delivered.len(), RECORDS, "no record delivered twice");
    let keyed: HashSet<Keyed> = delivered
        .iter()
        .filter_map(|r| parse_payload(&r.body))
        .collect();
    assert_eq!(
        keyed,
        produced.into_iter().collect::<HashSet<_>>(),
        "exactly the produced records"
    );
    assert_per_key_order(&delivered);
    if ordering == DeliveryOrdering::Partition {
        for (partition, records) in deliveries_by_partition(&delivered) {
            let offsets: Vec<i64> = records.iter().map(|(offset, _)| *offset).collect();
            assert!(
                offsets.windows(2).all(|pair| pair[0] < pair[1]),
                "partition {partition} out of offset order"
            );
        }
    }
    let end = end_offsets(&topic, PARTITIONS);
    wait_until(
        Duration::from_secs(30),
        "committed offsets reach the end",
        || committed_offsets(&group, &topic, PARTITIONS) == end,
    )
    .await;
    let success = sidecar.metric(&format!(
        "kws_deliveries_total{{outcome=\"success\",topic=\"{topic}\"}}"
    ));
    assert_eq!(success, Some(RECORDS as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_mode_delivers_10k_records_once_in_offset_order() {
    delivers_everything_in_order(DeliveryOrdering::Partition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_mode_delivers_10k_records_once_in_key_order() {
    delivers_everything_in_order(DeliveryOrdering::Key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_group_protocol_kip_848_delivers_10k_records_once_in_order() {
    delivers_everything_in_order_with(DeliveryOrdering::Partition, GroupProtocol::Consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_are_retried_until_success() {
    let topic = unique("retry");
    let group = unique("retry-group");
    create_topic(&topic, 2).await;
    produce_keyed(&topic, 5, 50).await;
    let endpoint = Endpoint::start().await;
    endpoint.fail_first_attempts(2, 500);
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = DeliveryOrdering::Key;
    config.delivery.max_in_flight = 8;
    let sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(50, LONG).await;

    let mut attempts: HashMap<String, usize> = HashMap::new();
    for request in endpoint.requests() {
        *attempts
            .entry(request.header("idempotency-key").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(attempts.len(), 50);
    assert!(
        attempts.values().all(|count| *count == 3),
        "each record takes exactly 3 attempts: {attempts:?}"
    );
    wait_until(
        Duration::from_secs(10),
        "metrics count the attempts",
        || {
            sidecar.metric(&format!(
                "kws_delivery_attempts_total{{class=\"5xx\",topic=\"{topic}\"}}"
            )) == Some(100.0)
                && sidecar.metric(&format!(
                    "kws_delivery_attempts_total{{class=\"2xx\",topic=\"{topic}\"}}"
                )) == Some(50.0)
                && sidecar.metric(&format!("kws_delivery_retries_total{{topic=\"{topic}\"}}"))
                    == Some(100.0)
        },
    )
    .await;
    let end = end_offsets(&topic, 2);
    wait_until(Duration::from_secs(30), "committed", || {
        committed_offsets(&group, &topic, 2) == end
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_is_honoured() {
    let topic = unique("retry-after");
    let group = unique("retry-after-group");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 3, 3).await;
    let endpoint = Endpoint::start().await;
    endpoint.retry_after(1);
    // Retry-After is honoured up to max_backoff, so raise the test default (500 ms).
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.retry.max_backoff = Duration::from_secs(5);
    let _sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(3, LONG).await;
    for offset in 0..3 {
        let id = format!("{topic}-0-{offset}");
        let attempts = endpoint.requests_for_id(&id);
        assert_eq!(attempts.len(), 2, "{id}: one 429 then one success");
        let gap = attempts[1].at.duration_since(attempts[0].at);
        // initial_backoff is 20 ms: only Retry-After explains a gap of a second.
        assert!(
            gap >= Duration::from_secs(1),
            "{id}: retried after {gap:?}, before Retry-After: 1"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_request_goes_to_dead_letter_topic_and_later_records_flow() {
    let topic = unique("dlq");
    let dlq = unique("dlq-out");
    let group = unique("dlq-group");
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    produce_keyed(&topic, 1, 10).await;
    let endpoint = Endpoint::start().await;
    // seq 3 of k0 is offset 3: always rejected as a bad request.
    endpoint.set_handler(|request, _| {
        if parse_payload(&request.body).map(|k| k.seq) == Some(3) {
            Reply::status(400)
        } else {
            Reply::ok()
        }
    });
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.on_failure = FailurePolicy::DeadLetter;
    config.delivery.dead_letter_topic = Some(dlq.clone());
    let sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(9, LONG).await;
    wait_until(
        Duration::from_secs(30),
        "committed past the dead-lettered record",
        || committed_offsets(&group, &topic, 1) == vec![10],
    )
    .await;
    assert_eq!(
        endpoint.requests_for_id(&format!("{topic}-0-3")).len(),
        1,
        "a 400 is not retried"
    );

    // Read the dead-letter topic back.
    let dead_letter = read_dead_letters(&dlq, 1).await.remove(0);
    assert_eq!(dead_letter.key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(
        dead_letter.payload,
        Some(Keyed {
            key: "k0".into(),
            seq: 3
        })
    );
    dead_letter.assert_rejected(&topic, 0, 3, 400, 1);
    assert_eq!(
        sidecar.metric(&format!(
            "kws_deliveries_total{{outcome=\"dead_lettered\",topic=\"{topic}\"}}"
        )),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_policy_counts_and_skips() {
    let topic = unique("drop");
    let group = unique("drop-group");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 1, 10).await;
    let endpoint = Endpoint::start().await;
    endpoint.set_handler(|request, _| {
        if parse_payload(&request.body).map(|k| k.seq) == Some(4) {
            Reply::status(422)
        } else {
            Reply::ok()
        }
    });
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.on_failure = FailurePolicy::Drop;
    let sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(9, LONG).await;
    wait_until(
        Duration::from_secs(30),
        "committed past the dropped record",
        || committed_offsets(&group, &topic, 1) == vec![10],
    )
    .await;
    assert_eq!(
        sidecar.metric(&format!(
            "kws_deliveries_total{{outcome=\"dropped\",topic=\"{topic}\"}}"
        )),
        Some(1.0)
    );
    assert!(sidecar.logs().contains("Dropped record"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_policy_holds_the_commit_at_the_first_undelivered_record() {
    let topic = unique("block");
    let group = unique("block-group");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 1, 5).await;
    let endpoint = Endpoint::start().await;
    let _sidecar = Sidecar::start_ready(&test_config(&group, &topic, &endpoint.url())).await;
    endpoint.wait_for_requests(5, LONG).await;
    wait_until(Duration::from_secs(30), "first five committed", || {
        committed_offsets(&group, &topic, 1) == vec![5]
    })
    .await;

    // The endpoint goes down (503 for everything), then more records arrive.
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    endpoint.set_handler(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    produce_keyed_from(&producer(), &topic, 1, 10, 5).await;
    wait_until(
        Duration::from_secs(30),
        "the blocked record is being retried",
        || endpoint.requests_for_id(&format!("{topic}-0-5")).len() >= 3,
    )
    .await;
    // Several commit intervals pass; the committed offset must stay at 5 the whole time.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert_eq!(
            committed_offsets(&group, &topic, 1),
            vec![5],
            "committed past an undelivered record"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent_after: Vec<_> = endpoint
        .requests()
        .into_iter()
        .filter(|r| {
            r.header("kafka-offset")
                .and_then(|o| o.parse::<i64>().ok())
                .unwrap_or(0)
                > 5
        })
        .collect();
    assert!(
        sent_after.is_empty(),
        "records after the blocked one were sent"
    );

    down.store(false, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(60),
        "everything delivered after recovery",
        || endpoint.distinct_successful_ids().len() == 15,
    )
    .await;
    wait_until(Duration::from_secs(30), "all committed", || {
        committed_offsets(&group, &topic, 1) == vec![15]
    })
    .await;
    assert_per_key_order(&endpoint.successful_requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_endpoint_times_out_and_is_retried() {
    let topic = unique("hang");
    let group = unique("hang-group");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 1, 3).await;
    let endpoint = Endpoint::start().await;
    endpoint.hang_first_attempt();
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.timeout = Duration::from_millis(500);
    let sidecar = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(3, LONG).await;
    for offset in 0..3 {
        let attempts = endpoint.requests_for_id(&format!("{topic}-0-{offset}"));
        assert_eq!(attempts.len(), 2, "one hung attempt, one success");
        assert!(attempts[1].at.duration_since(attempts[0].at) >= Duration::from_millis(500));
    }
    wait_until(Duration::from_secs(10), "timeouts counted", || {
        sidecar.metric(&format!(
            "kws_delivery_attempts_total{{class=\"timeout\",topic=\"{topic}\"}}"
        )) == Some(3.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_then_restart_loses_nothing_and_bounds_duplicates() {
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 3000;
    const CAP: usize = 8;
    let topic = unique("crash");
    let group = unique("crash-group");
    create_topic(&topic, PARTITIONS).await;
    produce_keyed(&topic, 60, RECORDS).await;
    let endpoint = Endpoint::start().await;
    endpoint.slow(Duration::from_millis(2));
    let mut config = test_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = DeliveryOrdering::Key;
    config.delivery.max_in_flight = CAP;
    let mut first = Sidecar::start_ready(&config).await;
    endpoint.wait_for_requests(RECORDS / 3, LONG).await;
    first.kill9();
    let killed_at = Instant::now();
    let before_kill = endpoint.successful_requests();

    let _second = Sidecar::start_ready(&config).await;
    wait_until(LONG, "every record delivered after the restart", || {
        endpoint.distinct_successful_ids().len() == RECORDS
    })
    .await;

    let delivered = endpoint.successful_requests();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for request in &delivered {
        *counts
            .entry(request.header("idempotency-key").unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|count| count - 1).sum();
    // What a crash may redeliver: what was in flight, plus what was acknowledged since the last
    // commit (commit_interval is 200 ms; allow one more second for the commit round trip).
    let window = Duration::from_millis(1200);
    let recent = before_kill
        .iter()
        .filter(|r| killed_at.duration_since(r.at) <= window)
        .count();
    let bound = CAP * PARTITIONS as usize + recent;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the bound {bound}"
    );
    assert_per_key_order(&delivered);
    let end = end_offsets(&topic, PARTITIONS);
    wait_until(Duration::from_secs(30), "committed to the end", || {
        committed_offsets(&group, &topic, PARTITIONS) == end
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_every_shape_are_delivered() {
    let topic = unique("shapes");
    let group = unique("shapes-group");
    create_topic_with(&topic, 1, &[("max.message.bytes", "4194304")]).await;
    let huge: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    produce_raw(&topic, None, Some(b"null key"), &[]).await;
    produce_raw(&topic, Some(b"tomb"), None, &[]).await;
    produce_raw(&topic, Some(b"empty"), Some(b""), &[]).await;
    produce_raw(&topic, Some(b"huge"), Some(&huge), &[]).await;
    produce_raw(
        &topic,
        Some(b"\xff\xfebinary-key"),
        Some(b"headers"),
        &[
            ("bin", Some(b"\xff\x00\x80")),
            ("null-header", None),
            ("text", Some(b"plain")),
        ],
    )
    .await;
    let endpoint = Endpoint::start().await;
    let sidecar = Sidecar::start_ready(&test_config(&group, &topic, &endpoint.url())).await;
    endpoint.wait_for_requests(5, LONG).await;
    let by_offset: HashMap<String, _> = endpoint
        .successful_requests()
        .into_iter()
        .map(|r| (r.header("kafka-offset").unwrap().to_string(), r))
        .collect();
    let null_key = &by_offset["0"];
    assert_eq!(&null_key.body[..], b"null key");
    assert!(null_key.header("kafka-key").is_none() && null_key.header("kafka-key-b64").is_none());
    let tombstone = &by_offset["1"];
    assert!(tombstone.body.is_empty());
    assert_eq!(tombstone.header("kafka-tombstone"), Some("true"));
    let empty = &by_offset["2"];
    assert!(empty.body.is_empty());
    assert!(empty.header("kafka-tombstone").is_none());
    assert_eq!(
        &by_offset["3"].body[..],
        &huge[..],
        "1 MiB value byte for byte"
    );
    let binary = &by_offset["4"];
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        binary.header("kafka-key-b64"),
        Some(b64.encode(b"\xff\xfebinary-key").as_str())
    );
    assert_eq!(binary.header("kafka-header-text"), Some("plain"));
    let encoded: Vec<&str> = binary
        .headers
        .get_all("kafka-header-b64")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        encoded,
        vec![
            format!("{}:{}", b64.encode("bin"), b64.encode(b"\xff\x00\x80")),
            b64.encode("null-header")
        ]
    );
    wait_until(Duration::from_secs(30), "committed", || {
        committed_offsets(&group, &topic, 1) == vec![5]
    })
    .await;
    assert!(!sidecar.logs().contains("panicked"));
}

/// `delivery.unix_socket`: the requests go over the socket (the URL's host does not even
/// resolve), with the URL's path and Host header; while nothing listens on the socket yet the
/// records wait and are retried (nothing committed), then all arrive in partition order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivers_over_a_unix_socket_that_appears_after_start() {
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 600;
    let topic = unique("unix");
    let group = unique("unix-group");
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 30, RECORDS).await;
    let endpoint = Endpoint::start().await;
    let dir = std::env::temp_dir().join(unique("kws-unix"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("app.sock");
    // `.invalid` never resolves (RFC 6761): a request that went over TCP would fail.
    let mut config = test_config(&group, &topic, "http://app.invalid/hooks/orders");
    config.delivery.unix_socket = Some(socket.display().to_string());
    let sidecar = Sidecar::start_ready(&config).await;
    let refused =
        format!("kws_delivery_attempts_total{{class=\"connection_error\",topic=\"{topic}\"}}");
    wait_until(LONG, "attempts refused while the socket is missing", || {
        sidecar.metric(&refused).unwrap_or(0.0) >= PARTITIONS as f64
    })
    .await;
    let committed = committed_offsets(&group, &topic, PARTITIONS);
    assert!(
        committed.iter().all(|&offset| offset <= 0),
        "committed {committed:?} before anything was delivered"
    );

    endpoint.serve_unix(&socket);
    endpoint.wait_for_requests(RECORDS, LONG).await;
    let delivered = endpoint.successful_requests();
    assert!(delivered
        .iter()
        .all(|r| r.path == "/hooks/orders" && r.header("host") == Some("app.invalid")));
    let keyed: HashSet<Keyed> = delivered
        .iter()
        .filter_map(|r| parse_payload(&r.body))
        .collect();
    assert_eq!(keyed, produced.into_iter().collect::<HashSet<_>>());
    assert_eq!(delivered.len(), RECORDS, "no record delivered twice");
    common::checks::assert_partition_order(&common::checks::delivered(&endpoint));
    let end = end_offsets(&topic, PARTITIONS);
    wait_until(Duration::from_secs(30), "committed to the end", || {
        committed_offsets(&group, &topic, PARTITIONS) == end
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
