//! Liveness, readiness and the freeze fence, shared by the pump (polls), the rebalance
//! callbacks (ready, in a callback), the statistics callback (group state), the workers (may
//! they start deliveries? did one fail?) and the shutdown sequence; read by the admin server.
//!
//! Two guards protect the group's guarantees beyond what librdkafka does on its own:
//! - **Freeze fence.** A process frozen longer than its session (GC, CPU throttling, a paused
//!   VM, SIGSTOP) wakes up as a zombie: its partitions already belong to another member, but
//!   librdkafka only learns so a moment later. When the pump finds it was not polled for half
//!   a session timeout, workers start no new delivery for [`FENCE_HOLD`], time for librdkafka
//!   to report the lost assignment (whose records are then abandoned, not committed).
//! - **Stuck outside the group.** librdkafka can fail to rejoin after a long broker outage
//!   (confluentinc/librdkafka#5301: every broker dropped, none reconnected). When the member
//!   stays outside the group for `max(2 × session_timeout, 60 s)` while a broker is reachable
//!   or none is left to try, `/healthz` fails so the kubelet restarts the container, which
//!   rejoins.
//!
//! Time is injected (`*_at` methods take milliseconds since start) for the unit tests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the pump may go without polling before `/healthz` fails.
pub const PUMP_STALL: Duration = Duration::from_secs(30);
/// How long workers hold new deliveries after the process was found frozen.
pub const FENCE_HOLD: Duration = Duration::from_secs(3);
/// The least time outside the group (brokers reachable) before `/healthz` fails.
pub const MIN_STUCK_OUTSIDE_GROUP: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// A pump silent longer than this (half the session timeout) may have lost the session.
    fence_gap_ms: u64,
    /// Outside the group this long, with a broker reachable, counts as stuck.
    stuck_after_ms: u64,
    /// Joined the group: the first assignment (possibly empty: an idle standby) arrived.
    ready: AtomicBool,
    /// Set when a worker failed in a way only a restart repairs.
    failed: AtomicBool,
    /// Shutdown has begun: not ready, and new assignments start no workers.
    shutting_down: AtomicBool,
    /// A rebalance callback is running on the pump thread (it may block while draining).
    in_callback: AtomicBool,
    /// When the pump last polled (ms since start).
    last_poll_ms: AtomicU64,
    /// No new delivery starts before this (ms since start).
    fenced_until_ms: AtomicU64,
    /// Since when the member is outside the group with a broker reachable (ms since start,
    /// plus one so that 0 means "not outside").
    outside_since_ms: AtomicU64,
    /// The stuck state was reported (logged once per episode).
    stuck_reported: AtomicBool,
}

