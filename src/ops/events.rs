//! One function per thing that happens, writing its log line and its metrics together, so a
//! log and a metric never disagree. Label values come from the enums below (bounded sets).
//! The worker's own log lines run inside its `partition` span (`topic`, `partition`); the
//! per-record events below name `topic`, `partition` and `offset` themselves.

use std::time::Duration;

use prometheus::{Gauge, Histogram, IntCounter, IntGauge};
use tracing::{debug, error, info, warn};

use super::metrics::Metrics;
use crate::record::Record;

/// The class of an attempt's result, the `class` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Informational,
    Success,
    Redirect,
    ClientError,
    ServerError,
    Timeout,
    ConnectionError,
}

impl StatusClass {
    pub fn of_status(status: u16) -> Self {
        match status {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirect,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::ConnectionError => "connection_error",
        }
    }
}

/// How a record was disposed of (acknowledged), the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    DeadLettered,
    Dropped,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Delivered => "success",
            Self::DeadLettered => "dead_lettered",
            Self::Dropped => "dropped",
        }
    }
}

/// A rebalance callback, the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceKind {
    Assign,
    Revoke,
    Lost,
    Error,
}

impl RebalanceKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::Revoke => "revoke",
            Self::Lost => "lost",
            Self::Error => "error",
        }
    }
}

/// The result of an offset commit, the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitResult {
    Ok,
    Error,
    /// A synchronous commit did not answer before the shutdown deadline.
    Timeout,
}

impl CommitResult {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}

/// One HTTP attempt finished (any result).
pub fn attempt_finished(metrics: &Metrics, topic: &str, class: StatusClass, took: Duration) {
    metrics
        .attempts
        .with_label_values(&[topic, class.label()])
        .inc();
    metrics
        .attempt_duration
        .with_label_values(&[topic])
        .observe(took.as_secs_f64());
}

/// Target of [`record_timing`]'s event, enabled by `log.level: info,kws::timing=trace`.
const TIMING_TARGET: &str = "kws::timing";

/// A record was acknowledged: where its time went, for finding what delays the slowest
/// records (issue 32). Off unless its target is enabled at trace; then one line per record,
/// and the log line's own time is when the answer came. `waited_us` runs from the worker
/// taking the record from its partition queue to the answer, `attempt_us` is the answered
/// attempt alone; the record's Kafka timestamp says when the broker appended it.
pub fn record_timing(record: &Record, attempt: Duration) {
    tracing::trace!(
        target: TIMING_TARGET,
        partition = record.partition,
        offset = record.offset,
        timestamp_ms = record.timestamp_ms.unwrap_or(-1),
        waited_us = record.received_at.elapsed().as_micros() as u64,
        attempt_us = attempt.as_micros() as u64,
        "Record acknowledged"
    );
}

/// Logs at warn when `attempts` is 1, 2, 4, 8, … (a long outage stays visible without
/// flooding the log), else at debug.
macro_rules! warn_on_doubling {
    ($attempts:expr, $($event:tt)+) => {
        if $attempts.is_power_of_two() {
            warn!($($event)+)
        } else {
            debug!($($event)+)
        }
    };
}

/// An attempt failed and the record will be tried again after `delay` (logged by
/// `warn_on_doubling!`).
pub fn retry_scheduled(
    metrics: &Metrics,
    record: &Record,
    attempts: u32,
    error: &str,
    delay: Duration,
    blocking: bool,
) {
    metrics.retries.with_label_values(&[&record.topic]).inc();
    let delay_ms = delay.as_millis() as u64;
    warn_on_doubling!(
        attempts,
        topic = %record.topic,
        route = metrics.route.as_deref(),
        partition = record.partition,
        offset = record.offset,
        attempts,
        error,
        delay_ms,
        blocking,
        "Delivery failed, retrying"
    );
}

