//! The attempt loop: sends a record until it is disposed of (acknowledged by the endpoint,
//! dead-lettered or dropped by the failure policy) or abandoned by a drain. What to do after
//! each attempt is [`policy::decide`]; this file only sends, sleeps and reports.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;

use super::flow::Flow;
use super::policy::{self, Decision};
use super::retry::{self, AttemptOutcome};
use super::{DeadLetterSink, Disposition, Drain, HttpClient, OnFailure, Transport};
use crate::config::RetryConfig;
use crate::format::RequestTemplate;
use crate::ops::events::{self, Outcome};
use crate::ops::Metrics;
use crate::record::Record;

/// Everything needed to deliver records, shared by every partition worker.
pub struct Deliverer<T = HttpClient> {
    pub transport: T,
    pub template: RequestTemplate,
    /// Limit of one attempt (request and response body).
    pub timeout: Duration,
    pub retry: RetryConfig,
    pub on_failure: OnFailure,
    pub metrics: Metrics,
    /// The backoff jitter's randomness, a value in [0, 1) (injected so tests can pin it).
    pub jitter: fn() -> f64,
    /// The shared concurrency and rate limits every attempt passes through.
    pub flow: Flow,
}

/// Uniform randomness for the full-jitter backoff.
pub fn random_jitter() -> f64 {
    rand::thread_rng().gen()
}

impl<T: Transport> Deliverer<T> {
    /// Runs attempts until the record is acknowledged or the drain abandons it.
    pub async fn deliver(self: Arc<Self>, record: Record, drain: Drain) -> Disposition {
        // The first attempt moves the prepared parts into its request; a retry (rare)
        // prepares them again from the record, which gives the same headers and body.
        let mut prepared = Some(self.template.prepare(&record));
        let mut attempts = 0u32;
        loop {
            if attempts > 0 && drain.stop.is_cancelled() {
                return Disposition::Abandoned;
            }
            attempts += 1;
            // Built per attempt, when it is sent: a signature carries the time of its attempt.
            let build = || {
                let parts = prepared
                    .take()
                    .unwrap_or_else(|| self.template.prepare(&record));
                self.template.into_request(parts, SystemTime::now())
            };
            let Some(sent) = self.send_attempt(build, 1, false, &drain).await else {
                return Disposition::Abandoned;
            };
            let outcome = sent.outcome;
            events::attempt_finished(&self.metrics, &record.topic, outcome.class(), sent.took);
            let decision = policy::decide(
                &self.retry,
                self.on_failure.kind(),
                &outcome,
                attempts,
                SystemTime::now(),
                (self.jitter)(),
            );
            match decision {
                Decision::Ack => {
                    events::record_timing(&record, sent.took);
                    events::record_disposed(
                        &self.metrics,
                        &record,
                        Outcome::Delivered,
                        attempts,
                        None,
                        None,
                    );
                    return Disposition::Delivered;
                }
                Decision::Drop => {
                    events::record_disposed(
                        &self.metrics,
                        &record,
                        Outcome::Dropped,
                        attempts,
                        Some(&outcome.describe()),
                        None,
                    );
                    return Disposition::Dropped;
                }
                Decision::DeadLetter => match &self.on_failure {
                    OnFailure::DeadLetter(sink) => {
                        return self
                            .dead_letter(sink.as_ref(), &record, &outcome, attempts, &drain)
                            .await;
                    }
                    // Not reached: decide() answers DeadLetter only for that policy. Waiting
                    // for the drain is the choice that loses nothing.
                    OnFailure::Block | OnFailure::Drop => {
                        drain.stop.cancelled().await;
                        return Disposition::Abandoned;
                    }
                },
                Decision::Wait { delay, blocking } => {
                    events::retry_scheduled(
                        &self.metrics,
                        &record,
                        attempts,
                        &outcome.describe(),
                        delay,
                        blocking,
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = drain.stop.cancelled() => return Disposition::Abandoned,
                    }
                }
            }
        }
    }

