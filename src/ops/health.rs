//! Liveness and readiness, shared by the pump (heartbeat), the rebalance callbacks (ready),
//! the workers (failed) and the shutdown sequence, and read by the admin server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long the pump may go without a heartbeat before `/healthz` fails.
pub const PUMP_STALL_SECS: u64 = 30;

#[derive(Debug, Default)]
pub struct Health {
    /// Joined the group: the first assignment (possibly empty: an idle standby) arrived.
    ready: AtomicBool,
    /// Cleared when a worker failed in a way only a restart repairs.
    failed: AtomicBool,
    /// Shutdown has begun: not ready, and new assignments start no workers.
    shutting_down: AtomicBool,
    /// Seconds since the epoch of the pump's last poll.
    pump_heartbeat: AtomicU64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

impl Health {
    pub fn new() -> Self {
        let state = Self::default();
        state.beat();
        state
    }

    pub fn beat(&self) {
        self.pump_heartbeat.store(now_secs(), Ordering::Relaxed);
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

    /// Alive: the pump polls and no worker failed.
    pub fn is_healthy(&self) -> bool {
        let last = self.pump_heartbeat.load(Ordering::Relaxed);
        !self.failed.load(Ordering::Relaxed) && now_secs().saturating_sub(last) < PUMP_STALL_SECS
    }

    /// Ready: joined the group (owning partitions or standing by) and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.is_shutting_down() && self.is_healthy()
    }
}
