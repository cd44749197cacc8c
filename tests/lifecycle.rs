//! Group lifecycle end to end, with several real sidecar processes in one group and a producer
//! running throughout: scaling out (with an idle standby), graceful SIGTERM handovers under each
//! assignor, kill -9, SIGTERM in the middle of retries, static membership across a restart, and
//! an endpoint outage longer than `max.poll.interval.ms`.
//!
//! Each instance sends a static `x-instance` header, so the endpoint can tell who delivered
//! what. The checks: nothing lost, nothing delivered twice where the rebalance was graceful
//! (duplicates bounded after a crash), per-key order, and no partition delivered by two
//! instances at once (per partition, the owner changes only at handover points and a later
//! owner only delivers offsets above the previous owner's).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::checks::{self, Delivered};
use common::endpoint::{Endpoint, RecordedRequest, Reply};
use common::*;
use kafka_webhook_sidecar::config::{AssignmentStrategy, Config, Ordering as DeliveryOrdering};

const LONG: Duration = Duration::from_secs(120);
const PARTITIONS: i32 = 3;
/// `shutdown.drain_timeout` of every instance.
const DRAIN: Duration = Duration::from_secs(5);
/// `shutdown.termination_grace_period`: the longest a graceful exit may take.
const GRACE: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// The config every instance of one test's group shares: the test defaults with a shutdown of
/// `DRAIN` within `GRACE`. [`Instance::start`] adds the instance's `x-instance` header.
fn group_config(group: &str, topic: &str, url: &str) -> Config {
    let mut config = test_config(group, topic, url);
    config.shutdown.drain_timeout = DRAIN;
    config.shutdown.termination_grace_period = GRACE;
    config
}

/// Sets a librdkafka property (`kafka.properties`).
fn set_property(config: &mut Config, key: &str, value: &str) {
    config.kafka.properties.insert(key.into(), value.into());
}

/// One sidecar process and the `x-instance` name it sends.
struct Instance {
    name: String,
    sidecar: Sidecar,
}

/// Rebalance callbacks seen by one instance, by kind.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rebalances {
    assign: f64,
    revoke: f64,
    lost: f64,
    error: f64,
}

impl Instance {
    /// Starts a sidecar with `config` plus the static header `x-instance: {name}`.
    fn start(config: &Config, name: &str) -> Instance {
        let mut config = config.clone();
        config
            .delivery
            .headers
            .insert("x-instance".into(), name.into());
        Instance {
            name: name.to_string(),
            sidecar: Sidecar::start(&config),
        }
    }

    /// The metrics text of one scrape; `None` if the admin server did not answer it.
    fn metrics_text(&self) -> Option<String> {
        match self.sidecar.admin_get("/metrics") {
            Some((200, body)) if !body.is_empty() => Some(body),
            _ => None,
        }
    }

    /// Scrapes until `read` gets its value (a loaded machine may drop a scrape); panics if the
    /// instance does not answer within 10 s.
    async fn scraped<T>(&self, read: impl Fn(&Instance) -> Option<T>) -> T {
        wait_until(
            Duration::from_secs(10),
            lazy(|| format!("instance {} answers /metrics", self.name)),
            || read(self),
        )
        .await
    }

    /// `kws_assigned_partitions`; `None` while the admin server does not answer.
    fn assigned(&self) -> Option<i64> {
        let text = self.metrics_text()?;
        series(&text, "kws_assigned_partitions").map(|value| value as i64)
    }

    /// `kws_offset_commits_total{result="ok"}`: successful commits (auto-commits included).
    fn commits_ok(&self) -> Option<f64> {
        let text = self.metrics_text()?;
        Some(series(&text, "kws_offset_commits_total{result=\"ok\"}").unwrap_or(0.0))
    }

    /// Assigned partitions and rebalance counters, from one scrape.
    fn membership(&self) -> Option<(i64, Rebalances)> {
        let text = self.metrics_text()?;
        let assigned = series(&text, "kws_assigned_partitions")? as i64;
        Some((assigned, rebalances_in(&text)))
    }

    fn rebalances(&self) -> Option<Rebalances> {
        Some(rebalances_in(&self.metrics_text()?))
    }
}

fn rebalances_in(text: &str) -> Rebalances {
    let kind = |kind: &str| {
        series(text, &format!("kws_rebalances_total{{kind=\"{kind}\"}}")).unwrap_or(0.0)
    };
    Rebalances {
        assign: kind("assign"),
        revoke: kind("revoke"),
        lost: kind("lost"),
        error: kind("error"),
    }
}

