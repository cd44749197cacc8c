//! The adaptive concurrency limit as a pure machine (AIMD on latency and overload answers),
//! time injected. It counts requests: one batch request is one unit.
//!
//! The rule, decided once per window (the smoothed latency, at least [`MIN_WINDOW`], and at
//! least as many answers as the limit):
//! - an overload answer (429, 503, 504, timeout, connection error) halves the limit at once,
//!   at most once per window;
//! - a window whose mean latency exceeds `tolerance` × the baseline multiplies it by 0.9 (by
//!   0.5 the first time, ending slow start: the last doubling overshot);
//! - otherwise, if the limit was reached during the window, it grows: doubling until the first
//!   decrease (slow start), then by one.
//!
//! A window judges only requests started under the current limit: an answer to a request sent
//! before the last change describes the old limit (counting those made slow start overshoot
//! to 128 in flight against 16 workers). The baseline is the lowest smoothed window latency seen; when the limit sits at its floor
//! and latency is still above tolerance, the endpoint itself got slower, so the baseline is
//! reset to what is observed there. The limit never leaves `[floor, ceiling]`.

use std::time::{Duration, Instant};

/// The shortest decision window (sub-millisecond latencies are too noisy to judge alone).
pub const MIN_WINDOW: Duration = Duration::from_millis(20);
/// Factor applied when latency rises above tolerance.
const LATENCY_DECREASE: f64 = 0.9;
/// Factor applied on an overload answer.
const OVERLOAD_DECREASE: f64 = 0.5;

/// What one finished request says about the endpoint's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered in time without an overload status: a latency sample.
    Success,
    /// 429, 503, 504, a timeout or a connection error.
    Overload,
    /// Says nothing about load (another error, or cut by a drain).
    Neutral,
}

/// How the limit moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Increased,
    /// Latency rose above tolerance.
    Decreased,
    /// An overload answer.
    Halved,
}

/// Bounds and tolerance of the adaptive limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub floor: usize,
    pub ceiling: usize,
    /// Window latency above `tolerance` × baseline counts as rising.
    pub tolerance: f64,
}

#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    params: Params,
    limit: f64,
    slow_start: bool,
    /// Lowest smoothed window latency seen (seconds).
    baseline: Option<f64>,
    /// Short EWMA of window means (seconds).
    smoothed: Option<f64>,
    window_start: Instant,
    samples: u32,
    latency_sum: f64,
    max_in_flight: usize,
    last_halved: Option<Instant>,
    /// Counts limit changes; requests carry the value they started under.
    epoch: u64,
}

impl AdaptiveLimit {
    /// Starts at the floor.
    pub fn new(params: Params, now: Instant) -> Self {
        Self {
            params,
            limit: params.floor as f64,
            slow_start: true,
            baseline: None,
            smoothed: None,
            window_start: now,
            samples: 0,
            latency_sum: 0.0,
            max_in_flight: 0,
            last_halved: None,
            epoch: 0,
        }
    }

    /// The number of limit changes so far (what [`started`](Self::started) returns).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current limit, within `[floor, ceiling]`.
    pub fn limit(&self) -> usize {
        (self.limit.floor() as usize).clamp(self.params.floor, self.params.ceiling)
    }

    fn window(&self) -> Duration {
        self.smoothed
            .map_or(MIN_WINDOW, |s| Duration::from_secs_f64(s).max(MIN_WINDOW))
    }

    /// A request started with `in_flight` requests (itself included) in flight; returns the
    /// epoch to give back to [`completed`](Self::completed).
    pub fn started(&mut self, in_flight: usize) -> u64 {
        self.max_in_flight = self.max_in_flight.max(in_flight);
        self.epoch
    }

