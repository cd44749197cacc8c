//! The attempt loop of a batch: sends the batch, settles each entry from the answer (a
//! non-2xx applies to every entry; a 2xx settles entries by their [`results`]), and sends the
//! entries still pending again after a backoff, until every entry is disposed of or the drain
//! abandons the rest. Each entry's disposition is reported on `settled` as soon as it is
//! known, so the committed offset follows the lowest unacknowledged entry whatever mix of
//! results arrives.
//!
//! Every entry still pending has been in every request of the batch so far, so one attempt
//! count serves them all, and `max_attempts` and the failure policy apply per entry as for a
//! single record. An entry answered `DROP` is the receiver's decision: it goes to the
//! dead-letter topic under `on_failure: dead_letter`, and is dropped otherwise (also under
//! `block`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use super::policy::{self, Decision};
use super::results::{self, EntryStatus, Results};
use super::retry::{AttemptOutcome, EntryResult};
use super::{Deliverer, Disposition, Drain, OnFailure, Transport};
use crate::format::BatchEncoder;
use crate::ops::events::{self, Outcome};
use crate::record::Record;

/// Where a batch reports each entry's offset and disposition, once per entry.
pub type Settled = UnboundedSender<(i64, Disposition)>;

impl<T: Transport> Deliverer<T> {
    /// Delivers `records` (one partition, offset order), whose first request body is `body`.
    pub async fn deliver_batch(
        self: Arc<Self>,
        records: Vec<Record>,
        body: Bytes,
        drain: Drain,
        settled: Settled,
    ) {
        let Some(encoder) = self.template.batch_encoder() else {
            // Not reached: batches are made only when batching is on. Waiting for the drain
            // is the choice that loses nothing.
            drain.stop.cancelled().await;
            settle_all(&settled, &records, Disposition::Abandoned);
            return;
        };
        let mut pending = records;
        let mut first_body = Some(body);
        let mut attempts = 0u32;
        loop {
            if attempts > 0 && drain.stop.is_cancelled() {
                settle_all(&settled, &pending, Disposition::Abandoned);
                return;
            }
            attempts += 1;
            let body = first_body.take().unwrap_or_else(|| encoder.body(&pending));
            let prepared = self.template.prepare_batch(&pending, body);
            let build = || self.template.request(&prepared, SystemTime::now());
            let records = u32::try_from(pending.len()).unwrap_or(u32::MAX);
            let Some(sent) = self.send_attempt(build, records, true, &drain).await else {
                settle_all(&settled, &pending, Disposition::Abandoned);
                return;
            };
            let (outcome, answer) = (sent.outcome, sent.body);
            let topic = pending.first().map_or("", |record| &*record.topic);
            events::attempt_finished(&self.metrics, topic, outcome.class(), sent.took);

            let outcomes = entry_outcomes(encoder, &pending, outcome, &answer);
            let mut delivered = events::Disposed::new(&self.metrics, topic, Outcome::Delivered);
            // The worker is gone only when its partition was dropped: nothing to report to.
            let mut acknowledge = |record: &Record| {
                delivered.add(record);
                let _ = settled.send((record.offset, Disposition::Delivered));
            };
            let unit = (self.jitter)();
            let mut still_pending = Vec::new();
            let mut wait: Option<(std::time::Duration, bool, String)> = None;
            for (record, outcome) in pending.into_iter().zip(outcomes) {
                let Some(outcome) = outcome else {
                    acknowledge(&record);
                    continue;
                };
                let decision = policy::decide(
                    &self.retry,
                    self.on_failure.kind(),
                    &outcome,
                    attempts,
                    SystemTime::now(),
                    unit,
                );
                match decision {
                    Decision::Ack => acknowledge(&record),
                    Decision::Drop => {
                        let error = outcome.describe();
                        events::record_disposed(
                            &self.metrics,
                            &record,
                            Outcome::Dropped,
                            attempts,
                            Some(&error),
                            None,
                        );
                        let _ = settled.send((record.offset, Disposition::Dropped));
                    }
                    Decision::DeadLetter => {
                        let disposition = match &self.on_failure {
                            OnFailure::DeadLetter(sink) => {
                                self.dead_letter(sink.as_ref(), &record, &outcome, attempts, &drain)
                                    .await
                            }
                            // Not reached: decide() answers DeadLetter only for that policy.
                            OnFailure::Block | OnFailure::Drop => Disposition::Abandoned,
                        };
                        let _ = settled.send((record.offset, disposition));
                    }
                    Decision::Wait { delay, blocking } => {
                        if wait.as_ref().is_none_or(|(longest, _, _)| delay > *longest) {
                            wait = Some((delay, blocking, outcome.describe()));
                        }
                        still_pending.push(record);
                    }
                }
            }
            pending = still_pending;
            let (Some(first), Some((delay, blocking, error))) = (pending.first(), wait) else {
                return;
            };
            events::batch_retry_scheduled(
                &self.metrics,
                first,
                pending.len(),
                attempts,
                &error,
                delay,
                blocking,
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = drain.stop.cancelled() => {
                    settle_all(&settled, &pending, Disposition::Abandoned);
                    return;
                }
            }
        }
    }
}