/// A batch request's entries failed (the whole batch, or entries answered RETRY) and will be
/// sent again after `delay`: counted per entry like single retries, logged once per batch
/// (by `warn_on_doubling!`).
pub fn batch_retry_scheduled(
    metrics: &Metrics,
    first: &Record,
    entries: usize,
    attempts: u32,
    error: &str,
    delay: Duration,
    blocking: bool,
) {
    metrics
        .retries
        .with_label_values(&[&first.topic])
        .inc_by(entries as u64);
    let delay_ms = delay.as_millis() as u64;
    warn_on_doubling!(
        attempts,
        topic = %first.topic,
        route = metrics.route.as_deref(),
        partition = first.partition,
        first_offset = first.offset,
        entries,
        attempts,
        error,
        delay_ms,
        blocking,
        "Batch delivery failed for some entries, retrying them"
    );
}

/// A batch request is about to be sent for the first time.
pub fn batch_sent(metrics: &Metrics, records: usize, bytes: usize) {
    metrics.batch_records.observe(records as f64);
    metrics.batch_bytes.observe(bytes as f64);
}

/// The metrics of records of one topic disposed of the same way: counted, and their
/// end-to-end latency observed, with one label lookup and one clock read however many
/// records (a batch answer's delivered entries). The count is added on drop.
pub struct Disposed {
    deliveries: IntCounter,
    latency: Histogram,
    now_ms: Option<i64>,
    count: u64,
}

impl Disposed {
    pub fn new(metrics: &Metrics, topic: &str, outcome: Outcome) -> Self {
        Self {
            deliveries: metrics
                .deliveries
                .with_label_values(&[topic, outcome.label()]),
            latency: metrics.end_to_end_latency.with_label_values(&[topic]),
            now_ms: None,
            count: 0,
        }
    }

    pub fn add(&mut self, record: &Record) {
        self.count += 1;
        if let Some(timestamp) = record.timestamp_ms {
            let now_ms = *self
                .now_ms
                .get_or_insert_with(|| unix_millis().unwrap_or(timestamp));
            self.latency
                .observe((now_ms - timestamp).max(0) as f64 / 1000.0);
        }
    }
}

impl Drop for Disposed {
    fn drop(&mut self) {
        self.deliveries.inc_by(self.count);
    }
}

fn unix_millis() -> Option<i64> {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .ok()
        .map(|since| since.as_millis() as i64)
}

/// A record was acknowledged: delivered, dead-lettered or dropped. `error` is the last
/// failure for the latter two; `dead_letter_topic` names where it went.
pub fn record_disposed(
    metrics: &Metrics,
    record: &Record,
    outcome: Outcome,
    attempts: u32,
    error: Option<&str>,
    dead_letter_topic: Option<&str>,
) {
    Disposed::new(metrics, &record.topic, outcome).add(record);
    let error = error.unwrap_or("");
    match outcome {
        Outcome::Delivered => {}
        Outcome::DeadLettered => {
            metrics.dead_letter_writes.with_label_values(&["ok"]).inc();
            info!(
                topic = %record.topic,
                route = metrics.route.as_deref(),
                partition = record.partition,
                offset = record.offset,
                attempts,
                error,
                dead_letter_topic = dead_letter_topic.unwrap_or(""),
                "Dead-lettered record"
            );
        }
        Outcome::Dropped => error!(
            topic = %record.topic,
            route = metrics.route.as_deref(),
            partition = record.partition,
            offset = record.offset,
            attempts, error, "Dropped record after failed delivery (on_failure: drop)"
        ),
    }
}

/// Writing a record to the dead-letter topic failed; it is tried again after `delay`.
pub fn dead_letter_failed(metrics: &Metrics, record: &Record, error: &str, delay: Duration) {
    metrics
        .dead_letter_writes
        .with_label_values(&["error"])
        .inc();
    error!(
        topic = %record.topic,
        route = metrics.route.as_deref(),
        partition = record.partition,
        offset = record.offset,
        error,
        delay_ms = delay.as_millis() as u64,
        "Could not write to the dead-letter topic, retrying"
    );
}