    /// A request started in `epoch` finished after `latency` with `signal`; returns how the
    /// limit moved. Answers to requests started before the last change are not judged.
    pub fn completed(
        &mut self,
        now: Instant,
        latency: Duration,
        signal: Signal,
        epoch: u64,
    ) -> Option<Change> {
        if epoch < self.epoch {
            return None;
        }
        match signal {
            Signal::Neutral => return None,
            Signal::Overload => {
                let window = self.window();
                if self
                    .last_halved
                    .is_some_and(|at| now.saturating_duration_since(at) < window)
                {
                    return None;
                }
                self.last_halved = Some(now);
                self.slow_start = false;
                let before = self.limit();
                self.set(self.limit * OVERLOAD_DECREASE);
                self.reset_window(now);
                let changed = self.limit() != before;
                self.epoch += u64::from(changed);
                return changed.then_some(Change::Halved);
            }
            Signal::Success => {
                self.samples += 1;
                self.latency_sum += latency.as_secs_f64();
            }
        }
        // A window also waits for a limit's worth of answers: judged earlier, it sees only the
        // fast answers of a burst (the queued ones are still out) and slow start overshoots.
        if now.saturating_duration_since(self.window_start) < self.window()
            || (self.samples as usize) < self.limit()
        {
            return None;
        }
        let mean = self.latency_sum / f64::from(self.samples);
        let smoothed = self.smoothed.map_or(mean, |s| 0.5 * s + 0.5 * mean);
        self.smoothed = Some(smoothed);
        let baseline = *self.baseline.get_or_insert(smoothed);
        let before = self.limit();
        let change = if smoothed > baseline * self.params.tolerance {
            if before <= self.params.floor {
                // At the floor latency is the endpoint's own: it got slower for everyone.
                self.baseline = Some(smoothed);
                None
            } else if std::mem::replace(&mut self.slow_start, false) {
                // The last doubling overshot: back to the limit before it.
                self.set(self.limit * 0.5);
                Some(Change::Decreased)
            } else {
                self.set(self.limit * LATENCY_DECREASE);
                Some(Change::Decreased)
            }
        } else {
            self.baseline = Some(baseline.min(smoothed));
            if self.max_in_flight >= before && before < self.params.ceiling {
                let grown = if self.slow_start {
                    self.limit * 2.0
                } else {
                    self.limit + 1.0
                };
                self.set(grown);
                Some(Change::Increased)
            } else {
                None
            }
        };
        self.reset_window(now);
        let changed = self.limit() != before;
        self.epoch += u64::from(changed);
        change.filter(|_| changed)
    }

    fn set(&mut self, limit: f64) {
        self.limit = limit.clamp(self.params.floor as f64, self.params.ceiling as f64);
    }

    fn reset_window(&mut self, now: Instant) {
        self.window_start = now;
        self.samples = 0;
        self.latency_sum = 0.0;
        self.max_in_flight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(floor: usize, ceiling: usize) -> Params {
        Params {
            floor,
            ceiling,
            tolerance: 1.25,
        }
    }

    /// Runs a closed loop against a synthetic endpoint for `rounds` rounds: every round the
    /// full limit of requests is sent at once, request `i` answered by
    /// `endpoint(concurrency, i)`, and the round lasts as long as its slowest answer. Returns
    /// the limits seen and how many overload answers were given.
    fn simulate(
        limit: &mut AdaptiveLimit,
        start: Instant,
        rounds: usize,
        endpoint: impl Fn(usize, usize) -> (Duration, Signal),
    ) -> (Vec<usize>, usize) {
        let mut now = start;
        let mut limits = Vec::new();
        let mut overloads = 0;
        for _ in 0..rounds {
            let concurrency = limit.limit();
            let mut epoch = 0;
            for in_flight in 1..=concurrency {
                epoch = limit.started(in_flight);
            }
            let answers: Vec<(Duration, Signal)> =
                (0..concurrency).map(|i| endpoint(concurrency, i)).collect();
            let round = answers.iter().map(|(latency, _)| *latency).max();
            now += round.unwrap_or_default();
            for (latency, signal) in answers {
                if signal == Signal::Overload {
                    overloads += 1;
                }
                limit.completed(now, latency, signal, epoch);
            }
            limits.push(limit.limit());
        }
        (limits, overloads)
    }

    #[test]
    fn converges_near_the_workers_of_an_endpoint_whose_latency_grows_with_concurrency() {
        // 16 workers, 10 ms each: latency 10 ms up to 16 in flight, then grows linearly.
        let workers = 16.0;
        let endpoint = |concurrency: usize, _| {
            let factor = (concurrency as f64 / workers).max(1.0);
            (Duration::from_secs_f64(0.010 * factor), Signal::Success)
        };
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(params(1, 512), start);
        let (limits, _) = simulate(&mut limit, start, 3000, endpoint);
        let tail = &limits[2000..];
        let low = *tail.iter().min().unwrap();
        let high = *tail.iter().max().unwrap();
        assert!(low >= 12, "fell to {low}: throughput lost");
        assert!(high <= 24, "rose to {high}: latency buried");
    }

    #[test]
    fn halves_on_overload_once_per_window() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(params(1, 512), start);
        let (_, _) = simulate(&mut limit, start, 40, |_, _| {
            (Duration::from_millis(10), Signal::Success)
        });
        let before = limit.limit();
        assert!(before >= 64, "slow start grows: {before}");
        let now = start + Duration::from_secs(100);
        assert_eq!(
            limit.completed(
                now,
                Duration::from_millis(10),
                Signal::Overload,
                limit.epoch()
            ),
            Some(Change::Halved)
        );
        assert_eq!(limit.limit(), before / 2);
        // More overloads within the same window do not halve again.
        assert_eq!(
            limit.completed(
                now,
                Duration::from_millis(10),
                Signal::Overload,
                limit.epoch()
            ),
            None
        );
        assert_eq!(limit.limit(), before / 2);
        let later = now + Duration::from_secs(1);
        assert_eq!(
            limit.completed(later, Duration::ZERO, Signal::Overload, limit.epoch()),
            Some(Change::Halved)
        );
        assert_eq!(limit.limit(), before / 4);
    }

