//! Batching end to end against a real broker: every ordering mode delivers everything with
//! batches, in order, and commits to the end; per-entry results (RETRY, DROP, left out) settle
//! each entry on its own while the committed offset never passes a pending entry; a whole
//! batch's 503 honours Retry-After and a 400 dead-letters every entry; a kill -9 loses
//! nothing; `max_wait` and `max_bytes` hold.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::checks::{
    assert_commits_never_passed_unacknowledged, assert_key_order, assert_nothing_lost,
    assert_partition_order, CommitWatcher, Delivered,
};
use common::cluster::Kafka;
use common::endpoint::{Endpoint, RecordedRequest, Reply};
use common::*;
use kafka_webhook_sidecar::config::{
    BatchConfig, Config, FailurePolicy, Ordering as DeliveryOrdering,
};

const LONG: Duration = Duration::from_secs(120);

/// One entry of a batch request, as the endpoint received it.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    partition: i32,
    offset: i64,
    keyed: Option<Keyed>,
    at: Instant,
}

/// The entries of a JSON-array batch request (panics on anything else: the sidecar must
/// send what the README documents).
fn entries(request: &RecordedRequest) -> Vec<Entry> {
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.body_json();
    let list = body.as_array().expect("a batch body is a JSON array");
    assert_eq!(
        request.header("kafka-batch-records"),
        Some(list.len().to_string().as_str())
    );
    list.iter()
        .map(|entry| Entry {
            id: entry["id"].as_str().expect("id").to_string(),
            partition: entry["partition"].as_i64().expect("partition") as i32,
            offset: entry["offset"].as_i64().expect("offset"),
            // The test payloads are JSON, so they are embedded as JSON.
            keyed: serde_json::to_vec(&entry["value"])
                .ok()
                .and_then(|value| parse_payload(&value)),
            at: request.at,
        })
        .collect()
}

impl Entry {
    fn delivered(&self) -> Delivered {
        Delivered {
            partition: self.partition,
            offset: self.offset,
            keyed: self.keyed.clone(),
            at: self.at,
        }
    }
}

/// Every entry of every successful request, in arrival order.
fn delivered_entries(endpoint: &Endpoint) -> Vec<Delivered> {
    endpoint
        .successful_requests()
        .iter()
        .flat_map(entries)
        .map(|entry| entry.delivered())
        .collect()
}

fn batch_config(group: &str, topic: &str, url: &str, ordering: DeliveryOrdering) -> Config {
    let mut config = test_config(group, topic, url);
    config.delivery.ordering = ordering;
    config.delivery.max_in_flight = 4;
    config.delivery.batch = Some(BatchConfig {
        max_records: 200,
        max_bytes: 256 * 1024,
        max_wait: Duration::from_millis(20),
        ..BatchConfig::default()
    });
    config
}

async fn wait_entries(endpoint: &Endpoint, count: usize) {
    let distinct = || {
        delivered_entries(endpoint)
            .iter()
            .map(|entry| (entry.partition, entry.offset))
            .collect::<BTreeSet<_>>()
            .len()
    };
    wait_until(
        LONG,
        lazy(|| {
            format!(
                "{count} distinct records arrive: {} so far; {}",
                distinct(),
                endpoint.summary()
            )
        }),
        || distinct() >= count,
    )
    .await;
}

async fn wait_committed_to_end(group: &str, topic: &str, partitions: i32) {
    let end = end_offsets(topic, partitions);
    wait_until(
        Duration::from_secs(60),
        lazy(|| {
            format!(
                "committed {:?} reaches the end {end:?}",
                committed_offsets(group, topic, partitions)
            )
        }),
        || committed_offsets(group, topic, partitions) == end,
    )
    .await;
}