/// A delivery of `records` records (one, or a batch) started or finished (the in-flight
/// gauge).
pub fn delivery_started(metrics: &Metrics, records: usize) {
    metrics.in_flight.add(records as i64);
}

pub fn delivery_finished(metrics: &Metrics, records: usize) {
    metrics.in_flight.sub(records as i64);
}

/// The group assigned partitions to this member.
pub fn partitions_assigned(
    metrics: &Metrics,
    group_id: &str,
    instance_id: &str,
    gained: &[String],
    owned: &[String],
) {
    metrics
        .rebalances
        .with_label_values(&[RebalanceKind::Assign.label()])
        .inc();
    info!(group_id, instance_id, gained = ?gained, owned = ?owned, "Partitions assigned");
}

/// Partitions are being revoked (or were lost); their workers drain next.
pub fn partitions_revoked(
    metrics: &Metrics,
    group_id: &str,
    instance_id: &str,
    revoked: &[String],
    lost: bool,
) {
    let kind = if lost {
        RebalanceKind::Lost
    } else {
        RebalanceKind::Revoke
    };
    metrics.rebalances.with_label_values(&[kind.label()]).inc();
    info!(group_id, instance_id, revoked = ?revoked, lost, "Partitions being revoked; draining");
}

/// Revoked partitions were drained (and committed unless lost) and are released.
pub fn partitions_released(
    metrics: &Metrics,
    group_id: &str,
    revoked: &[String],
    owned: &[String],
    took: Duration,
) {
    metrics.rebalance_drain.observe(took.as_secs_f64());
    info!(
        group_id,
        revoked = ?revoked,
        drain_ms = took.as_millis() as u64,
        owned = ?owned,
        "Partitions released"
    );
}

/// librdkafka reported a rebalance error.
pub fn rebalance_failed(metrics: &Metrics, error: &str) {
    metrics
        .rebalances
        .with_label_values(&[RebalanceKind::Error.label()])
        .inc();
    error!(error, "Rebalance error");
}

/// An offset commit finished (automatic, revoke or shutdown). "Nothing new to commit" is not
/// an event.
pub fn commit_finished(metrics: &Metrics, result: CommitResult, error: Option<&str>) {
    metrics.commits.with_label_values(&[result.label()]).inc();
    match result {
        CommitResult::Ok => {}
        CommitResult::Error => warn!(
            error = error.unwrap_or(""),
            "Offset commit failed; a later commit or the next owner covers it (nothing unacknowledged is ever committed)"
        ),
        CommitResult::Timeout => warn!(
            "Offset commit did not answer before the shutdown deadline; uncommitted records will be redelivered"
        ),
    }
}

/// The consumer resumed past offsets the broker no longer had (its fetch position was out of
/// range: retention or `DeleteRecords` removed them before they were consumed, and
/// `auto_offset_reset` moved it). Offsets `from..to` (`to` exclusive: where delivery
/// resumed) were never delivered: data loss the user must see.
pub fn offsets_skipped(metrics: &Metrics, topic: &str, partition: i32, from: i64, to: i64) {
    let skipped = (to - from).max(0);
    metrics
        .offsets_skipped
        .with_label_values(&[topic])
        .inc_by(skipped as u64);
    warn!(
        topic,
        partition,
        from_offset = from,
        to_offset = to,
        skipped,
        "Records skipped: offset out of range (deleted by retention before they were consumed)"
    );
}

/// A partition worker started or stopped (the assigned-partitions gauge).
pub fn partition_started(metrics: &Metrics) {
    metrics.assigned_partitions.inc();
}

pub fn partition_stopped(metrics: &Metrics) {
    metrics.assigned_partitions.dec();
}

/// Fetching was paused for `count` partitions (shutdown).
pub fn partitions_paused(metrics: &Metrics, count: usize) {
    metrics
        .paused_partitions
        .with_label_values(&[PauseReason::Shutdown.label()])
        .set(count as i64);
}

