//! Flow control toward the endpoint, shared by every partition: the concurrency limit (fixed,
//! or [`limit`]'s adaptive AIMD), the rate limit ([`rate`]'s token bucket), and
//! [`Deliverer::send_attempt`], the one place where both attempt loops (single record and
//! batch) wait for tokens and a permit, send, and report how the attempt went to the limit.
//!
//! The limit counts requests (a batch request is one unit); the rate counts records. The
//! per-partition caps of the ordering modes apply before a request gets here.

pub mod limit;
pub mod rate;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::time::Instant as Clock;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::sync::{Semaphore, SemaphorePermit};

use self::limit::{AdaptiveLimit, Change, Params, Signal};
use self::rate::TokenBucket;
use super::{AttemptOutcome, Deliverer, Drain, Transport};
use crate::config::{ConcurrencySettings, FlowSettings};
use crate::ops::events::{self, LimitChange};
use crate::ops::Metrics;

/// The shared limits; both optional (then an attempt is sent at once).
pub struct Flow {
    gate: Option<Gate>,
    rate: Option<Mutex<TokenBucket>>,
    metrics: Metrics,
}

/// A concurrency limit whose size can change: a fair (FIFO) semaphore holding `circulating`
/// permits, shrunk by forgetting permits (those free now, the rest as they come back) and
/// grown by adding them.
struct Gate {
    semaphore: Semaphore,
    state: Mutex<GateState>,
}

struct GateState {
    adaptive: Option<AdaptiveLimit>,
    circulating: usize,
    in_flight: usize,
}

/// A held concurrency permit; dropping it without [`finish`](Self::finish) reports nothing
/// about load (the attempt was cut by a drain).
struct Permit<'a> {
    gate: &'a Gate,
    metrics: &'a Metrics,
    permit: Option<SemaphorePermit<'a>>,
    started: Clock,
    /// The adaptive limit's epoch the request started in.
    epoch: u64,
    signal: Signal,
}

/// What one sent attempt gave.
pub struct Sent {
    pub outcome: AttemptOutcome,
    /// A 2xx answer's body when asked for (batches), empty otherwise.
    pub body: Bytes,
    /// From sending to the answer (not counting the wait for tokens and a permit).
    pub took: Duration,
}

impl Flow {
    /// No shared limit: every attempt is sent at once.
    pub fn unlimited(metrics: &Metrics) -> Self {
        Self {
            gate: None,
            rate: None,
            metrics: metrics.clone(),
        }
    }

    pub fn new(settings: &FlowSettings, metrics: &Metrics) -> Self {
        let now = now();
        let gate = settings.concurrency.map(|concurrency| {
            let (adaptive, size) = match concurrency {
                ConcurrencySettings::Fixed(size) => (None, size),
                ConcurrencySettings::Adaptive {
                    floor,
                    ceiling,
                    tolerance,
                } => {
                    let limit = AdaptiveLimit::new(
                        Params {
                            floor,
                            ceiling,
                            tolerance,
                        },
                        now,
                    );
                    let size = limit.limit();
                    (Some(limit), size)
                }
            };
            events::concurrency_limit_changed(metrics, size, None);
            Gate {
                semaphore: Semaphore::new(size),
                state: Mutex::new(GateState {
                    adaptive,
                    circulating: size,
                    in_flight: 0,
                }),
            }
        });
        let rate = settings
            .rate
            .map(|rate| Mutex::new(TokenBucket::new(rate.records_per_second, rate.burst, now)));
        Self {
            gate,
            rate,
            metrics: metrics.clone(),
        }
    }

    /// The current concurrency limit, if one is set.
    pub fn limit(&self) -> Option<usize> {
        self.gate.as_ref().map(|gate| gate.state().circulating)
    }