impl Instance {
    /// SIGTERM, then asserts a clean exit (code 0) within the grace period. Returns how long
    /// the exit took.
    async fn stop_gracefully(&mut self) -> Duration {
        let started = Instant::now();
        self.sidecar.sigterm();
        let status = self.sidecar.wait_exit(GRACE + Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(
            status.success(),
            "instance {} exited with {status} after SIGTERM; log:\n{}",
            self.name,
            self.sidecar.logs()
        );
        assert!(
            took <= GRACE,
            "instance {} took {took:?} to exit after SIGTERM (grace period {GRACE:?}); log:\n{}",
            self.name,
            self.sidecar.logs()
        );
        eprintln!(
            "instance {} exited cleanly {took:?} after SIGTERM",
            self.name
        );
        took
    }
}

/// Waits until every listed instance answers and `accept` holds for their assigned-partition
/// counts (in the order given).
async fn wait_assigned(instances: &[&Instance], what: &str, accept: impl Fn(&[i64]) -> bool) {
    let counts = wait_until(
        LONG,
        lazy(|| {
            let counts: Vec<Option<i64>> = instances.iter().map(|i| i.assigned()).collect();
            format!("{what}; assigned: {counts:?}")
        }),
        || {
            let counts: Option<Vec<i64>> = instances.iter().map(|i| i.assigned()).collect();
            counts.filter(|counts| accept(counts))
        },
    )
    .await;
    eprintln!(
        "assignment settled ({what}): {:?}",
        instances
            .iter()
            .map(|i| i.name.as_str())
            .zip(counts)
            .collect::<Vec<_>>()
    );
}

/// A producer task writing keyed records (`k0`…, per-key sequence numbers) at a steady rate
/// until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Keyed>>,
}

impl Load {
    /// One record per key every `keys / per_second` seconds.
    fn start(topic: &str, keys: usize, per_second: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let topic = topic.to_string();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let producer = producer();
            let mut produced = Vec::new();
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(keys as f64 / per_second as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut batch = 0u64;
            while !flag.load(Ordering::SeqCst) {
                tick.tick().await;
                produced.extend(produce_keyed_from(&producer, &topic, keys, keys, batch).await);
                batch += 1;
            }
            produced
        });
        Load { stop, task }
    }

    /// Stops producing; returns every record produced (all acknowledged by the broker).
    async fn finish(self) -> Vec<Keyed> {
        self.stop.store(true, Ordering::SeqCst);
        let produced = self.task.await.expect("producer task");
        eprintln!("producer stopped after {} records", produced.len());
        produced
    }
}

/// One request as the endpoint saw it, with who sent it.
#[derive(Debug, Clone)]
struct Delivery {
    instance: String,
    partition: i32,
    offset: i64,
    keyed: Option<Keyed>,
    at: Instant,
}

fn to_delivery(request: &RecordedRequest) -> Delivery {
    let Delivered {
        partition,
        offset,
        keyed,
        at,
    } = checks::to_delivered(request);
    Delivery {
        instance: request.header("x-instance").unwrap_or("?").to_string(),
        partition,
        offset,
        keyed,
        at,
    }
}

/// Successful (2xx) deliveries in arrival order.
fn delivered(endpoint: &Endpoint) -> Vec<Delivery> {
    endpoint
        .successful_requests()
        .iter()
        .map(to_delivery)
        .collect()
}

/// How often each record was delivered successfully; panics if one was never delivered or an
/// unknown one was.
fn delivery_counts(deliveries: &[Delivery], produced: &[Keyed]) -> BTreeMap<Keyed, usize> {
    let mut counts: BTreeMap<Keyed, usize> = produced.iter().map(|k| (k.clone(), 0)).collect();
    for delivery in deliveries {
        let keyed = delivery.keyed.clone().expect("test payload");
        match counts.get_mut(&keyed) {
            Some(count) => *count += 1,
            None => panic!("delivered a record that was never produced: {delivery:?}"),
        }
    }
    let missing: Vec<&Keyed> = counts
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(keyed, _)| keyed)
        .collect();
    assert!(
        missing.is_empty(),
        "{} records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    counts
}

/// Every produced record delivered exactly once.
fn assert_exactly_once(deliveries: &[Delivery], produced: &[Keyed]) {
    let counts = delivery_counts(deliveries, produced);
    let twice: Vec<(&Keyed, &usize)> = counts.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.is_empty(),
        "{} records delivered more than once after graceful rebalances, e.g. {:?}; {}",
        twice.len(),
        &twice[..twice.len().min(10)],
        describe_handovers(deliveries)
    );
}

/// One instance's uninterrupted stretch of deliveries of one partition.
#[derive(Debug)]
struct Run {
    instance: String,
    first_offset: i64,
    low: i64,
    high: i64,
    count: usize,
}