/// librdkafka's statistics gave a partition's lag (high watermark − stored offset).
pub fn lag_observed(metrics: &Metrics, topic: &str, partition: i32, lag: i64) {
    metrics
        .consumer_lag
        .with_label_values(&[topic, &partition.to_string()])
        .set(lag);
}

/// The same, summed over the topic's assigned partitions (per-topic series).
pub fn topic_lag_observed(metrics: &Metrics, topic: &str, lag: i64) {
    metrics
        .consumer_lag
        .with_label_values(&[topic, crate::ops::metrics::ALL_PARTITIONS])
        .set(lag);
}

/// The shutdown drain finished (or hit its limit).
pub fn shutdown_drained(metrics: &Metrics, partitions: usize, took: Duration) {
    metrics.shutdown_drain.observe(took.as_secs_f64());
    info!(
        partitions,
        drain_ms = took.as_millis() as u64,
        "Drained in-flight deliveries"
    );
}

/// Metric handles of one partition, resolved once when its worker starts (the per-record
/// path does no label lookup).
pub struct PartitionMetrics {
    metrics: Metrics,
    topic: String,
    /// The partition number as a label value (`all` with per-topic series).
    partition: String,
    number: i32,
    received: IntCounter,
    /// The partition's own age gauge; `None` with per-topic series (see [`Metrics::heads`]).
    oldest_unacked_age: Option<Gauge>,
    /// The partition's own paused gauge, or its topic's count with per-topic series.
    paused: IntGauge,
    is_paused: std::sync::atomic::AtomicBool,
}

impl PartitionMetrics {
    pub fn new(metrics: &Metrics, topic: &str, number: i32) -> Self {
        let partition = metrics.partition_label(number);
        let oldest_unacked_age = if metrics.per_partition {
            Some(
                metrics
                    .oldest_unacked_age
                    .with_label_values(&[topic, &partition]),
            )
        } else {
            metrics
                .lock_heads()
                .entry(topic.to_string())
                .or_default()
                .insert(number, 0.0);
            None
        };
        Self {
            received: metrics.records_received.with_label_values(&[topic]),
            oldest_unacked_age,
            paused: metrics
                .partition_paused
                .with_label_values(&[topic, &partition]),
            is_paused: std::sync::atomic::AtomicBool::new(false),
            metrics: metrics.clone(),
            topic: topic.to_string(),
            partition,
            number,
        }
    }

    /// A record was taken from the partition queue.
    pub fn record_received(&self) {
        self.received.inc();
    }

    /// The head-of-line signal: how long the oldest unacknowledged record has waited.
    pub fn head_of_line(&self, age: Duration) {
        match &self.oldest_unacked_age {
            Some(gauge) => gauge.set(age.as_secs_f64()),
            None => {
                if let Some(partitions) = self.metrics.lock_heads().get_mut(&self.topic) {
                    partitions.insert(self.number, age.as_secs_f64());
                }
            }
        }
    }

    /// The partition left this member: drop its per-partition series (with per-topic series,
    /// the topic's when it was the topic's last partition here).
    pub fn forget(&self) {
        if self.is_paused.load(std::sync::atomic::Ordering::Relaxed) {
            // Left paused for shutdown (the consumer closes paused): no longer this worker's.
            self.metrics
                .paused_partitions
                .with_label_values(&[PauseReason::HeadOfLine.label()])
                .dec();
            if !self.metrics.per_partition {
                self.paused.dec();
            }
        }
        if !self.metrics.per_partition {
            let mut heads = self.metrics.lock_heads();
            let last = heads.get_mut(&self.topic).is_none_or(|partitions| {
                partitions.remove(&self.number);
                partitions.is_empty()
            });
            if !last {
                return;
            }
            heads.remove(&self.topic);
        }
        let labels = [self.topic.as_str(), self.partition.as_str()];
        let _ = self.metrics.consumer_lag.remove_label_values(&labels);
        let _ = self.metrics.oldest_unacked_age.remove_label_values(&labels);
        let _ = self.metrics.partition_paused.remove_label_values(&labels);
    }