async fn delivers_everything_in_batches(ordering: DeliveryOrdering) {
    const PARTITIONS: i32 = 4;
    const RECORDS: usize = 20_000;
    let label = format!("{ordering:?}").to_lowercase();
    let topic = unique(&format!("batch-{label}"));
    let group = unique("batch-group");
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 50, RECORDS).await;
    let endpoint = Endpoint::start().await;
    let sidecar =
        Sidecar::start_ready(&batch_config(&group, &topic, &endpoint.url(), ordering)).await;
    wait_entries(&endpoint, RECORDS).await;
    wait_committed_to_end(&group, &topic, PARTITIONS).await;

    let arrived = delivered_entries(&endpoint);
    assert_nothing_lost(&arrived, &produced);
    match ordering {
        DeliveryOrdering::Partition => assert_partition_order(&arrived),
        DeliveryOrdering::Key => assert_key_order(&arrived),
        DeliveryOrdering::None => {}
    }
    // Batches really carried many records, never more than max_records, one partition each.
    let requests = endpoint.successful_requests();
    let sizes: Vec<usize> = requests.iter().map(|r| entries(r).len()).collect();
    assert!(
        sizes.iter().all(|size| (1..=200).contains(size)),
        "{sizes:?}"
    );
    assert!(
        requests.len() * 10 < RECORDS,
        "{} requests for {RECORDS} records: batches are too small",
        requests.len()
    );
    for request in &requests {
        let partitions: BTreeSet<i32> = entries(request).iter().map(|e| e.partition).collect();
        assert_eq!(partitions.len(), 1, "a batch holds one partition's records");
    }
    let histogram = sidecar.metric("kws_batch_records_count").unwrap_or(0.0);
    assert!(
        histogram >= requests.len() as f64,
        "kws_batch_records counts every batch"
    );
    eprintln!(
        "{label}: {} requests, {:.0} records per batch on average",
        requests.len(),
        RECORDS as f64 / requests.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_mode_delivers_20000_records_in_batches() {
    delivers_everything_in_batches(DeliveryOrdering::Partition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_mode_delivers_20000_records_in_batches() {
    delivers_everything_in_batches(DeliveryOrdering::Key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn none_mode_delivers_20000_records_in_batches() {
    delivers_everything_in_batches(DeliveryOrdering::None).await;
}

/// What the scripted receiver answers for one entry on its `nth` attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Success,
    Retry,
    Drop,
    Omit,
}

/// Offsets ending in 3: RETRY once; in 5: left out once; in 7: DROP. Offset 13 of
/// partition 0 answers RETRY for its first 3 seconds (the commit must wait for it).
fn scripted_answer(entry: &Entry, nth: u32, first_seen: Instant) -> Answer {
    if entry.partition == 0 && entry.offset == 13 {
        return if first_seen.elapsed() < Duration::from_secs(3) {
            Answer::Retry
        } else {
            Answer::Success
        };
    }
    match (entry.offset % 10, nth) {
        (3, 1) => Answer::Retry,
        (5, 1) => Answer::Omit,
        (7, _) => Answer::Drop,
        _ => Answer::Success,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_entry_results_retry_drop_and_missing_entries() {
    const PARTITIONS: i32 = 2;
    const RECORDS: usize = 600;
    let topic = unique("batch-results");
    let group = unique("batch-results-group");
    let kafka = Kafka::shared();
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 20, RECORDS).await;
    let endpoint = Endpoint::start().await;
    // Per entry id: attempts so far and when it was first seen; and every answer given.
    let attempts: Arc<Mutex<HashMap<String, (u32, Instant)>>> = Arc::default();
    let answers: Arc<Mutex<Vec<(Entry, Answer)>>> = Arc::default();
    {
        let attempts = attempts.clone();
        let answers = answers.clone();
        endpoint.set_handler(move |request, _| {
            let mut statuses = Vec::new();
            for entry in entries(request) {
                let (nth, first_seen) = {
                    let mut attempts = attempts.lock().unwrap();
                    let slot = attempts
                        .entry(entry.id.clone())
                        .or_insert((0, Instant::now()));
                    slot.0 += 1;
                    *slot
                };
                let answer = scripted_answer(&entry, nth, first_seen);
                let status = match answer {
                    Answer::Success => Some("SUCCESS"),
                    Answer::Retry => Some("RETRY"),
                    Answer::Drop => Some("DROP"),
                    Answer::Omit => None,
                };
                if let Some(status) = status {
                    statuses.push(serde_json::json!({"entryId": entry.id, "status": status}));
                }
                answers.lock().unwrap().push((entry, answer));
            }
            Reply::ok().with_body(serde_json::json!({ "statuses": statuses }).to_string())
        });
    }
    let watcher = CommitWatcher::start(&kafka, &group, &topic, PARTITIONS);
    let mut config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Partition);
    config.delivery.batch = Some(BatchConfig {
        max_records: 20,
        max_bytes: 64 * 1024,
        max_wait: Duration::from_millis(10),
        ..BatchConfig::default()
    });
    let sidecar = Sidecar::start_ready(&config).await;

    // Every record is acknowledged (SUCCESS) or dropped (DROP).
    let settled = || {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, answer)| matches!(answer, Answer::Success | Answer::Drop))
            .map(|(entry, _)| (entry.partition, entry.offset))
            .collect::<BTreeSet<_>>()
            .len()
    };
    wait_until(
        LONG,
        lazy(|| format!("{RECORDS} records settled: {}", settled())),
        || settled() >= RECORDS,
    )
    .await;
    wait_committed_to_end(&group, &topic, PARTITIONS).await;
    let samples = watcher.finish();
    let answers = answers.lock().unwrap().clone();

    // Nothing lost: every produced record was answered SUCCESS or DROP.
    let acknowledged: Vec<Delivered> = answers
        .iter()
        .filter(|(_, answer)| matches!(answer, Answer::Success | Answer::Drop))
        .map(|(entry, _)| entry.delivered())
        .collect();
    assert_nothing_lost(&acknowledged, &produced);

    // Retried and left-out entries came again; dropped ones never came twice.
    let mut by_id: BTreeMap<&str, Vec<Answer>> = BTreeMap::new();
    for (entry, answer) in &answers {
        by_id.entry(&entry.id).or_default().push(*answer);
    }
    for (id, answers) in &by_id {
        match answers.first() {
            Some(Answer::Retry) | Some(Answer::Omit) => assert!(
                answers.len() >= 2 && answers.last() == Some(&Answer::Success),
                "{id}: {answers:?}"
            ),
            Some(Answer::Drop) => assert_eq!(answers.len(), 1, "{id}: dropped, then sent again"),
            _ => {}
        }
    }
    let dropped = by_id
        .values()
        .filter(|answers| answers.contains(&Answer::Drop))
        .count();
    assert!(dropped > 0);
    assert_eq!(
        sidecar.metric(&format!(
            "kws_deliveries_total{{outcome=\"dropped\",topic=\"{topic}\"}}"
        )),
        Some(dropped as f64)
    );

    // Partition mode: a retried entry's success comes before any record of a later batch.
    let requests = endpoint.successful_requests();
    let mut first_batch_end: HashMap<String, i64> = HashMap::new();
    let mut success_at: HashMap<String, usize> = HashMap::new();
    for request in &requests {
        let list = entries(request);
        let last = list.iter().map(|entry| entry.offset).max().unwrap_or(-1);
        for entry in &list {
            first_batch_end.entry(entry.id.clone()).or_insert(last);
        }
    }
    for (index, (entry, answer)) in answers.iter().enumerate() {
        if *answer == Answer::Success {
            success_at.entry(entry.id.clone()).or_insert(index);
        }
    }
    for (id, answers_of_id) in &by_id {
        if !matches!(
            answers_of_id.first(),
            Some(Answer::Retry) | Some(Answer::Omit)
        ) {
            continue;
        }
        let (partition, end) = {
            let entry = &answers.iter().find(|(e, _)| e.id == *id).unwrap().0;
            (entry.partition, first_batch_end[*id])
        };
        let succeeded = success_at[*id];
        let overtaken = answers[..succeeded]
            .iter()
            .find(|(entry, _)| entry.partition == partition && entry.offset > end);
        assert!(
            overtaken.is_none(),
            "{id} (batch up to offset {end}) was overtaken by {:?} before its success",
            overtaken.map(|(entry, _)| &entry.id)
        );
    }

    // The committed offset never passed an entry that was not settled yet (offset 13 of
    // partition 0 stayed RETRY for 3 s while the watcher sampled).
    let checked = assert_commits_never_passed_unacknowledged(&samples, &acknowledged);
    assert!(checked > 0, "the watcher saw no commit");
    let held = samples
        .iter()
        .filter(|(_, committed)| committed.first() == Some(&13))
        .count();
    assert!(held > 0, "the commit never waited on the pending entry 13");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_batch_503_honours_retry_after() {
    let topic = unique("batch-503");
    let group = unique("batch-503-group");
    create_topic(&topic, 1).await;
    produce_keyed(&topic, 5, 100).await;
    let endpoint = Endpoint::start().await;
    // The first request of each batch id: 503 with Retry-After: 2.
    endpoint.set_handler(|_, attempt| {
        if attempt.nth_for_id == 1 {
            Reply::status(503).with_header("retry-after", "2")
        } else {
            Reply::ok()
        }
    });
    let mut config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Partition);
    // Retry-After is honoured up to max_backoff.
    config.delivery.retry.max_backoff = Duration::from_secs(5);
    let _sidecar = Sidecar::start_ready(&config).await;
    wait_entries(&endpoint, 100).await;
    wait_committed_to_end(&group, &topic, 1).await;
    let mut by_id: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for request in endpoint.requests() {
        by_id
            .entry(request.idempotency_id().unwrap().to_string())
            .or_default()
            .push(request.at);
    }
    for (id, times) in by_id {
        assert!(times.len() >= 2, "{id}: the 503 was not retried");
        let gap = times[1] - times[0];
        assert!(
            gap >= Duration::from_millis(1900),
            "{id}: retried after {gap:?}, before Retry-After: 2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_batch_dead_letters_every_entry_with_error_headers() {
    let topic = unique("batch-dlq");
    let dlq = unique("batch-dlq-out");
    let group = unique("batch-dlq-group");
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let produced = produce_keyed(&topic, 3, 30).await;
    let endpoint = Endpoint::start().await;
    endpoint.always(400);
    let mut config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Partition);
    config.delivery.on_failure = FailurePolicy::DeadLetter;
    config.delivery.dead_letter_topic = Some(dlq.clone());
    let sidecar = Sidecar::start_ready(&config).await;
    wait_committed_to_end(&group, &topic, 1).await;

    let dead_letters = read_dead_letters(&dlq, 30).await;
    let mut offsets = BTreeSet::new();
    for dead_letter in &dead_letters {
        // One partition: the record produced i-th is at offset i.
        let payload = dead_letter
            .payload
            .as_ref()
            .expect("a dead letter carries its value");
        let offset = produced
            .iter()
            .position(|keyed| keyed == payload)
            .expect("a produced record") as i64;
        dead_letter.assert_rejected(&topic, 0, offset, 400, 1);
        offsets.insert(offset);
    }
    assert_eq!(offsets, (0..30).collect(), "every entry dead-lettered once");
    assert_eq!(
        sidecar.metric(&format!(
            "kws_deliveries_total{{outcome=\"dead_lettered\",topic=\"{topic}\"}}"
        )),
        Some(30.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_stream_with_batches_loses_nothing() {
    const PARTITIONS: i32 = 3;
    const RECORDS: usize = 6_000;
    let topic = unique("batch-kill");
    let group = unique("batch-kill-group");
    create_topic(&topic, PARTITIONS).await;
    let produced = produce_keyed(&topic, 30, RECORDS).await;
    let endpoint = Endpoint::start().await;
    // Slow enough that the kill lands mid-stream.
    endpoint.slow(Duration::from_millis(20));
    let config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Key);
    let mut first = Sidecar::start_ready(&config).await;
    wait_entries(&endpoint, RECORDS / 4).await;
    first.kill9();
    let before = delivered_entries(&endpoint).len();
    assert!(
        before < RECORDS,
        "the kill came after everything was delivered"
    );
    endpoint.always_ok();
    let _second = Sidecar::start_ready(&config).await;
    wait_entries(&endpoint, RECORDS).await;
    wait_committed_to_end(&group, &topic, PARTITIONS).await;
    let entries = delivered_entries(&endpoint);
    assert_nothing_lost(&entries, &produced);
    assert_key_order(&entries);
    let distinct: BTreeSet<(i32, i64)> = entries.iter().map(|e| (e.partition, e.offset)).collect();
    eprintln!(
        "kill -9 after {before} records: {} duplicates",
        entries.len() - distinct.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_wait_sends_a_lone_record_and_max_bytes_bounds_every_body() {
    let topic = unique("batch-limits");
    let group = unique("batch-limits-group");
    create_topic(&topic, 1).await;
    let endpoint = Endpoint::start().await;
    let mut config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Partition);
    config.delivery.batch = Some(BatchConfig {
        max_records: 100,
        max_bytes: 4096,
        max_wait: Duration::from_millis(400),
        ..BatchConfig::default()
    });
    let _sidecar = Sidecar::start_ready(&config).await;

    // A lone record waits max_wait for company, then goes alone.
    let produced_at = Instant::now();
    produce_raw(&topic, Some(b"k"), Some(b"lone"), &[]).await;
    endpoint.wait_for_requests(1, LONG).await;
    let waited = endpoint.requests()[0].at - produced_at;
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "the lone record arrived after {waited:?} (max_wait 400ms)"
    );

    // 1,000-byte values (sent base64) fill a 4 KiB body with 2 entries; a 10,000-byte
    // record exceeds max_bytes and goes alone.
    let value = vec![b'x'; 1000];
    let large = vec![b'y'; 10_000];
    for index in 0..20 {
        let bytes = if index == 10 { &large } else { &value };
        produce_raw(&topic, Some(b"k"), Some(bytes), &[]).await;
    }
    wait_entries(&endpoint, 21).await;
    for request in endpoint.requests().iter().skip(1) {
        let list = request.body_json();
        let list = list.as_array().unwrap();
        let has_large = list
            .iter()
            .any(|entry| entry["offset"].as_i64() == Some(11));
        if has_large {
            assert_eq!(list.len(), 1, "the oversized record shares its batch");
        } else {
            assert!(
                request.body.len() <= 4096,
                "a body of {} bytes exceeds max_bytes 4096",
                request.body.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_batches_are_signed_and_read_with_the_official_sdks() {
    use cloudevents::{AttributesReader, Event};
    use kafka_webhook_sidecar::config::{Format, Secret};
    use standardwebhooks::Webhook;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let topic = unique("batch-ce");
    let group = unique("batch-ce-group");
    create_topic(&topic, 1).await;
    let produced = produce_keyed(&topic, 4, 40).await;
    let endpoint = Endpoint::start().await;
    let mut config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Partition);
    config.delivery.format = Format::CloudeventsStructured;
    config.delivery.signing.secrets = vec![Secret(SECRET.to_string())];
    let _sidecar = Sidecar::start_ready(&config).await;
    let events = || -> Vec<Event> {
        endpoint
            .successful_requests()
            .iter()
            .flat_map(|request| {
                serde_json::from_slice::<Vec<Event>>(&request.body)
                    .expect("the CloudEvents SDK reads the batch")
            })
            .collect()
    };
    wait_until(
        LONG,
        lazy(|| format!("40 events arrive: {}", events().len())),
        || events().len() >= 40,
    )
    .await;
    let webhook = Webhook::new(SECRET).unwrap();
    for request in endpoint.successful_requests() {
        assert_eq!(
            request.header("content-type"),
            Some("application/cloudevents-batch+json")
        );
        webhook
            .verify(&request.body, &request.headers)
            .expect("standardwebhooks verifies the batch body as sent");
        assert_eq!(request.header("webhook-id"), request.idempotency_id());
    }
    let events = events();
    let ids: BTreeSet<String> = events.iter().map(|event| event.id().to_string()).collect();
    let expected: BTreeSet<String> = (0..40)
        .map(|offset| format!("{topic}-0-{offset}"))
        .collect();
    assert_eq!(
        ids, expected,
        "each entry carries the record's idempotency id"
    );
    let keyed: BTreeSet<Keyed> = events
        .iter()
        .filter_map(|event| {
            let data: serde_json::Value = event.data()?.clone().try_into().ok()?;
            parse_payload(&serde_json::to_vec(&data).ok()?)
        })
        .collect();
    assert_eq!(keyed, produced.into_iter().collect());
}

/// Values a producer may write that look like JSON but are not strict JSON, or are JSON on
/// several lines: each must leave the body of the batch it is in valid.
const ODD_VALUES: &[&[u8]] = &[
    b"\"\xff\xfe\"",
    b"{\n  \"pretty\": [\n    1\n  ]\n}",
    b"{\r\n  \"crlf\": true\r\n}\r\n",
    br#"{"lone":"\ud800"}"#,
    b"\xef\xbb\xbf{\"bom\":1}",
    b"{\"a\":1}{\"b\":2}",
    b"",
];

/// One odd record amid plain ones must never break a batch: the receiver parses every body
/// with a strict parser (serde_json) and answers per entry, in every body kind; every record
/// is acknowledged exactly once and the commit reaches the end (with `on_failure: block`, a
/// body the receiver could not read would hold the partition for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn odd_records_amid_plain_ones_leave_every_batch_body_valid() {
    use kafka_webhook_sidecar::config::{BatchEncoding, Format};

    let topic = unique("batch-odd");
    create_topic(&topic, 1).await;
    let mut count = 0;
    for (index, odd) in ODD_VALUES.iter().enumerate() {
        let plain = format!("{{\"plain\":{index}}}");
        produce_raw(&topic, Some(b"k"), Some(plain.as_bytes()), &[]).await;
        let header: &[u8] = b"\xff binary";
        produce_raw(&topic, Some(b"\xfe"), Some(odd), &[("h", Some(header))]).await;
        count += 2;
    }
    produce_raw(&topic, None, None, &[]).await;
    count += 1;

    for (label, format, encoding) in [
        ("json", Format::Raw, BatchEncoding::Json),
        ("ndjson", Format::Raw, BatchEncoding::Ndjson),
        (
            "cloudevents",
            Format::CloudeventsStructured,
            BatchEncoding::Json,
        ),
    ] {
        let group = unique(&format!("batch-odd-{label}"));
        let endpoint = Endpoint::start().await;
        let unreadable = Arc::new(Mutex::new(Vec::<String>::new()));
        let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
        {
            let unreadable = unreadable.clone();
            let acknowledged = acknowledged.clone();
            endpoint.set_handler(move |request, _| {
                let documents: Vec<&[u8]> = match encoding {
                    BatchEncoding::Ndjson => request
                        .body
                        .strip_suffix(b"\n")
                        .unwrap_or(&request.body)
                        .split(|byte| *byte == b'\n')
                        .collect(),
                    BatchEncoding::Json => vec![&request.body[..]],
                };
                let mut ids = Vec::new();
                for document in documents {
                    match serde_json::from_slice::<serde_json::Value>(document) {
                        Ok(serde_json::Value::Array(entries)) => ids.extend(entries),
                        Ok(entry) => ids.push(entry),
                        Err(error) => {
                            let mut unreadable = unreadable.lock().unwrap();
                            if unreadable.len() < 3 {
                                unreadable.push(format!("{error}"));
                            }
                            return Reply::status(400);
                        }
                    }
                }
                let ids: Vec<String> = ids
                    .iter()
                    .map(|entry| entry["id"].as_str().expect("an entry id").to_string())
                    .collect();
                let statuses: Vec<_> = ids
                    .iter()
                    .map(|id| serde_json::json!({"entryId": id, "status": "SUCCESS"}))
                    .collect();
                acknowledged.lock().unwrap().extend(ids);
                Reply::ok().with_body(serde_json::json!({ "statuses": statuses }).to_string())
            });
        }
        let mut config = batch_config(&group, &topic, &endpoint.url(), DeliveryOrdering::Partition);
        config.delivery.format = format;
        config.delivery.batch = Some(BatchConfig {
            max_records: 500,
            max_bytes: 1024 * 1024,
            max_wait: Duration::from_millis(50),
            encoding,
        });
        let sidecar = Sidecar::start_ready(&config).await;
        wait_until(
            LONG,
            lazy(|| {
                format!(
                    "{label}: {count} records acknowledged: {:?}; unreadable bodies (the first 3): {:?}",
                    acknowledged.lock().unwrap().len(),
                    unreadable.lock().unwrap()
                )
            }),
            || acknowledged.lock().unwrap().len() >= count,
        )
        .await;
        wait_committed_to_end(&group, &topic, 1).await;
        drop(sidecar);

        assert_eq!(*unreadable.lock().unwrap(), Vec::<String>::new(), "{label}");
        let acknowledged = acknowledged.lock().unwrap().clone();
        let expected: Vec<String> = (0..count)
            .map(|offset| format!("{topic}-0-{offset}"))
            .collect();
        assert_eq!(
            acknowledged, expected,
            "{label}: each record acknowledged once, in order"
        );
        // The odd records really shared a request with plain ones.
        let requests = endpoint.successful_requests();
        assert!(
            requests.iter().any(|request| request
                .header("kafka-batch-records")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= 3)),
            "{label}: no batch mixed odd and plain records: {} requests",
            requests.len()
        );
    }
}