/// Per partition, the deliveries in arrival order cut into runs of one instance.
fn runs_by_partition(deliveries: &[Delivery]) -> BTreeMap<i32, Vec<Run>> {
    let mut runs: BTreeMap<i32, Vec<Run>> = BTreeMap::new();
    for delivery in deliveries {
        let partition_runs = runs.entry(delivery.partition).or_default();
        match partition_runs.last_mut() {
            Some(run) if run.instance == delivery.instance => {
                run.low = run.low.min(delivery.offset);
                run.high = run.high.max(delivery.offset);
                run.count += 1;
            }
            _ => partition_runs.push(Run {
                instance: delivery.instance.clone(),
                first_offset: delivery.offset,
                low: delivery.offset,
                high: delivery.offset,
                count: 1,
            }),
        }
    }
    runs
}

fn describe_handovers(deliveries: &[Delivery]) -> String {
    let mut text = String::from("ownership per partition (instance: offsets low..=high, count):");
    for (partition, runs) in runs_by_partition(deliveries) {
        text.push_str(&format!("\n  partition {partition}:"));
        for run in runs {
            text.push_str(&format!(
                " [{}: {}..={} first {} n={}]",
                run.instance, run.low, run.high, run.first_offset, run.count
            ));
        }
    }
    text
}

/// At no moment did two instances deliver the same partition: per partition, in arrival
/// order, the instance changes only at handovers, an instance never comes back after handing
/// the partition over, and everything a later owner delivers lies above what the previous owner
/// delivered.
fn assert_clean_handovers(deliveries: &[Delivery]) {
    for (partition, runs) in runs_by_partition(deliveries) {
        let mut seen = BTreeSet::new();
        for run in &runs {
            assert!(
                seen.insert(run.instance.clone()),
                "partition {partition}: instance {} delivered again after another took over \
                 (interleaved ownership); {}",
                run.instance,
                describe_handovers(deliveries)
            );
        }
        for pair in runs.windows(2) {
            assert!(
                pair[1].low > pair[0].high,
                "partition {partition}: {} delivered offset {} after {} had delivered up to {} \
                 (overlapping ownership or redelivery); {}",
                pair[1].instance,
                pair[1].low,
                pair[0].instance,
                pair[0].high,
                describe_handovers(deliveries)
            );
        }
    }
}

fn assert_offsets_contiguous_in_order(deliveries: &[Delivery], end: &[i64]) {
    for partition in 0..end.len() as i32 {
        let offsets: Vec<i64> = deliveries
            .iter()
            .filter(|d| d.partition == partition)
            .map(|d| d.offset)
            .collect();
        let expected: Vec<i64> = (0..end[partition as usize]).collect();
        assert!(
            offsets == expected,
            "partition {partition}: delivered offsets are not exactly 0..{} in order; {}",
            end[partition as usize],
            describe_handovers(deliveries)
        );
    }
}

/// Waits until every partition had a successful delivery at or after `mark` (an index into the
/// endpoint's request list), then returns each partition's current deliverer (the instance of
/// its latest delivery).
async fn current_owners(endpoint: &Endpoint, mark: usize) -> BTreeMap<i32, String> {
    wait_until(LONG, "every partition delivers", || {
        let mut owners = BTreeMap::new();
        for request in endpoint.requests().iter().skip(mark) {
            if request.is_success() {
                let d = to_delivery(request);
                owners.insert(d.partition, d.instance);
            }
        }
        (owners.len() == PARTITIONS as usize).then_some(owners)
    })
    .await
}

/// The first successful delivery of `partition` by `instance` at or after `since`.
fn first_delivery_by(
    endpoint: &Endpoint,
    instance: &str,
    partition: i32,
    since: Instant,
) -> Option<Instant> {
    endpoint
        .successful_requests()
        .iter()
        .map(to_delivery)
        .find(|d| d.instance == instance && d.partition == partition && d.at >= since)
        .map(|d| d.at)
}

async fn wait_committed_to_end(group: &str, topic: &str) {
    let end = end_offsets(topic, PARTITIONS);
    wait_until(
        Duration::from_secs(30),
        "committed offsets reach the end",
        || committed_offsets(group, topic, PARTITIONS) == end,
    )
    .await;
}

// ------------------------------------------------------------------------------------------
// 1 and 2: graceful scale-out and scale-in under a running producer
// ------------------------------------------------------------------------------------------