    /// Fetching paused: the oldest unacknowledged record (`head`) waited `waited` with no
    /// acknowledgement in the partition.
    pub fn fetch_paused(&self, head: i64, waited: Duration, result: Result<(), &str>) {
        match result {
            Ok(()) => {
                self.is_paused
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                self.paused.inc();
                self.metrics
                    .paused_partitions
                    .with_label_values(&[PauseReason::HeadOfLine.label()])
                    .inc();
                warn!(
                    topic = %self.topic,
                    partition = %self.partition,
                    head,
                    waited_ms = waited.as_millis() as u64,
                    "Paused fetching: the oldest unacknowledged record is waiting"
                );
            }
            Err(error) => {
                warn!(topic = %self.topic, partition = %self.partition, %error, "Could not pause fetching")
            }
        }
    }

    /// Fetching resumed (the partition moved, or its worker stops).
    pub fn fetch_resumed(&self, result: Result<(), &str>) {
        if self.is_paused.load(std::sync::atomic::Ordering::Relaxed) {
            self.is_paused
                .store(false, std::sync::atomic::Ordering::Relaxed);
            self.paused.dec();
            self.metrics
                .paused_partitions
                .with_label_values(&[PauseReason::HeadOfLine.label()])
                .dec();
        }
        match result {
            Ok(()) => info!(topic = %self.topic, partition = %self.partition, "Resumed fetching"),
            Err(error) => {
                warn!(topic = %self.topic, partition = %self.partition, %error, "Could not resume fetching")
            }
        }
    }
}

/// Why fetching is paused, the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    Shutdown,
    HeadOfLine,
}

impl PauseReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Shutdown => "shutdown",
            Self::HeadOfLine => "head_of_line",
        }
    }
}

/// How the adaptive concurrency limit moved, for [`concurrency_limit_changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitChange {
    Increased,
    /// Latency rose above tolerance (x0.9).
    Decreased,
    /// An overload answer (halved).
    Halved,
}

/// The shared concurrency limit is `limit` (set at start, and after each change). A halving is
/// logged at warn, a latency decrease at info, growth at debug: state changes only.
pub fn concurrency_limit_changed(metrics: &Metrics, limit: usize, change: Option<LimitChange>) {
    metrics.concurrency_limit.set(limit as i64);
    match change {
        None => {}
        Some(LimitChange::Increased) => debug!(limit, "Concurrency limit raised"),
        Some(LimitChange::Decreased) => {
            metrics
                .concurrency_decreases
                .with_label_values(&["latency"])
                .inc();
            info!(limit, "Concurrency limit lowered: endpoint latency rose")
        }
        Some(LimitChange::Halved) => {
            metrics
                .concurrency_decreases
                .with_label_values(&["overload"])
                .inc();
            warn!(
                limit,
                "Concurrency limit halved: the endpoint answered overloaded (429/503/504, timeout or connection error)"
            )
        }
    }
}

/// A request waits for a concurrency permit (`true`) or stopped waiting (`false`).
pub fn concurrency_waiting(metrics: &Metrics, waiting: bool) {
    if waiting {
        metrics.concurrency_waiting.inc();
    } else {
        metrics.concurrency_waiting.dec();
    }
}

/// A request waited `waited` for rate-limit tokens.
pub fn rate_limited(metrics: &Metrics, waited: Duration) {
    metrics.rate_limited_waits.inc();
    metrics
        .rate_limited_wait_seconds
        .inc_by(waited.as_secs_f64());
}

/// What was re-read after a change on disk, the `source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `delivery.tls` files (CA, client certificate and key).
    TlsFiles,
    /// `delivery.auth.bearer_token_file`.
    BearerTokenFile,
}

impl CredentialSource {
    pub fn label(self) -> &'static str {
        match self {
            Self::TlsFiles => "tls_files",
            Self::BearerTokenFile => "bearer_token_file",
        }
    }
}