    /// Waits for `records` tokens; `false` if the drain stopped the wait (tokens given back).
    async fn wait_for_tokens(&self, records: u32, drain: &Drain) -> bool {
        let Some(rate) = &self.rate else {
            return true;
        };
        let wait = lock(rate).reserve(records, now());
        if wait.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                events::rate_limited(&self.metrics, wait);
                true
            }
            _ = drain.stop.cancelled() => {
                lock(rate).refund(records, now());
                false
            }
        }
    }

    /// Waits for a concurrency permit; `None` if there is no limit, `Some(None)` if the drain
    /// stopped the wait.
    async fn permit(&self, drain: &Drain) -> Option<Option<Permit<'_>>> {
        let gate = self.gate.as_ref()?;
        let acquired = match gate.semaphore.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => {
                events::concurrency_waiting(&self.metrics, true);
                let acquired = tokio::select! {
                    acquired = gate.semaphore.acquire() => acquired.ok(),
                    _ = drain.stop.cancelled() => None,
                };
                events::concurrency_waiting(&self.metrics, false);
                acquired
            }
        };
        let permit = acquired?;
        let mut epoch = 0;
        {
            let mut state = gate.state();
            state.in_flight += 1;
            let in_flight = state.in_flight;
            if let Some(adaptive) = &mut state.adaptive {
                epoch = adaptive.started(in_flight);
            }
        }
        Some(Some(Permit {
            gate,
            metrics: &self.metrics,
            permit: Some(permit),
            started: Clock::now(),
            epoch,
            signal: Signal::Neutral,
        }))
    }
}

impl Gate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        lock(&self.state)
    }
}

/// The time the limits run on: tokio's clock, so tests can pause it.
fn now() -> Instant {
    Clock::now().into_std()
}

/// A poisoned lock means a panic while holding it; the counters are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Permit<'_> {
    fn finish(mut self, outcome: &AttemptOutcome) {
        self.signal = signal(outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let gate = self.gate;
        let mut state = gate.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        let Some(adaptive) = &mut state.adaptive else {
            drop(permit);
            return;
        };
        let change = adaptive.completed(now(), self.started.elapsed(), self.signal, self.epoch);
        let target = adaptive.limit();
        if state.circulating > target {
            permit.forget();
            state.circulating -= 1;
            let excess = state.circulating - target;
            state.circulating -= gate.semaphore.forget_permits(excess);
        } else {
            drop(permit);
            if target > state.circulating {
                gate.semaphore.add_permits(target - state.circulating);
                state.circulating = target;
            }
        }
        if let Some(change) = change {
            let change = match change {
                Change::Increased => LimitChange::Increased,
                Change::Decreased => LimitChange::Decreased,
                Change::Halved => LimitChange::Halved,
            };
            events::concurrency_limit_changed(self.metrics, target, Some(change));
        }
    }
}

/// What an attempt's outcome says about the endpoint's load.
pub fn signal(outcome: &AttemptOutcome) -> Signal {
    match outcome {
        AttemptOutcome::Status {
            status: 429 | 503 | 504,
            ..
        } => Signal::Overload,
        AttemptOutcome::Timeout | AttemptOutcome::Connection(_) => Signal::Overload,
        AttemptOutcome::Status { status, .. } if (200..300).contains(status) => Signal::Success,
        AttemptOutcome::Entry { .. } | AttemptOutcome::BadResults { .. } => Signal::Success,
        AttemptOutcome::Status { .. } => Signal::Neutral,
    }
}