    /// Writes the record to the dead-letter sink until it is stored (then it counts as
    /// acknowledged) or the drain abandons it; write failures back off like attempts.
    pub(super) async fn dead_letter(
        &self,
        sink: &dyn DeadLetterSink,
        record: &Record,
        outcome: &AttemptOutcome,
        attempts: u32,
        drain: &Drain,
    ) -> Disposition {
        let mut failures = 0u32;
        loop {
            let result = tokio::select! {
                result = sink.write(record, outcome, attempts) => result,
                _ = drain.abandon.cancelled() => return Disposition::Abandoned,
            };
            match result {
                Ok(()) => {
                    events::record_disposed(
                        &self.metrics,
                        record,
                        Outcome::DeadLettered,
                        attempts,
                        Some(&outcome.describe()),
                        Some(sink.topic()),
                    );
                    return Disposition::DeadLettered;
                }
                Err(error) => {
                    failures += 1;
                    let delay = retry::next_delay(&self.retry, failures, None, (self.jitter)());
                    events::dead_letter_failed(&self.metrics, record, &error, delay);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = drain.stop.cancelled() => return Disposition::Abandoned,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The loop driven by a scripted transport under paused time: retry counts, `Retry-After`,
    //! `max_attempts`, each failure policy, and drains.

    use super::*;
    use std::sync::Mutex;

    use crate::delivery::fakes::{counter, deliverer, status, Scripted, Sink};

    fn record() -> Record {
        Record {
            topic: Arc::from("t"),
            partition: 0,
            offset: 7,
            timestamp_ms: None,
            key: None,
            ..Record::example()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_with_growing_backoff() {
        let deliverer = deliverer(
            Scripted::new(vec![status(503), status(500), status(200)]),
            0,
            OnFailure::Block,
        );
        let disposition = deliverer.clone().deliver(record(), Drain::default()).await;
        assert_eq!(disposition, Disposition::Delivered);
        let sent = deliverer.transport.sent();
        assert_eq!(sent.len(), 3);
        // Jitter pinned at 0.5: half of 100 ms, then half of 200 ms.
        assert_eq!(sent[1] - sent[0], Duration::from_millis(50));
        assert_eq!(sent[2] - sent[1], Duration::from_millis(100));
        assert_eq!(
            counter(&deliverer, r#"kws_delivery_retries_total{topic="t"}"#),
            2
        );
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_delivery_attempts_total{class="5xx",topic="t"}"#
            ),
            2
        );
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_deliveries_total{outcome="success",topic="t"}"#
            ),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after() {
        let deliverer = deliverer(
            Scripted::new(vec![
                AttemptOutcome::Status {
                    status: 429,
                    retry_after: Some("7".into()),
                },
                status(204),
            ]),
            0,
            OnFailure::Block,
        );
        let disposition = deliverer.clone().deliver(record(), Drain::default()).await;
        assert_eq!(disposition, Disposition::Delivered);
        let sent = deliverer.transport.sent();
        assert_eq!(sent[1] - sent[0], Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn drops_after_max_attempts() {
        let deliverer = deliverer(Scripted::new(vec![status(500)]), 3, OnFailure::Drop);
        let disposition = deliverer.clone().deliver(record(), Drain::default()).await;
        assert_eq!(disposition, Disposition::Dropped);
        assert_eq!(deliverer.transport.sent().len(), 3);
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_deliveries_total{outcome="dropped",topic="t"}"#
            ),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dead_letters_a_non_retryable_answer_once_the_sink_stores_it() {
        let sink = Arc::new(Sink {
            failures: Mutex::new(2),
            ..Sink::default()
        });
        let deliverer = deliverer(
            Scripted::new(vec![status(400)]),
            0,
            OnFailure::DeadLetter(sink.clone()),
        );
        let disposition = deliverer.clone().deliver(record(), Drain::default()).await;
        assert_eq!(disposition, Disposition::DeadLettered);
        assert_eq!(deliverer.transport.sent().len(), 1, "400 is not retried");
        assert_eq!(
            *sink.stored.lock().unwrap(),
            vec![(7, 1, "HTTP 400".to_string())]
        );
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_dead_letter_writes_total{result="error"}"#
            ),
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn block_keeps_retrying_until_the_drain_stops_it() {
        let deliverer = deliverer(Scripted::new(vec![status(400)]), 2, OnFailure::Block);
        let drain = Drain::default();
        let delivery = tokio::spawn(deliverer.clone().deliver(record(), drain.clone()));
        while deliverer.transport.sent().len() < 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drain.stop.cancel();
        assert_eq!(delivery.await.unwrap(), Disposition::Abandoned);
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_deliveries_total{outcome="success",topic="t"}"#
            ),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn abandon_cuts_a_hanging_attempt() {
        let mut transport = Scripted::new(vec![status(200)]);
        transport.hang = true;
        let deliverer = deliverer(transport, 0, OnFailure::Block);
        let drain = Drain::default();
        let delivery = tokio::spawn(deliverer.clone().deliver(record(), drain.clone()));
        while deliverer.transport.sent().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drain.stop.cancel();
        drain.abandon.cancel();
        assert_eq!(delivery.await.unwrap(), Disposition::Abandoned);
    }
}