/// a, then b, then c join (each waits for the settled assignment), d stands by idle; then a,
/// b, c are stopped with SIGTERM one by one, each handing its partitions over. Nothing is lost
/// or duplicated, keys stay in order and no partition has two deliverers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cooperative_scale_out_standby_and_graceful_scale_in() {
    let topic = unique("life-coop");
    let group = unique("life-coop-group");
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;
    // A session timeout far above the handover times asserted below: a quick handover proves
    // the member left the group (LeaveGroup), not that its session expired. The heartbeat is
    // what tells the other members a rebalance started; keep it short.
    let mut config = group_config(&group, &topic, &endpoint.url());
    config.kafka.session_timeout = Duration::from_secs(30);
    config.kafka.assignment_strategy = AssignmentStrategy::CooperativeSticky;
    set_property(&mut config, "heartbeat.interval.ms", "1000");
    let load = Load::start(&topic, 20, 200);

    let mut a = Instance::start(&config, "a");
    a.sidecar.wait_ready(LONG).await;
    wait_until(LONG, "a delivers", || endpoint.successful_count() > 0).await;
    wait_assigned(&[&a], "a owns everything", |c| c == [3]).await;

    let mut b = Instance::start(&config, "b");
    b.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b], "a and b share", |c| c == [2, 1]).await;

    let mut c = Instance::start(&config, "c");
    c.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b, &c], "a, b, c own one each", |c| c == [1, 1, 1]).await;

    let mut d = Instance::start(&config, "d");
    d.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b, &c, &d], "d stands by idle", |c| c == [1, 1, 1, 0]).await;
    // d is ready while idle, and stays idle while the others deliver a good many records.
    let mark = endpoint.request_count();
    let watched = endpoint.successful_count();
    wait_until(LONG, "300 more records delivered with d idle", || {
        if let Some(assigned) = d.assigned() {
            assert_eq!(assigned, 0, "standby d took a partition");
        }
        endpoint.successful_count() >= watched + 300
    })
    .await;
    assert!(d.sidecar.is_ready(), "an idle standby member is ready");
    let owners = current_owners(&endpoint, mark).await;
    eprintln!("owners with d standing by: {owners:?}");
    let owned_by = |name: &str| -> Vec<i32> {
        owners
            .iter()
            .filter(|(_, owner)| owner.as_str() == name)
            .map(|(partition, _)| *partition)
            .collect()
    };
    let (a_parts, b_parts, c_parts) = (owned_by("a"), owned_by("b"), owned_by("c"));
    assert_eq!(
        (a_parts.len(), b_parts.len(), c_parts.len()),
        (1, 1, 1),
        "{owners:?}"
    );

    // SIGTERM a: it leaves the group, and the standby d takes its partition well before the
    // 30 s session timeout could have expired; b and c keep theirs without a revocation.
    let b_revokes = b.scraped(Instance::rebalances).await.revoke;
    let c_revokes = c.scraped(Instance::rebalances).await.revoke;
    let a_stopped = Instant::now();
    a.stop_gracefully().await;
    let a_part = a_parts[0];
    wait_until(LONG, "d takes a's partition", || {
        first_delivery_by(&endpoint, "d", a_part, a_stopped).is_some()
    })
    .await;
    let handover = first_delivery_by(&endpoint, "d", a_part, a_stopped).unwrap() - a_stopped;
    eprintln!("a's partition {a_part} moved to d {handover:?} after SIGTERM");
    assert!(
        handover < Duration::from_secs(15),
        "a's partition took {handover:?} to move (session timeout is 30 s: it did not leave the group?)"
    );
    wait_assigned(&[&b, &c, &d], "b, c, d own one each", |c| c == [1, 1, 1]).await;
    assert_eq!(
        b.scraped(Instance::rebalances).await.revoke,
        b_revokes,
        "b's partition was revoked"
    );
    assert_eq!(
        c.scraped(Instance::rebalances).await.revoke,
        c_revokes,
        "c's partition was revoked"
    );

    // SIGTERM b: its partition goes to c or d.
    let b_stopped = Instant::now();
    b.stop_gracefully().await;
    let b_part = b_parts[0];
    wait_until(LONG, "b's partition delivered by c or d", || {
        first_delivery_by(&endpoint, "c", b_part, b_stopped).is_some()
            || first_delivery_by(&endpoint, "d", b_part, b_stopped).is_some()
    })
    .await;
    wait_assigned(&[&c, &d], "c and d share", |c| {
        c.iter().sum::<i64>() == 3 && c.iter().all(|n| *n > 0)
    })
    .await;

    // SIGTERM c: d is left with everything.
    c.stop_gracefully().await;
    wait_assigned(&[&d], "d owns everything", |c| c == [3]).await;

    let produced = load.finish().await;
    checks::wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_committed_to_end(&group, &topic).await;

    let deliveries = assert_graceful_run("cooperative-sticky", &endpoint, &produced, &topic);
    assert!(
        deliveries
            .iter()
            .filter(|d| d.instance == "d")
            .all(|d| d.at >= a_stopped),
        "standby d delivered before a left"
    );
}

