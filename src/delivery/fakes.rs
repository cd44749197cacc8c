//! Test doubles of the delivery loop's two I/O edges: a scripted [`Transport`] and a
//! dead-letter sink that fails a given number of times; and a deliverer built on them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use super::{AttemptOutcome, BoxFuture, DeadLetterSink, Deliverer, OnFailure, Transport};
use crate::config::{BatchConfig, Config};
use crate::format::RequestTemplate;
use crate::ops::Metrics;
use crate::record::Record;

/// Answers attempts from a script (the last answer repeats), recording when each came and
/// the body it carried.
pub struct Scripted {
    answers: Mutex<VecDeque<(AttemptOutcome, Bytes)>>,
    sent: Mutex<Vec<tokio::time::Instant>>,
    bodies: Mutex<Vec<Bytes>>,
    pub hang: bool,
}

impl Scripted {
    pub fn new(answers: Vec<AttemptOutcome>) -> Self {
        Self::with_bodies(answers.into_iter().map(|outcome| (outcome, "")).collect())
    }

    /// Answers with a status and a response body (a batch's per-entry results).
    pub fn with_bodies(answers: Vec<(AttemptOutcome, &str)>) -> Self {
        Self {
            answers: Mutex::new(
                answers
                    .into_iter()
                    .map(|(outcome, body)| (outcome, Bytes::copy_from_slice(body.as_bytes())))
                    .collect(),
            ),
            sent: Mutex::new(Vec::new()),
            bodies: Mutex::new(Vec::new()),
            hang: false,
        }
    }

    pub fn sent(&self) -> Vec<tokio::time::Instant> {
        self.sent.lock().unwrap().clone()
    }

    /// The request bodies sent, in order.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.bodies.lock().unwrap().clone()
    }

    async fn answer(&self, request: Request<Full<Bytes>>) -> (AttemptOutcome, Bytes) {
        self.sent.lock().unwrap().push(tokio::time::Instant::now());
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        self.bodies.lock().unwrap().push(body);
        if self.hang {
            std::future::pending::<()>().await;
        }
        let mut answers = self.answers.lock().unwrap();
        match answers.len() {
            0 => panic!("no scripted answer"),
            1 => answers[0].clone(),
            _ => answers.pop_front().unwrap(),
        }
    }
}

impl Transport for Scripted {
    async fn send(&self, request: Request<Full<Bytes>>, _: Duration) -> AttemptOutcome {
        self.answer(request).await.0
    }

    async fn send_for_body(
        &self,
        request: Request<Full<Bytes>>,
        _: Duration,
    ) -> (AttemptOutcome, Bytes) {
        self.answer(request).await
    }
}

/// A dead-letter sink that fails `failures` times, then stores.
#[derive(Default)]
pub struct Sink {
    pub failures: Mutex<u32>,
    /// (offset, attempts, last error) of each stored record.
    pub stored: Mutex<Vec<(i64, u32, String)>>,
}

impl DeadLetterSink for Sink {
    fn topic(&self) -> &str {
        "dlq"
    }

    fn write<'a>(
        &'a self,
        record: &'a Record,
        last: &'a AttemptOutcome,
        attempts: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err("broker unavailable".into());
            }
            self.stored
                .lock()
                .unwrap()
                .push((record.offset, attempts, last.describe()));
            Ok(())
        })
    }
}

pub fn status(status: u16) -> AttemptOutcome {
    AttemptOutcome::Status {
        status,
        retry_after: None,
    }
}

pub fn deliverer(
    transport: Scripted,
    max_attempts: u32,
    on_failure: OnFailure,
) -> Arc<Deliverer<Scripted>> {
    batch_deliverer(transport, max_attempts, on_failure, None)
}

/// A deliverer with `delivery.batch` set to `batch`.
pub fn batch_deliverer(
    transport: Scripted,
    max_attempts: u32,
    on_failure: OnFailure,
    batch: Option<BatchConfig>,
) -> Arc<Deliverer<Scripted>> {
    let mut config = Config::new("b", "g", &["t"], "http://127.0.0.1:1/x");
    config.delivery.batch = batch;
    let settings = config.settings().unwrap();
    let mut retry = settings.delivery.retry.clone();
    retry.max_attempts = max_attempts;
    let metrics = Metrics::new();
    Arc::new(Deliverer {
        transport,
        template: RequestTemplate::new(&settings.delivery),
        timeout: Duration::from_secs(1),
        retry,
        on_failure,
        flow: super::flow::Flow::unlimited(&metrics),
        metrics,
        jitter: || 0.5,
    })
}

/// The value of a metric series (`name{labels}`), 0 when absent.
pub fn counter(deliverer: &Deliverer<Scripted>, series: &str) -> u64 {
    let text = deliverer.metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}