fn settle_all(settled: &Settled, records: &[Record], disposition: Disposition) {
    for record in records {
        let _ = settled.send((record.offset, disposition));
    }
}

/// Each pending entry's outcome of one request (`outcome`, and `answer`, the body of a 2xx):
/// `None` when acknowledged, one per entry of `pending`, in order. Public for the `answers`
/// fuzz target.
pub fn entry_outcomes(
    encoder: &BatchEncoder,
    pending: &[Record],
    outcome: AttemptOutcome,
    answer: &[u8],
) -> Vec<Option<AttemptOutcome>> {
    let status = match outcome {
        AttemptOutcome::Status { status, .. } if (200..300).contains(&status) => status,
        // Not a 2xx: the whole batch shares the outcome.
        other => return vec![Some(other); pending.len()],
    };
    let list = match results::parse(answer) {
        Results::All => return vec![None; pending.len()],
        Results::Invalid(reason) => {
            return vec![Some(AttemptOutcome::BadResults { status, reason }); pending.len()]
        }
        Results::PerEntry(list) => list,
    };
    // The last result given for an id wins.
    let by_id: HashMap<&str, EntryStatus> = list
        .iter()
        .map(|(id, result)| (id.as_str(), *result))
        .collect();
    pending
        .iter()
        .map(|record| {
            let result = encoder
                .entry_ids(record)
                .iter()
                .find_map(|id| by_id.get(id.as_str()).copied());
            let result = match result {
                Some(EntryStatus::Success) => return None,
                Some(EntryStatus::Retry) => EntryResult::Retry,
                Some(EntryStatus::Drop) => EntryResult::Drop,
                None => EntryResult::Missing,
            };
            Some(AttemptOutcome::Entry { status, result })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The batch loop driven by a scripted transport under paused time.

    use std::time::Duration;

    use serde_json::Value;
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::BatchConfig;
    use crate::delivery::fakes::{batch_deliverer, counter, status, Scripted, Sink};

    fn records(offsets: std::ops::Range<i64>) -> Vec<Record> {
        offsets
            .map(|offset| Record {
                topic: Arc::from("t"),
                partition: 0,
                offset,
                ..Record::example()
            })
            .collect()
    }

    fn deliverer(
        transport: Scripted,
        max_attempts: u32,
        on_failure: OnFailure,
    ) -> Arc<Deliverer<Scripted>> {
        batch_deliverer(
            transport,
            max_attempts,
            on_failure,
            Some(BatchConfig::default()),
        )
    }

    /// Runs the batch to the end; every entry's disposition by offset, in settle order.
    async fn run(
        deliverer: &Arc<Deliverer<Scripted>>,
        records: Vec<Record>,
        drain: Drain,
    ) -> Vec<(i64, Disposition)> {
        let encoder = deliverer.template.batch_encoder().unwrap();
        let body = encoder.body(&records);
        let (sender, mut receiver) = mpsc::unbounded_channel();
        deliverer
            .clone()
            .deliver_batch(records, body, drain, sender)
            .await;
        let mut settled = Vec::new();
        while let Ok(pair) = receiver.try_recv() {
            settled.push(pair);
        }
        settled
    }

    /// The offsets of each request's entries.
    fn sent_offsets(deliverer: &Deliverer<Scripted>) -> Vec<Vec<i64>> {
        deliverer
            .transport
            .bodies()
            .iter()
            .map(|body| {
                let entries: Vec<Value> = serde_json::from_slice(body).unwrap();
                entries
                    .iter()
                    .map(|entry| entry["offset"].as_i64().unwrap())
                    .collect()
            })
            .collect()
    }

    fn sorted(mut settled: Vec<(i64, Disposition)>) -> Vec<(i64, Disposition)> {
        settled.sort_by_key(|(offset, _)| *offset);
        settled
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_2xx_acknowledges_every_entry() {
        let deliverer = deliverer(Scripted::new(vec![status(204)]), 0, OnFailure::Block);
        let settled = run(&deliverer, records(0..3), Drain::default()).await;
        assert_eq!(
            settled,
            vec![
                (0, Disposition::Delivered),
                (1, Disposition::Delivered),
                (2, Disposition::Delivered)
            ]
        );
        assert_eq!(sent_offsets(&deliverer), vec![vec![0, 1, 2]]);
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_deliveries_total{outcome="success",topic="t"}"#
            ),
            3
        );
    }

    #[tokio::test(start_paused = true)]
    async fn per_entry_results_settle_each_entry() {
        let first = r#"{"statuses":[{"entryId":"t-0-1","status":"SUCCESS"},
            {"entryId":"t-0-2","status":"RETRY"},{"entryId":"t-0-3","status":"DROP"},
            {"entryId":"t-0-5","status":"SUCCESS"},{"entryId":"other-0-9","status":"DROP"}]}"#;
        let deliverer = deliverer(
            Scripted::with_bodies(vec![(status(200), first), (status(200), "")]),
            0,
            OnFailure::Block,
        );
        let settled = run(&deliverer, records(1..6), Drain::default()).await;
        // Acknowledged entries are settled at once, the retried ones after the second answer.
        assert_eq!(
            settled,
            vec![
                (1, Disposition::Delivered),
                (3, Disposition::Dropped),
                (5, Disposition::Delivered),
                (2, Disposition::Delivered),
                (4, Disposition::Delivered),
            ]
        );
        // RETRY and the missing entry 4 go out again, nothing else.
        assert_eq!(
            sent_offsets(&deliverer),
            vec![vec![1, 2, 3, 4, 5], vec![2, 4]]
        );
        let sent = deliverer.transport.sent();
        assert_eq!(sent[1] - sent[0], Duration::from_millis(50));
        assert_eq!(
            counter(&deliverer, r#"kws_delivery_retries_total{topic="t"}"#),
            2
        );
        assert_eq!(
            counter(
                &deliverer,
                r#"kws_deliveries_total{outcome="dropped",topic="t"}"#
            ),
            1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_batch_failure_honours_retry_after() {
        let busy = AttemptOutcome::Status {
            status: 503,
            retry_after: Some("7".into()),
        };
        let deliverer = deliverer(Scripted::new(vec![busy, status(200)]), 0, OnFailure::Block);
        let settled = run(&deliverer, records(0..4), Drain::default()).await;
        assert_eq!(settled.len(), 4);
        assert!(settled
            .iter()
            .all(|(_, disposition)| *disposition == Disposition::Delivered));
        let sent = deliverer.transport.sent();
        assert_eq!(sent[1] - sent[0], Duration::from_secs(7));
        assert_eq!(sent_offsets(&deliverer), vec![vec![0, 1, 2, 3]; 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_batch_dead_letters_every_entry() {
        let sink = Arc::new(Sink::default());
        let deliverer = deliverer(
            Scripted::new(vec![status(400)]),
            0,
            OnFailure::DeadLetter(sink.clone()),
        );
        let settled = run(&deliverer, records(0..3), Drain::default()).await;
        assert_eq!(
            sorted(settled),
            vec![
                (0, Disposition::DeadLettered),
                (1, Disposition::DeadLettered),
                (2, Disposition::DeadLettered)
            ]
        );
        let stored = sink.stored.lock().unwrap().clone();
        assert_eq!(
            stored,
            (0..3)
                .map(|offset| (offset, 1, "HTTP 400".to_string()))
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn receiver_drops_go_to_the_dead_letter_topic_when_there_is_one() {
        let answer = r#"{"statuses":[{"entryId":"t-0-0","status":"DROP"},
            {"entryId":"t-0-1","status":"SUCCESS"}]}"#;
        let sink = Arc::new(Sink::default());
        let deliverer = deliverer(
            Scripted::with_bodies(vec![(status(200), answer)]),
            0,
            OnFailure::DeadLetter(sink.clone()),
        );
        let settled = run(&deliverer, records(0..2), Drain::default()).await;
        assert_eq!(
            sorted(settled),
            vec![(0, Disposition::DeadLettered), (1, Disposition::Delivered)]
        );
        assert_eq!(
            sink.stored.lock().unwrap()[0],
            (0, 1, "HTTP 200, entry result DROP".to_string())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_attempts_apply_per_entry() {
        let answer = r#"{"statuses":[{"entryId":"t-0-0","status":"RETRY"},
            {"entryId":"t-0-1","status":"SUCCESS"}]}"#;
        let deliverer = deliverer(
            Scripted::with_bodies(vec![(status(200), answer)]),
            2,
            OnFailure::Drop,
        );
        let settled = run(&deliverer, records(0..2), Drain::default()).await;
        assert_eq!(
            settled,
            vec![(1, Disposition::Delivered), (0, Disposition::Dropped)]
        );
        assert_eq!(sent_offsets(&deliverer), vec![vec![0, 1], vec![0]]);
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_results_retry_the_whole_batch() {
        let deliverer = deliverer(
            Scripted::with_bodies(vec![
                (status(200), r#"{"statuses":"fine"}"#),
                (status(200), ""),
            ]),
            0,
            OnFailure::Block,
        );
        let settled = run(&deliverer, records(0..2), Drain::default()).await;
        assert_eq!(settled.len(), 2);
        assert_eq!(sent_offsets(&deliverer), vec![vec![0, 1], vec![0, 1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_abandons_the_pending_entries_only() {
        let answer = r#"{"statuses":[{"entryId":"t-0-0","status":"SUCCESS"}]}"#;
        let deliverer = deliverer(
            Scripted::with_bodies(vec![(status(200), answer)]),
            0,
            OnFailure::Block,
        );
        let drain = Drain::default();
        let stop = drain.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            stop.cancel();
        });
        let settled = run(&deliverer, records(0..3), drain).await;
        assert_eq!(
            settled,
            vec![
                (0, Disposition::Delivered),
                (1, Disposition::Abandoned),
                (2, Disposition::Abandoned)
            ]
        );
    }
}