    #[test]
    fn an_endpoint_rejecting_above_n_keeps_the_limit_near_n() {
        let n = 10;
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(params(1, 400), start);
        let (limits, overloads) = simulate(&mut limit, start, 2000, |_, i| {
            if i >= n {
                (Duration::from_millis(1), Signal::Overload)
            } else {
                (Duration::from_millis(10), Signal::Success)
            }
        });
        let mean = limits[1000..].iter().sum::<usize>() as f64 / 1000.0;
        assert!((5.0..=11.0).contains(&mean), "mean limit {mean}");
        // A fixed cap of 4n would have 3 of every 4 requests rejected; AIMD only its probes.
        let sent: usize = limits.iter().sum();
        assert!(overloads * 20 < sent, "{overloads} overloads of {sent}");
    }

    #[test]
    fn never_leaves_floor_and_ceiling() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(params(3, 7), start);
        let mut now = start;
        for step in 0..5000u64 {
            now += Duration::from_millis(step % 37);
            let signal = match step % 7 {
                0 => Signal::Overload,
                1 => Signal::Neutral,
                _ => Signal::Success,
            };
            let epoch = limit.started((step % 11) as usize);
            limit.completed(now, Duration::from_millis(step % 53), signal, epoch);
            assert!((3..=7).contains(&limit.limit()), "{}", limit.limit());
        }
    }

    #[test]
    fn an_endpoint_that_got_slower_is_rebaselined_at_the_floor() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(params(1, 64), start);
        simulate(&mut limit, start, 200, |_, _| {
            (Duration::from_millis(10), Signal::Success)
        });
        // Ten times slower at any concurrency: the limit falls, then grows again.
        let (limits, _) = simulate(&mut limit, start + Duration::from_secs(100), 400, |_, _| {
            (Duration::from_millis(100), Signal::Success)
        });
        assert!(limits.contains(&1));
        assert_eq!(*limits.last().unwrap(), 64);
    }

    #[test]
    fn does_not_grow_without_demand() {
        let start = Instant::now();
        let mut limit = AdaptiveLimit::new(params(2, 64), start);
        let mut now = start;
        for _ in 0..1000 {
            limit.started(1);
            now += Duration::from_millis(30);
            limit.completed(
                now,
                Duration::from_millis(5),
                Signal::Success,
                limit.epoch(),
            );
        }
        assert_eq!(limit.limit(), 2);
    }
}