impl<T: Transport> Deliverer<T> {
    /// Sends one attempt of a request carrying `records` records: waits for rate tokens and a
    /// concurrency permit (a stopped drain ends the wait: `None`), builds the request (so a
    /// signature carries the time it is sent), sends it through the transport (an abandoning
    /// drain cuts it: `None`), and feeds the answer to the adaptive limit. `want_body` reads a
    /// 2xx answer's body (batch results).
    pub async fn send_attempt(
        &self,
        build: impl FnOnce() -> Request<Full<Bytes>>,
        records: u32,
        want_body: bool,
        drain: &Drain,
    ) -> Option<Sent> {
        if !self.flow.wait_for_tokens(records, drain).await {
            return None;
        }
        let permit = match self.flow.permit(drain).await {
            None => None,
            Some(None) => return None,
            Some(Some(permit)) => Some(permit),
        };
        let started = Instant::now();
        let request = build();
        let (outcome, body) = tokio::select! {
            answer = async {
                if want_body {
                    self.transport.send_for_body(request, self.timeout).await
                } else {
                    (self.transport.send(request, self.timeout).await, Bytes::new())
                }
            } => answer,
            _ = drain.abandon.cancelled() => return None,
        };
        let took = started.elapsed();
        if let Some(permit) = permit {
            permit.finish(&outcome);
        }
        Some(Sent {
            outcome,
            body,
            took,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The gate and the bucket under the attempt loop, with a scripted transport and paused
    //! time.

    use super::*;
    use std::sync::Arc;

    use crate::config::RateSettings;
    use crate::delivery::fakes::{deliverer, status, Scripted};
    use crate::delivery::{Disposition, OnFailure};
    use crate::record::Record;

    fn with_flow(transport: Scripted, settings: FlowSettings) -> Arc<Deliverer<Scripted>> {
        let mut deliverer = deliverer(transport, 0, OnFailure::Block);
        let inner = Arc::get_mut(&mut deliverer).expect("a new deliverer is not shared");
        inner.flow = Flow::new(&settings, &inner.metrics);
        deliverer
    }

    fn record(offset: i64) -> Record {
        Record {
            offset,
            ..Record::example()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_limit_caps_requests_in_flight_across_deliveries() {
        let mut transport = Scripted::new(vec![status(200)]);
        transport.hang = true;
        let deliverer = with_flow(
            transport,
            FlowSettings {
                concurrency: Some(ConcurrencySettings::Fixed(2)),
                rate: None,
                pause_fetch_after: None,
            },
        );
        let drain = Drain::default();
        let mut tasks = Vec::new();
        for offset in 0..5 {
            tasks.push(tokio::spawn(
                deliverer.clone().deliver(record(offset), drain.clone()),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(deliverer.transport.sent().len(), 2);
        assert_eq!(deliverer.metrics.concurrency_waiting.get(), 3);
        // Stopping the drain ends the waits at once; abandoning cuts the two in flight.
        drain.stop.cancel();
        drain.abandon.cancel();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Disposition::Abandoned);
        }
        assert_eq!(deliverer.metrics.concurrency_waiting.get(), 0);
        assert_eq!(deliverer.flow.limit(), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_adaptive_limit_halves_on_503_and_permits_follow() {
        let deliverer = with_flow(
            Scripted::new(vec![status(200)]),
            FlowSettings {
                concurrency: Some(ConcurrencySettings::Adaptive {
                    floor: 2,
                    ceiling: 64,
                    tolerance: 1.25,
                }),
                rate: None,
                pause_fetch_after: None,
            },
        );
        assert_eq!(deliverer.flow.limit(), Some(2));
        let overload = AttemptOutcome::Status {
            status: 503,
            retry_after: None,
        };
        // Grow it by holding permits through windows of successes.
        for _ in 0..20 {
            let mut held = Vec::new();
            for _ in 0..deliverer.flow.limit().unwrap() {
                held.push(
                    deliverer
                        .flow
                        .permit(&Drain::default())
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            for permit in held {
                permit.finish(&AttemptOutcome::Status {
                    status: 200,
                    retry_after: None,
                });
            }
        }
        let grown = deliverer.flow.limit().unwrap();
        assert!(grown >= 32, "grew to {grown}");
        let permit = deliverer
            .flow
            .permit(&Drain::default())
            .await
            .unwrap()
            .unwrap();
        permit.finish(&overload);
        assert_eq!(deliverer.flow.limit(), Some(grown / 2));
        assert_eq!(
            deliverer.metrics.concurrency_limit.get(),
            (grown / 2) as i64
        );
        // The semaphore holds exactly the limit's permits.
        assert_eq!(
            deliverer
                .flow
                .gate
                .as_ref()
                .unwrap()
                .semaphore
                .available_permits(),
            grown / 2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_paces_attempts() {
        let deliverer = with_flow(
            Scripted::new(vec![status(200)]),
            FlowSettings {
                concurrency: None,
                rate: Some(RateSettings {
                    records_per_second: 10.0,
                    burst: 1,
                }),
                pause_fetch_after: None,
            },
        );
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for offset in 0..5 {
            tasks.push(tokio::spawn(
                deliverer.clone().deliver(record(offset), Drain::default()),
            ));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Disposition::Delivered);
        }
        let mut sent = deliverer.transport.sent();
        sent.sort();
        let gaps: Vec<Duration> = sent.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert_eq!(sent[0], start);
        for gap in gaps {
            assert!(gap >= Duration::from_millis(99), "{gap:?}");
        }
        assert_eq!(deliverer.metrics.rate_limited_waits.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_stops_a_wait_for_tokens() {
        let deliverer = with_flow(
            Scripted::new(vec![status(200)]),
            FlowSettings {
                concurrency: None,
                rate: Some(RateSettings {
                    records_per_second: 0.001,
                    burst: 1,
                }),
                pause_fetch_after: None,
            },
        );
        let drain = Drain::default();
        assert_eq!(
            deliverer.clone().deliver(record(0), drain.clone()).await,
            Disposition::Delivered
        );
        let waiting = tokio::spawn(deliverer.clone().deliver(record(1), drain.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        drain.stop.cancel();
        assert_eq!(waiting.await.unwrap(), Disposition::Abandoned);
        assert_eq!(deliverer.transport.sent().len(), 1);
    }
}