impl Health {
    pub fn new(session_timeout: Duration) -> Self {
        let stuck_after = (session_timeout * 2).max(MIN_STUCK_OUTSIDE_GROUP);
        Self {
            start: Instant::now(),
            fence_gap_ms: (session_timeout / 2).as_millis() as u64,
            stuck_after_ms: stuck_after.as_millis() as u64,
            ready: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            in_callback: AtomicBool::new(false),
            last_poll_ms: AtomicU64::new(0),
            fenced_until_ms: AtomicU64::new(0),
            outside_since_ms: AtomicU64::new(0),
            stuck_reported: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The pump polled. Returns how long it had not, when that was long enough to fence new
    /// deliveries (the caller logs it).
    pub fn pump_polled(&self) -> Option<Duration> {
        self.pump_polled_at(self.now_ms())
    }

    pub fn pump_polled_at(&self, now: u64) -> Option<Duration> {
        let last = self.last_poll_ms.swap(now, Ordering::Relaxed);
        let gap = now.saturating_sub(last);
        if gap > self.fence_gap_ms && !self.in_callback.load(Ordering::Relaxed) {
            self.fence_until(now + FENCE_HOLD.as_millis() as u64);
            return Some(Duration::from_millis(gap));
        }
        None
    }

    fn fence_until(&self, until: u64) {
        self.fenced_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// A rebalance callback starts (the pump is busy, not frozen) or ends.
    pub fn callback_started(&self) {
        self.in_callback.store(true, Ordering::Relaxed);
    }

    pub fn callback_finished(&self) {
        self.last_poll_ms.store(self.now_ms(), Ordering::Relaxed);
        self.in_callback.store(false, Ordering::Relaxed);
    }

    /// May a worker start a delivery now? Not while the pump has been silent long enough for
    /// the session to be in doubt (this process may just have woken up), nor during the hold
    /// after a freeze.
    pub fn may_dispatch(&self) -> bool {
        self.may_dispatch_at(self.now_ms())
    }

    pub fn may_dispatch_at(&self, now: u64) -> bool {
        if self.in_callback.load(Ordering::Relaxed) {
            return true;
        }
        let silent = now.saturating_sub(self.last_poll_ms.load(Ordering::Relaxed));
        silent <= self.fence_gap_ms && now >= self.fenced_until_ms.load(Ordering::Relaxed)
    }

    /// The statistics callback saw the group state. `broker_reachable`: waiting for the
    /// brokers cannot explain being outside (one is up, or librdkafka has none left to try).
    /// Returns how long the member has been outside the group when it just crossed the stuck
    /// threshold (the caller logs it once).
    pub fn group_observed(&self, in_group: bool, broker_reachable: bool) -> Option<Duration> {
        self.group_observed_at(self.now_ms(), in_group, broker_reachable)
    }

    pub fn group_observed_at(
        &self,
        now: u64,
        in_group: bool,
        broker_reachable: bool,
    ) -> Option<Duration> {
        if in_group || !broker_reachable {
            self.outside_since_ms.store(0, Ordering::Relaxed);
            self.stuck_reported.store(false, Ordering::Relaxed);
            return None;
        }
        if self.outside_since_ms.load(Ordering::Relaxed) == 0 {
            self.outside_since_ms.store(now + 1, Ordering::Relaxed);
        }
        if !self.stuck_outside_group_at(now) || self.stuck_reported.swap(true, Ordering::Relaxed) {
            return None;
        }
        let since = self.outside_since_ms.load(Ordering::Relaxed) - 1;
        Some(Duration::from_millis(now.saturating_sub(since)))
    }

    fn stuck_outside_group_at(&self, now: u64) -> bool {
        match self.outside_since_ms.load(Ordering::Relaxed) {
            0 => false,
            marked => now.saturating_sub(marked - 1) > self.stuck_after_ms,
        }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Alive: the pump polls, no worker failed, and the member is not stuck outside the group.
    pub fn is_healthy(&self) -> bool {
        self.is_healthy_at(self.now_ms())
    }

    pub fn is_healthy_at(&self, now: u64) -> bool {
        let silent = now.saturating_sub(self.last_poll_ms.load(Ordering::Relaxed));
        !self.failed.load(Ordering::Relaxed)
            && silent < PUMP_STALL.as_millis() as u64
            && !self.stuck_outside_group_at(now)
    }

    /// Ready: joined the group (owning partitions or standing by) and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.is_shutting_down() && self.is_healthy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        // Session 6 s: fence after 3 s of silence; stuck after 60 s outside the group.
        Health::new(Duration::from_secs(6))
    }

    #[test]
    fn a_pump_polling_regularly_never_fences() {
        let health = health();
        for now in (0..20_000).step_by(100) {
            assert_eq!(health.pump_polled_at(now), None);
            assert!(health.may_dispatch_at(now + 50));
        }
    }

    #[test]
    fn waking_from_a_freeze_holds_deliveries_until_librdkafka_can_report_the_loss() {
        let health = health();
        health.pump_polled_at(1_000);
        // Frozen for 10 s: a worker that runs before the pump sees the silence itself.
        assert!(!health.may_dispatch_at(11_000));
        // The pump wakes and fences for FENCE_HOLD.
        assert_eq!(
            health.pump_polled_at(11_010),
            Some(Duration::from_millis(10_010))
        );
        assert!(!health.may_dispatch_at(11_100));
        health.pump_polled_at(13_000);
        assert!(!health.may_dispatch_at(13_500));
        health.pump_polled_at(14_000);
        assert!(health.may_dispatch_at(14_020));
    }

    #[test]
    fn a_long_rebalance_callback_is_not_a_freeze() {
        let health = health();
        health.pump_polled_at(1_000);
        health.callback_started();
        // Draining revoked partitions for 5 s: other partitions keep delivering.
        assert!(health.may_dispatch_at(6_000));
        health.callback_finished();
        assert_eq!(health.pump_polled_at(health.now_ms() + 100), None);
    }

    #[test]
    fn stuck_outside_the_group_fails_liveness_only_while_a_broker_is_reachable() {
        let health = health();
        health.pump_polled_at(0);
        // The brokers are down: outside the group is expected, however long.
        health.group_observed_at(5_000, false, false);
        health.group_observed_at(300_000, false, false);
        health.pump_polled_at(300_000);
        assert!(health.is_healthy_at(300_000));
        // A broker is back but the member does not rejoin.
        assert_eq!(health.group_observed_at(305_000, false, true), None);
        health.pump_polled_at(360_000);
        assert_eq!(health.group_observed_at(360_000, false, true), None);
        assert!(health.is_healthy_at(360_000));
        health.pump_polled_at(366_000);
        assert_eq!(
            health.group_observed_at(366_000, false, true),
            Some(Duration::from_secs(61))
        );
        assert!(!health.is_healthy_at(366_000));
        assert_eq!(
            health.group_observed_at(371_000, false, true),
            None,
            "reported once"
        );
        // Rejoining heals it.
        health.group_observed_at(372_000, true, true);
        assert!(health.is_healthy_at(372_000));
    }

    #[test]
    fn a_stalled_pump_or_a_failed_worker_is_unhealthy() {
        let health = health();
        health.pump_polled_at(0);
        assert!(health.is_healthy_at(29_000));
        assert!(!health.is_healthy_at(31_000));
        health.pump_polled_at(31_000);
        health.set_failed();
        assert!(!health.is_healthy_at(31_000));
    }
}