/// Endpoint credential files changed and were re-read: `Ok` they are in use, `Err` (the
/// reason, which never quotes a file) the previous ones stay in use until the files change
/// again.
pub fn credentials_reloaded(metrics: &Metrics, source: CredentialSource, result: Result<(), &str>) {
    let label = if result.is_ok() { "ok" } else { "error" };
    metrics
        .credential_reloads
        .with_label_values(&[source.label(), label])
        .inc();
    match result {
        Ok(()) => info!(
            source = source.label(),
            "Reloaded endpoint credentials; later requests use them"
        ),
        Err(error) => warn!(
            source = source.label(),
            error, "Changed endpoint credentials cannot be used; keeping the previous ones"
        ),
    }
}

/// An OAuth2 token request finished. `Ok` carries the token's lifetime (if given); `Err` the
/// reason, which holds no secret.
pub fn oauth2_token_requested(
    metrics: &Metrics,
    token_url: &str,
    result: Result<Option<Duration>, &str>,
) {
    let label = if result.is_ok() { "ok" } else { "error" };
    metrics
        .oauth2_token_requests
        .with_label_values(&[label])
        .inc();
    match result {
        Ok(lifetime) => info!(
            token_url,
            expires_in_s = lifetime.map(|lifetime| lifetime.as_secs()),
            "Fetched an OAuth2 access token"
        ),
        Err(error) => warn!(token_url, error, "OAuth2 token request failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .collect()
    }

    #[test]
    fn per_topic_series_fold_the_partitions_of_a_topic() {
        let metrics = Metrics::new().per_topic();
        let zero = PartitionMetrics::new(&metrics, "orders", 0);
        let one = PartitionMetrics::new(&metrics, "orders", 1);
        zero.head_of_line(Duration::from_secs(2));
        one.head_of_line(Duration::from_secs(5));
        one.fetch_paused(7, Duration::from_secs(5), Ok(()));
        topic_lag_observed(&metrics, "orders", 40);
        let text = metrics.render();
        assert_eq!(
            series(&text, "kws_oldest_unacked_record_age_seconds"),
            ["kws_oldest_unacked_record_age_seconds{partition=\"all\",topic=\"orders\"} 5"]
        );
        assert_eq!(
            series(&text, "kws_partition_paused"),
            ["kws_partition_paused{partition=\"all\",topic=\"orders\"} 1"]
        );
        assert_eq!(
            series(&text, "kws_consumer_lag_records"),
            ["kws_consumer_lag_records{partition=\"all\",topic=\"orders\"} 40"]
        );
        one.fetch_resumed(Ok(()));
        one.forget();
        let text = metrics.render();
        assert_eq!(
            series(&text, "kws_oldest_unacked_record_age_seconds"),
            ["kws_oldest_unacked_record_age_seconds{partition=\"all\",topic=\"orders\"} 2"],
            "the other partition's age"
        );
        assert_eq!(
            series(&text, "kws_partition_paused"),
            ["kws_partition_paused{partition=\"all\",topic=\"orders\"} 0"]
        );
        zero.forget();
        let text = metrics.render();
        for name in [
            "kws_oldest_unacked_record_age_seconds",
            "kws_partition_paused",
            "kws_consumer_lag_records",
        ] {
            assert!(
                series(&text, name).is_empty(),
                "{name} after the last partition left"
            );
        }
    }

    #[test]
    fn per_partition_series_are_the_default() {
        let metrics = Metrics::new();
        let zero = PartitionMetrics::new(&metrics, "orders", 0);
        zero.head_of_line(Duration::from_secs(2));
        let text = metrics.render();
        assert_eq!(
            series(&text, "kws_oldest_unacked_record_age_seconds"),
            ["kws_oldest_unacked_record_age_seconds{partition=\"0\",topic=\"orders\"} 2"]
        );
        zero.forget();
        assert!(series(&metrics.render(), "kws_oldest_unacked_record_age_seconds").is_empty());
    }
}