/// What a run of only graceful handovers promises: every record exactly once (not even a
/// failed attempt extra), per-key order, each partition's offsets contiguous and in order, and
/// no partition delivered by two instances at once. Returns the deliveries for more checks.
fn assert_graceful_run(
    label: &str,
    endpoint: &Endpoint,
    produced: &[Keyed],
    topic: &str,
) -> Vec<Delivery> {
    let deliveries = delivered(endpoint);
    eprintln!("{label}: {}", describe_handovers(&deliveries));
    assert_exactly_once(&deliveries, produced);
    assert_per_key_order(&endpoint.successful_requests());
    assert_clean_handovers(&deliveries);
    assert_offsets_contiguous_in_order(&deliveries, &end_offsets(topic, PARTITIONS));
    assert_eq!(
        endpoint.request_count(),
        produced.len(),
        "{}",
        endpoint.summary()
    );
    deliveries
}

/// The eager assignors: a, then b join; a is stopped (b takes everything); c joins; b is
/// stopped (c takes everything). Same promises as with cooperative-sticky.
async fn eager_handovers(assignor: AssignmentStrategy) {
    let strategy = format!("{assignor:?}").to_lowercase();
    let topic = unique(&format!("life-{strategy}"));
    let group = unique(&format!("life-{strategy}-group"));
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;
    let mut config = group_config(&group, &topic, &endpoint.url());
    config.kafka.session_timeout = Duration::from_secs(30);
    config.kafka.assignment_strategy = assignor;
    set_property(&mut config, "heartbeat.interval.ms", "1000");
    let load = Load::start(&topic, 20, 200);

    let mut a = Instance::start(&config, "a");
    a.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a], "a owns everything", |c| c == [3]).await;
    wait_until(LONG, "a delivers", || endpoint.successful_count() > 0).await;

    let mut b = Instance::start(&config, "b");
    b.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b], "a and b share", |c| {
        c.iter().sum::<i64>() == 3 && c.iter().all(|n| *n > 0)
    })
    .await;
    let mark = endpoint.request_count();
    let owners = current_owners(&endpoint, mark).await;
    eprintln!("{strategy}: owners of a and b: {owners:?}");

    let a_stopped = Instant::now();
    a.stop_gracefully().await;
    wait_assigned(&[&b], "b owns everything", |c| c == [3]).await;
    for (partition, owner) in &owners {
        if owner == "a" {
            wait_until(LONG, "b delivers a's partition", || {
                first_delivery_by(&endpoint, "b", *partition, a_stopped).is_some()
            })
            .await;
            let handover =
                first_delivery_by(&endpoint, "b", *partition, a_stopped).unwrap() - a_stopped;
            eprintln!("{strategy}: partition {partition} moved a -> b {handover:?} after SIGTERM");
            assert!(
                handover < Duration::from_secs(15),
                "handover took {handover:?}"
            );
        }
    }

    let mut c = Instance::start(&config, "c");
    c.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&b, &c], "b and c share", |c| {
        c.iter().sum::<i64>() == 3 && c.iter().all(|n| *n > 0)
    })
    .await;
    let mark = endpoint.request_count();
    current_owners(&endpoint, mark).await;

    b.stop_gracefully().await;
    wait_assigned(&[&c], "c owns everything", |c| c == [3]).await;

    let produced = load.finish().await;
    checks::wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_committed_to_end(&group, &topic).await;

    assert_graceful_run(&strategy, &endpoint, &produced, &topic);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn range_assignor_graceful_handovers() {
    eager_handovers(AssignmentStrategy::Range).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roundrobin_assignor_graceful_handovers() {
    eager_handovers(AssignmentStrategy::Roundrobin).await;
}

// ------------------------------------------------------------------------------------------
// 3: kill -9 under load
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_member_moves_its_partitions_after_the_session_timeout() {
    const CAP: usize = 8;
    let topic = unique("life-kill");
    let group = unique("life-kill-group");
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;
    endpoint.slow(Duration::from_millis(2));
    let mut config = group_config(&group, &topic, &endpoint.url());
    config.delivery.ordering = DeliveryOrdering::Key;
    config.delivery.max_in_flight = CAP;
    let load = Load::start(&topic, 20, 200);

    let mut a = Instance::start(&config, "a");
    a.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a], "a owns everything", |c| c == [3]).await;
    let mut b = Instance::start(&config, "b");
    b.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b], "a and b share", |c| c == [2, 1]).await;
    let mark = endpoint.request_count();
    let owners = current_owners(&endpoint, mark).await;
    let a_parts: Vec<i32> = owners
        .iter()
        .filter(|(_, owner)| owner.as_str() == "a")
        .map(|(partition, _)| *partition)
        .collect();
    assert_eq!(a_parts.len(), 2, "{owners:?}");
    // Kill in the steady state. librdkafka skips the auto-commit for as long as a rebalance is
    // in progress (join state not steady), so a crash right after one redelivers everything
    // acknowledged during the rebalance, far more than one commit interval's worth. Wait until
    // a commits again on every interval.
    let commits = a.scraped(Instance::commits_ok).await;
    wait_until(LONG, "a commits again after the rebalance", || {
        a.commits_ok().is_some_and(|now| now >= commits + 3.0)
    })
    .await;

    a.sidecar.kill9();
    let killed_at = Instant::now();
    let before_kill = delivered(&endpoint);
    for partition in &a_parts {
        wait_until(LONG, "b takes a's partitions", || {
            first_delivery_by(&endpoint, "b", *partition, killed_at).is_some()
        })
        .await;
        let moved = first_delivery_by(&endpoint, "b", *partition, killed_at).unwrap() - killed_at;
        eprintln!("partition {partition} moved to b {moved:?} after kill -9");
        // No LeaveGroup: the broker notices only when the 6 s session expires (the last
        // heartbeat was at most 2 s before the kill).
        assert!(
            moved >= Duration::from_secs(3),
            "partition {partition} moved {moved:?} after kill -9, before the session could expire"
        );
        assert!(
            moved < Duration::from_secs(40),
            "partition {partition} moved after {moved:?}"
        );
    }
    wait_assigned(&[&b], "b owns everything", |c| c == [3]).await;

    let produced = load.finish().await;
    checks::wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_committed_to_end(&group, &topic).await;

    let deliveries = delivered(&endpoint);
    let counts = delivery_counts(&deliveries, &produced);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    // What a crash may redeliver: a's in-flight records (CAP per partition) plus what a had
    // acknowledged since its last commit (commit interval 200 ms; allow a second more).
    let recent = before_kill
        .iter()
        .filter(|d| {
            d.instance == "a" && killed_at.duration_since(d.at) <= Duration::from_millis(1200)
        })
        .count();
    let bound = CAP * a_parts.len() + recent;
    eprintln!("kill -9: {duplicates} duplicates (bound {bound})");
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the bound {bound}; {}",
        describe_handovers(&deliveries)
    );
    // Only a's partitions may see redeliveries.
    for (keyed, count) in &counts {
        if *count > 1 {
            let partition = deliveries
                .iter()
                .find(|d| d.keyed.as_ref() == Some(keyed))
                .map(|d| d.partition)
                .unwrap();
            assert!(
                a_parts.contains(&partition),
                "{keyed:?} of b's own partition {partition} delivered {count} times"
            );
        }
    }
    assert_per_key_order(&endpoint.successful_requests());
    // b resumed a's partitions from a's last commit: nothing of b's own partition moved.
    let after_kill: Vec<&Delivery> = deliveries.iter().filter(|d| d.at >= killed_at).collect();
    assert!(after_kill.iter().all(|d| d.instance == "b"));
}

