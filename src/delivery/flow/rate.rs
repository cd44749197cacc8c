//! The rate limit as a pure token bucket, time injected: `per_second` tokens (records) a
//! second, at most `burst` saved up. A caller reserves its tokens at once and is told how long
//! to wait until they are covered, so callers are served in the order they asked and a request
//! larger than the burst (a big batch) is never refused: it waits until its tokens are covered.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    /// May go below zero: tokens already promised to waiting callers.
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = self.updated.max(now);
    }

    /// Takes `n` tokens; returns how long to wait before sending (zero when they were there).
    pub fn reserve(&mut self, n: u32, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= f64::from(n);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }

    /// Gives back `n` tokens reserved by a caller that did not send (a drain stopped it).
    pub fn refund(&mut self, n: u32, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens + f64::from(n)).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_ms(wait: Duration, ms: u64) {
        let got = wait.as_secs_f64() * 1000.0;
        assert!(
            (got - ms as f64).abs() < 0.01,
            "waited {got} ms, expected {ms}"
        );
    }

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_paces() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 10, start);
        for _ in 0..10 {
            assert_eq!(bucket.reserve(1, start), Duration::ZERO);
        }
        assert_ms(bucket.reserve(1, start), 10);
        assert_ms(bucket.reserve(1, start), 20);
    }

    #[test]
    fn the_long_run_rate_is_the_configured_one() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(200.0, 20, start);
        // Callers that send as soon as they are allowed, one record each.
        let mut now = start;
        let mut sent = 0u32;
        while now < start + Duration::from_secs(10) {
            now += bucket.reserve(1, now);
            sent += 1;
        }
        // 10 s at 200/s plus the initial burst.
        assert!((2000..=2021).contains(&sent), "{sent}");
    }

    #[test]
    fn savings_are_bounded_by_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 5, start);
        let later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(bucket.reserve(1, later), Duration::ZERO);
        }
        assert!(bucket.reserve(1, later) > Duration::ZERO);
    }

    #[test]
    fn a_request_larger_than_the_burst_goes_and_pays_after() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 10, start);
        // 50 records: 40 beyond the saved 10, 400 ms.
        assert_ms(bucket.reserve(50, start), 400);
        // The next one waits behind it.
        assert_ms(bucket.reserve(1, start), 410);
    }

    #[test]
    fn a_refund_returns_the_tokens() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 1, start);
        assert_eq!(bucket.reserve(1, start), Duration::ZERO);
        assert_ms(bucket.reserve(1, start), 10);
        bucket.refund(1, start);
        assert_ms(bucket.reserve(1, start), 10);
    }
}
