//! Delivers one record until it is disposed of: attempts with retry and backoff, then the
//! failure policy (block, dead-letter, drop). Each outcome writes its log line and its metric
//! together.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{FailurePolicy, RetryConfig};
use crate::dead_letter::DeadLetterProducer;
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use crate::record::Record;
use crate::request::RequestTemplate;
use crate::retry::{self, AttemptOutcome, Verdict};

/// How a record left the delivery loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The endpoint answered 2xx: acknowledged.
    Delivered,
    /// Written to the dead-letter topic and acknowledged by the broker: acknowledged.
    DeadLettered,
    /// Dropped by `on_failure: drop`: acknowledged.
    Dropped,
    /// Given up because the partition is draining: NOT acknowledged, never committed.
    Abandoned,
}

impl Disposition {
    pub fn is_acknowledged(self) -> bool {
        !matches!(self, Self::Abandoned)
    }
}

/// Signals from the partition's owner to its deliveries.
#[derive(Clone, Default)]
pub struct Drain {
    /// Start no new attempt and stop waiting in backoff.
    pub stop: CancellationToken,
    /// Cut the attempt in progress (the drain timeout passed).
    pub abandon: CancellationToken,
}

/// Everything needed to deliver records, shared by every partition worker.
pub struct Deliverer {
    pub client: HttpClient,
    pub template: RequestTemplate,
    pub timeout: Duration,
    pub retry: RetryConfig,
    pub on_failure: FailurePolicy,
    pub dead_letter: Option<DeadLetterProducer>,
    pub metrics: Metrics,
}

impl Deliverer {
    /// Runs attempts until the record is acknowledged or the drain abandons it.
    pub async fn deliver(self: Arc<Self>, record: Record, drain: Drain) -> Disposition {
        let mut attempts = 0u32;
        let topic = record.topic.clone();
        loop {
            if attempts > 0 && drain.stop.is_cancelled() {
                return Disposition::Abandoned;
            }
            attempts += 1;
            let started = Instant::now();
            let request = self.template.build(&record);
            let outcome = tokio::select! {
                outcome = self.client.send(request, self.timeout) => outcome,
                _ = drain.abandon.cancelled() => return Disposition::Abandoned,
            };
            self.metrics
                .attempts
                .with_label_values(&[&topic, outcome.class()])
                .inc();
            self.metrics
                .attempt_duration
                .with_label_values(&[&topic])
                .observe(started.elapsed().as_secs_f64());

            let verdict = retry::classify(&outcome, &self.retry.retryable_statuses);
            if verdict == Verdict::Success {
                self.record_acknowledged(&record);
                self.metrics
                    .deliveries
                    .with_label_values(&[&topic, "success"])
                    .inc();
                return Disposition::Delivered;
            }
            let exhausted = verdict == Verdict::Fail
                || !retry::attempts_left(self.retry.max_attempts, attempts);
            if exhausted {
                match self.on_failure {
                    FailurePolicy::Block => {}
                    FailurePolicy::Drop => {
                        error!(
                            topic = %topic, partition = record.partition, offset = record.offset,
                            attempts, error = %outcome.describe(),
                            "Dropped record after failed delivery (on_failure: drop)"
                        );
                        self.record_acknowledged(&record);
                        self.metrics
                            .deliveries
                            .with_label_values(&[&topic, "dropped"])
                            .inc();
                        return Disposition::Dropped;
                    }
                    FailurePolicy::DeadLetter => {
                        return self.dead_letter(&record, &outcome, attempts, &drain).await;
                    }
                }
            }
            let retry_after = match &outcome {
                AttemptOutcome::Status {
                    retry_after: Some(value),
                    ..
                } => retry::parse_retry_after(value, SystemTime::now()),
                _ => None,
            };
            let delay =
                retry::next_delay(&self.retry, attempts, retry_after, rand::thread_rng().gen());
            self.metrics.retries.with_label_values(&[&topic]).inc();
            // Warn on attempts 1, 2, 4, 8, …: a long outage stays visible without flooding.
            if attempts.is_power_of_two() {
                warn!(
                    topic = %topic, partition = record.partition, offset = record.offset, attempts,
                    error = %outcome.describe(), delay_ms = delay.as_millis() as u64, blocking = exhausted,
                    "Delivery failed, retrying"
                );
            } else {
                debug!(
                    topic = %topic, partition = record.partition, offset = record.offset, attempts,
                    error = %outcome.describe(), delay_ms = delay.as_millis() as u64,
                    "Delivery failed, retrying"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = drain.stop.cancelled() => return Disposition::Abandoned,
            }
        }
    }

    async fn dead_letter(
        &self,
        record: &Record,
        outcome: &AttemptOutcome,
        attempts: u32,
        drain: &Drain,
    ) -> Disposition {
        let Some(producer) = &self.dead_letter else {
            // Validation requires a topic for dead_letter; without a producer, blocking is the
            // only choice that loses nothing.
            error!("Dead-letter policy without a producer; blocking");
            drain.stop.cancelled().await;
            return Disposition::Abandoned;
        };
        let mut failures = 0u32;
        loop {
            let result = tokio::select! {
                result = producer.send(record, outcome, attempts) => result,
                _ = drain.abandon.cancelled() => return Disposition::Abandoned,
            };
            match result {
                Ok(()) => {
                    info!(
                        topic = %record.topic, partition = record.partition, offset = record.offset, attempts,
                        error = %outcome.describe(), dead_letter_topic = producer.topic(),
                        "Dead-lettered record"
                    );
                    self.metrics
                        .dead_letter_writes
                        .with_label_values(&["ok"])
                        .inc();
                    self.record_acknowledged(record);
                    self.metrics
                        .deliveries
                        .with_label_values(&[&record.topic, "dead_lettered"])
                        .inc();
                    return Disposition::DeadLettered;
                }
                Err(kafka_error) => {
                    failures += 1;
                    self.metrics
                        .dead_letter_writes
                        .with_label_values(&["error"])
                        .inc();
                    let delay =
                        retry::next_delay(&self.retry, failures, None, rand::thread_rng().gen());
                    error!(
                        topic = %record.topic, partition = record.partition, offset = record.offset,
                        error = %kafka_error, delay_ms = delay.as_millis() as u64,
                        "Could not write to the dead-letter topic, retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = drain.stop.cancelled() => return Disposition::Abandoned,
                    }
                }
            }
        }
    }

    fn record_acknowledged(&self, record: &Record) {
        if let Some(timestamp) = record.timestamp_ms {
            let now_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|since| since.as_millis() as i64)
                .unwrap_or(timestamp);
            let latency = (now_ms - timestamp).max(0) as f64 / 1000.0;
            self.metrics
                .end_to_end_latency
                .with_label_values(&[&record.topic])
                .observe(latency);
        }
    }
}