// ------------------------------------------------------------------------------------------
// 4: SIGTERM in the middle of retries and slow requests
// ------------------------------------------------------------------------------------------

/// Per partition, the lowest offset (below `end`) without a 2xx answer.
fn lowest_unacknowledged(requests: &[RecordedRequest], end: &[i64]) -> Vec<i64> {
    let mut acked: HashMap<i32, BTreeSet<i64>> = HashMap::new();
    for request in requests.iter().filter(|r| r.is_success()) {
        let d = to_delivery(request);
        acked.entry(d.partition).or_default().insert(d.offset);
    }
    (0..end.len())
        .map(|p| {
            let set = acked.get(&(p as i32));
            (0..end[p])
                .find(|offset| !set.is_some_and(|s| s.contains(offset)))
                .unwrap_or(end[p])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_retry_exits_in_time_and_commits_only_acknowledged_records() {
    let topic = unique("life-term");
    let group = unique("life-term-group");
    create_topic(&topic, PARTITIONS).await;
    produce_keyed(&topic, 12, 120).await;
    let end = end_offsets(&topic, PARTITIONS);
    let endpoint = Endpoint::start().await;
    // k0 always fails (retried forever: on_failure block), k1 never gets an answer, every
    // other record takes 2 s. The attempt timeout (8 s) is longer than the drain timeout (5 s),
    // so a fresh k1 attempt can only end by being abandoned when the drain timeout passes.
    endpoint.set_handler(|request, _| match parse_payload(&request.body) {
        Some(keyed) if keyed.key == "k0" => Reply::status(503),
        Some(keyed) if keyed.key == "k1" => Reply::hang(),
        _ => Reply::ok().after(Duration::from_secs(2)),
    });
    let mut config = group_config(&group, &topic, &endpoint.url());
    config.delivery.timeout = Duration::from_secs(8);
    config.delivery.ordering = DeliveryOrdering::Key;
    config.delivery.max_in_flight = 4;
    let mut a = Instance::start(&config, "a");
    a.sidecar.wait_ready(LONG).await;
    let key_of = |r: &RecordedRequest| parse_payload(&r.body).map(|k| k.key);
    wait_until(
        LONG,
        lazy(|| {
            format!(
                "retries, a hanging attempt and slow requests are under way; {}",
                endpoint.summary()
            )
        }),
        || {
            let requests = endpoint.requests();
            let k0 = requests
                .iter()
                .filter(|r| key_of(r).as_deref() == Some("k0"))
                .count();
            let fresh_k1 = requests
                .iter()
                .rev()
                .find(|r| key_of(r).as_deref() == Some("k1"))
                .is_some_and(|r| r.at.elapsed() < Duration::from_secs(2));
            // Acknowledged records above an unacknowledged one: the commit must hold at the gap.
            let lowest = lowest_unacknowledged(&requests, &end);
            let gap = requests
                .iter()
                .filter(|r| r.is_success())
                .map(to_delivery)
                .any(|d| d.offset > lowest[d.partition as usize]);
            k0 >= 3 && fresh_k1 && gap && endpoint.in_flight() >= 2
        },
    )
    .await;

    let acked_before = lowest_unacknowledged(&endpoint.requests(), &end);
    let in_flight = endpoint.in_flight();
    let took = a.stop_gracefully().await;
    eprintln!("SIGTERM with {in_flight} requests in flight: exited in {took:?}");
    assert!(
        took <= DRAIN + Duration::from_secs(3),
        "exit took {took:?}, more than drain_timeout {DRAIN:?} + 3 s; log:\n{}",
        a.sidecar.logs()
    );
    assert!(
        a.sidecar.logs().contains("abandoning in-flight deliveries"),
        "the hanging attempt was not abandoned at the drain timeout; log:\n{}",
        a.sidecar.logs()
    );

    let committed = committed_offsets(&group, &topic, PARTITIONS);
    let requests = endpoint.requests();
    let acked_after = lowest_unacknowledged(&requests, &end);
    eprintln!(
        "end {end:?}, lowest unacknowledged at SIGTERM {acked_before:?}, after exit \
         {acked_after:?}, committed {committed:?}"
    );
    for partition in 0..PARTITIONS as usize {
        let committed = committed[partition].max(0);
        assert!(
            committed <= acked_after[partition],
            "partition {partition}: committed {committed} past the unacknowledged offset {}",
            acked_after[partition]
        );
        // What was acknowledged before the signal was committed on the way out.
        assert!(
            committed >= acked_before[partition],
            "partition {partition}: committed {committed}, but offsets below {} were \
             acknowledged before SIGTERM",
            acked_before[partition]
        );
    }
}

// ------------------------------------------------------------------------------------------
// 5: static membership across a restart
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_member_restart_keeps_its_partitions_without_a_rebalance() {
    let topic = unique("life-static");
    let group = unique("life-static-group");
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;
    let mut base = group_config(&group, &topic, &endpoint.url());
    base.kafka.session_timeout = Duration::from_secs(30);
    set_property(&mut base, "heartbeat.interval.ms", "1000");
    let mut config_a = base.clone();
    config_a.kafka.group_instance_id = "inst-a".into();
    let mut config_b = base.clone();
    config_b.kafka.group_instance_id = "inst-b".into();
    let load = Load::start(&topic, 20, 200);

    let mut a = Instance::start(&config_a, "a");
    a.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a], "a owns everything", |c| c == [3]).await;
    let mut b = Instance::start(&config_b, "b");
    b.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b], "a and b share", |c| {
        c.iter().sum::<i64>() == 3 && c.iter().all(|n| *n > 0)
    })
    .await;
    let mark = endpoint.request_count();
    let owners = current_owners(&endpoint, mark).await;
    let a_parts: Vec<i32> = owners
        .iter()
        .filter(|(_, owner)| owner.as_str() == "a")
        .map(|(partition, _)| *partition)
        .collect();
    let a_count = a.scraped(Instance::assigned).await;
    assert_eq!(a_parts.len() as i64, a_count, "{owners:?}");
    let b_count = b.scraped(Instance::assigned).await;
    let b_before = b.scraped(Instance::rebalances).await;
    eprintln!("static: owners {owners:?}, b's rebalances {b_before:?}");

    // Restart inst-a within a few seconds (well inside the 30 s session timeout).
    let stopped = Instant::now();
    a.stop_gracefully().await;
    let mut a2 = Instance::start(&config_a, "a2");
    a2.sidecar.wait_ready(LONG).await;
    for partition in &a_parts {
        wait_until(
            LONG,
            "the restarted a delivers its partitions again",
            || first_delivery_by(&endpoint, "a2", *partition, stopped).is_some(),
        )
        .await;
        let gap = first_delivery_by(&endpoint, "a2", *partition, stopped).unwrap() - stopped;
        eprintln!(
            "static: partition {partition} delivered by the restarted a {gap:?} after SIGTERM"
        );
    }
    // Long enough for b to have heard of a rebalance (heartbeat every second).
    let watched = endpoint.successful_count();
    wait_until(LONG, "400 more records delivered", || {
        endpoint.successful_count() >= watched + 400
    })
    .await;
    assert_eq!(
        a2.scraped(Instance::assigned).await,
        a_count,
        "the restarted a got its partitions back"
    );
    assert_eq!(b.scraped(Instance::assigned).await, b_count);
    assert_eq!(
        b.scraped(Instance::rebalances).await,
        b_before,
        "b saw a rebalance while static member inst-a restarted; b's log:\n{}",
        b.sidecar.logs()
    );

    let produced = load.finish().await;
    checks::wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_committed_to_end(&group, &topic).await;
    let deliveries = delivered(&endpoint);
    eprintln!("static: {}", describe_handovers(&deliveries));
    for d in deliveries.iter().filter(|d| d.at >= stopped) {
        assert!(
            !(d.instance == "b" && a_parts.contains(&d.partition)),
            "b delivered a's partition {} during the restart",
            d.partition
        );
    }
    assert_exactly_once(&deliveries, &produced);
    assert_per_key_order(&endpoint.successful_requests());
    assert_clean_handovers(&deliveries);
}

