//! The properties every fault test checks, and the load that feeds them: a steady keyed
//! producer, the successful deliveries as the endpoint saw them, nothing lost, duplicates
//! counted, and a watcher that samples the group's committed offsets while the fault happens so
//! that "the committed offset never passed an unacknowledged record" is checked over time, not
//! only at the end.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cluster::{committed_with, Kafka};
use super::endpoint::{Endpoint, RecordedRequest};
use super::{lazy, parse_payload, produce_keyed_from, wait_until, Keyed};

/// One successful (2xx) delivery.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    pub keyed: Option<Keyed>,
    pub at: Instant,
}

pub fn to_delivered(request: &RecordedRequest) -> Delivered {
    Delivered {
        partition: request
            .header("kafka-partition")
            .and_then(|p| p.parse().ok())
            .expect("kafka-partition header"),
        offset: request
            .header("kafka-offset")
            .and_then(|o| o.parse().ok())
            .expect("kafka-offset header"),
        keyed: parse_payload(&request.body),
        at: request.at,
    }
}

/// Successful deliveries in arrival order.
pub fn delivered(endpoint: &Endpoint) -> Vec<Delivered> {
    endpoint
        .successful_requests()
        .iter()
        .map(to_delivered)
        .collect()
}

/// Deliveries beyond the first of each record (partition, offset).
pub fn duplicates(deliveries: &[Delivered]) -> usize {
    let distinct: BTreeSet<(i32, i64)> =
        deliveries.iter().map(|d| (d.partition, d.offset)).collect();
    deliveries.len() - distinct.len()
}

/// Waits until every produced record was delivered successfully at least once.
pub async fn wait_all_delivered(endpoint: &Endpoint, produced: &[Keyed], timeout: Duration) {
    let missing = || -> Vec<Keyed> {
        let seen: BTreeSet<Keyed> = delivered(endpoint)
            .into_iter()
            .filter_map(|d| d.keyed)
            .collect();
        produced
            .iter()
            .filter(|keyed| !seen.contains(keyed))
            .cloned()
            .collect()
    };
    let what = lazy(|| {
        let missing = missing();
        format!(
            "every produced record is delivered: {} of {} missing, first {:?}; {}",
            missing.len(),
            produced.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            endpoint.summary()
        )
    });
    wait_until(timeout, what, || {
        endpoint.distinct_successful_ids().len() >= produced.len() && missing().is_empty()
    })
    .await;
}

/// Waits until the committed offsets equal `end` on every partition.
pub async fn wait_committed(kafka: &Kafka, group: &str, topic: &str, end: &[i64]) {
    let reader = kafka.offset_reader(group);
    let committed = || {
        tokio::task::block_in_place(|| {
            committed_with(&reader, topic, end.len() as i32, Duration::from_secs(10))
        })
    };
    let what = lazy(|| {
        format!(
            "the committed offsets {:?} reach the end {end:?}",
            committed()
        )
    });
    wait_until(Duration::from_secs(60), what, || {
        committed().as_deref() == Some(end)
    })
    .await;
}

/// A producer task writing keyed records (`k0`…, per-key sequence numbers) at a steady rate
/// until stopped. It waits for each round's acknowledgements, so it simply stalls while the
/// cluster cannot take writes, and resumes after.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Keyed>>,
    produced: Arc<Mutex<usize>>,
}

impl Load {
    /// About `per_second` records a second, one round of `keys` records at a time.
    pub fn start(kafka: &Kafka, topic: &str, keys: usize, per_second: usize) -> Load {
        Self::start_from(kafka, topic, keys, per_second, 0)
    }

    /// Like [`start`](Self::start), the sequence numbers starting at `first_round` (to
    /// continue after an earlier load on the same keys).
    pub fn start_from(
        kafka: &Kafka,
        topic: &str,
        keys: usize,
        per_second: usize,
        first_round: u64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let produced_count = Arc::new(Mutex::new(0usize));
        let topic = topic.to_string();
        let flag = stop.clone();
        let count = produced_count.clone();
        let producer = kafka.producer();
        let task = tokio::spawn(async move {
            let mut produced = Vec::new();
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(keys as f64 / per_second as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut round = first_round;
            while !flag.load(Ordering::SeqCst) {
                tick.tick().await;
                produced.extend(produce_keyed_from(&producer, &topic, keys, keys, round).await);
                round += 1;
                *count.lock().unwrap() = produced.len();
            }
            produced
        });
        Load {
            stop,
            task,
            produced: produced_count,
        }
    }

    /// Records acknowledged by the cluster so far.
    pub fn produced(&self) -> usize {
        *self.produced.lock().unwrap()
    }

    /// Waits until `more` further records were produced (the cluster takes writes again).
    pub async fn wait_progress(&self, more: usize, timeout: Duration) {
        let start = self.produced();
        super::wait_until(timeout, "the producer makes progress", || {
            self.produced() >= start + more
        })
        .await;
    }

    /// Stops producing; returns every record produced (all acknowledged by the cluster).
    pub async fn finish(self) -> Vec<Keyed> {
        self.stop.store(true, Ordering::SeqCst);
        let produced = self.task.await.expect("producer task");
        eprintln!("producer stopped after {} records", produced.len());
        produced
    }
}

/// One sample of the committed offsets (per partition, -1 for none), taken after the answer.
pub type CommitSample = (Instant, Vec<i64>);

/// Samples the group's committed offsets about every 500 ms on its own thread (samples that
/// fail, e.g. while the cluster is down, are skipped).
pub struct CommitWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<CommitSample>>>,
}