// ------------------------------------------------------------------------------------------
// 6: an endpoint outage longer than max.poll.interval.ms
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_longer_than_max_poll_interval_keeps_the_member_in_the_group() {
    const OUTAGE: Duration = Duration::from_secs(15);
    let topic = unique("life-outage");
    let group = unique("life-outage-group");
    create_topic(&topic, PARTITIONS).await;
    let endpoint = Endpoint::start().await;
    let outage = Arc::new(AtomicBool::new(false));
    let failing = outage.clone();
    endpoint.set_handler(move |request, _| {
        if failing.load(Ordering::SeqCst) && request.header("x-instance") == Some("a") {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let mut config = group_config(&group, &topic, &endpoint.url());
    set_property(&mut config, "max.poll.interval.ms", "10000");
    let load = Load::start(&topic, 20, 100);

    let mut a = Instance::start(&config, "a");
    a.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a], "a owns everything", |c| c == [3]).await;
    let mut b = Instance::start(&config, "b");
    b.sidecar.wait_ready(LONG).await;
    wait_assigned(&[&a, &b], "a and b share", |c| {
        c.iter().sum::<i64>() == 3 && c.iter().all(|n| *n > 0)
    })
    .await;
    let settled = Instant::now();
    let mark = endpoint.request_count();
    let owners = current_owners(&endpoint, mark).await;
    let a_parts: Vec<i32> = owners
        .iter()
        .filter(|(_, owner)| owner.as_str() == "a")
        .map(|(partition, _)| *partition)
        .collect();
    let a_count = a.scraped(Instance::assigned).await;
    let b_count = b.scraped(Instance::assigned).await;
    let a_before = a.scraped(Instance::rebalances).await;
    let b_before = b.scraped(Instance::rebalances).await;

    outage.store(true, Ordering::SeqCst);
    let outage_started = Instant::now();
    // Watch for the whole outage: a keeps its partitions and nobody rebalances.
    let mut samples = 0;
    while outage_started.elapsed() < OUTAGE {
        if let (Some(a_now), Some(b_now)) = (a.membership(), b.membership()) {
            assert_eq!(a_now.0, a_count, "a's partitions during the outage");
            assert_eq!(b_now.0, b_count, "b's partitions during the outage");
            assert_eq!(
                a_now.1,
                a_before,
                "a rebalanced during the outage; log:\n{}",
                a.sidecar.logs()
            );
            assert_eq!(
                b_now.1,
                b_before,
                "b rebalanced during the outage; log:\n{}",
                b.sidecar.logs()
            );
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        samples >= 10,
        "only {samples} metric samples during the outage"
    );
    let failed = endpoint
        .requests()
        .iter()
        .filter(|r| r.answered_status == Some(503))
        .count();
    eprintln!("outage: {failed} attempts of a answered 503 over {OUTAGE:?} ({samples} samples)");
    assert!(failed > 0, "a saw no failure: the outage did not happen");
    outage.store(false, Ordering::SeqCst);

    let produced = load.finish().await;
    checks::wait_all_delivered(&endpoint, &produced, LONG).await;
    wait_committed_to_end(&group, &topic).await;
    assert_eq!(a.scraped(Instance::assigned).await, a_count);
    assert_eq!(a.scraped(Instance::rebalances).await, a_before);
    assert_eq!(b.scraped(Instance::rebalances).await, b_before);

    let deliveries = delivered(&endpoint);
    assert_exactly_once(&deliveries, &produced);
    assert_per_key_order(&endpoint.successful_requests());
    assert_clean_handovers(&deliveries);
    for d in deliveries.iter().filter(|d| d.at >= settled) {
        assert_eq!(
            d.instance == "a",
            a_parts.contains(&d.partition),
            "partition {} delivered by {} after the owners were settled",
            d.partition,
            d.instance
        );
    }
}