impl CommitWatcher {
    pub fn start(kafka: &Kafka, group: &str, topic: &str, partitions: i32) -> CommitWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let reader = kafka.offset_reader(group);
        let topic = topic.to_string();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Some(committed) =
                    committed_with(&reader, &topic, partitions, Duration::from_secs(3))
                {
                    // Taken after the answer: every commit it shows happened before this.
                    samples.push((Instant::now(), committed));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            samples
        });
        CommitWatcher {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the samples.
    pub fn finish(mut self) -> Vec<CommitSample> {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self
            .thread
            .take()
            .expect("watcher thread")
            .join()
            .expect("watcher thread panicked");
        eprintln!("commit watcher: {} samples", samples.len());
        samples
    }
}

impl Drop for CommitWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Checks every committed-offset sample against the deliveries: below a committed offset, every
/// record offset (an offset that was ever delivered) had a 2xx answer before the sample was
/// taken (the request's arrival precedes its acknowledgement). `deliveries` must be the final,
/// complete list (every record delivered). Returns the number of samples that showed a commit.
pub fn assert_commits_never_passed_unacknowledged(
    samples: &[CommitSample],
    deliveries: &[Delivered],
) -> usize {
    // First successful arrival per (partition, offset).
    let mut first: BTreeMap<(i32, i64), Instant> = BTreeMap::new();
    for d in deliveries {
        let entry = first.entry((d.partition, d.offset)).or_insert(d.at);
        if d.at < *entry {
            *entry = d.at;
        }
    }
    let mut checked = 0;
    for (at, committed) in samples {
        for (partition, &offset) in committed.iter().enumerate() {
            if offset < 0 {
                continue;
            }
            checked += 1;
            let partition = partition as i32;
            for ((_, record), acked_at) in first.range((partition, 0)..(partition, offset)) {
                assert!(
                    acked_at <= at,
                    "partition {partition}: committed offset {offset} was read while record \
                     {record} was not acknowledged yet (first 2xx {:?} after the sample)",
                    acked_at.duration_since(*at)
                );
            }
        }
    }
    checked
}

/// Per partition, first deliveries arrive in offset order (redeliveries are skipped; gaps are
/// allowed — transaction markers, retention — and missing records are `assert_nothing_lost`'s).
pub fn assert_partition_order(deliveries: &[Delivered]) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for d in first_deliveries(deliveries) {
        if let Some(previous) = last.insert(d.partition, d.offset) {
            assert!(
                d.offset > previous,
                "partition {}: offset {} first delivered after offset {previous}",
                d.partition,
                d.offset
            );
        }
    }
}

/// Per key, first deliveries arrive in sequence order (redeliveries are skipped).
pub fn assert_key_order(deliveries: &[Delivered]) {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for d in first_deliveries(deliveries) {
        let keyed = d.keyed.as_ref().expect("a keyed test payload");
        if let Some(previous) = last.insert(keyed.key.clone(), keyed.seq) {
            assert!(
                keyed.seq > previous,
                "key {} delivered seq {} after {previous}",
                keyed.key,
                keyed.seq
            );
        }
    }
}

/// Each record's first delivery, in arrival order (redeliveries of a partition and offset
/// are skipped).
fn first_deliveries(deliveries: &[Delivered]) -> impl Iterator<Item = &Delivered> {
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
    deliveries
        .iter()
        .filter(move |d| seen.insert((d.partition, d.offset)))
}

/// Asserts every produced record was delivered at least once.
pub fn assert_nothing_lost(deliveries: &[Delivered], produced: &[Keyed]) {
    let seen: BTreeSet<&Keyed> = deliveries.iter().filter_map(|d| d.keyed.as_ref()).collect();
    let missing: Vec<&Keyed> = produced.iter().filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} records lost, e.g. {:?}",
        missing.len(),
        produced.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}
