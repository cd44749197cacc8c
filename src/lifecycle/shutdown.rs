//! The shutdown sequence, every step capped by one [`Deadline`] of
//! `termination_grace_period − 1 s` from the signal: stop being ready, pause fetching, drain
//! in-flight deliveries (within `drain_timeout`), commit the acknowledged offsets, close the
//! consumer (it leaves the group). Past the deadline the process exits without waiting
//! further; nothing unacknowledged was ever stored, so that loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Deadline;
use crate::kafka::{commit, SidecarConsumer};
use crate::ops::events;
use crate::ops::{Health, Metrics};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained, committed and left the group.
    Clean,
    /// The deadline passed before the consumer closed (e.g. the broker was unreachable).
    DeadlineExceeded,
    /// A second signal cut the shutdown short.
    SecondSignal,
}

/// What the running sidecar holds that the shutdown takes apart.
pub struct Running {
    pub consumer: Arc<SidecarConsumer>,
    pub pump: std::thread::JoinHandle<()>,
    pub pump_stop: CancellationToken,
    /// Fires when the pump closed the consumer.
    pub closed: oneshot::Receiver<()>,
    /// The position look-up task ([`crate::kafka::follow_positions`]) and its stop.
    pub positions: tokio::task::JoinHandle<()>,
    pub positions_stop: CancellationToken,
    pub health: Arc<Health>,
    pub metrics: Metrics,
}

/// Runs the sequence for every consumer (one per consumer group) at once, under the same
/// deadline; the exit is clean only when each was.
pub async fn shutdown_all(
    members: Vec<Running>,
    drain_timeout: Duration,
    budget: Duration,
) -> Exit {
    let mut shutdowns = tokio::task::JoinSet::new();
    for running in members {
        shutdowns.spawn(shutdown(running, drain_timeout, budget));
    }
    let mut exit = Exit::Clean;
    while let Some(joined) = shutdowns.join_next().await {
        match joined {
            Ok(Exit::Clean) => {}
            Ok(other) => exit = other,
            Err(join_error) => {
                error!(error = %join_error, "A consumer's shutdown failed");
                exit = Exit::DeadlineExceeded;
            }
        }
    }
    exit
}

/// Runs the sequence. `drain_timeout` limits the drain; `budget` (grace period − 1 s) the
/// whole sequence.
pub async fn shutdown(running: Running, drain_timeout: Duration, budget: Duration) -> Exit {
    let started = Instant::now();
    let deadline = Deadline::after(budget);
    let Running {
        consumer,
        pump,
        pump_stop,
        closed,
        positions,
        positions_stop,
        health,
        metrics,
    } = running;
    health.begin_shutdown();
    // No look-up while partitions drain; one in progress ends within a local call.
    positions_stop.cancel();
    if tokio::time::timeout_at(deadline.at(), positions)
        .await
        .is_err()
    {
        warn!("A position look-up did not finish before the shutdown deadline");
    }
    let registry = &consumer.context().registry;
    let paused = registry.pause_all(&consumer);
    info!(
        paused,
        drain_timeout_ms = drain_timeout.as_millis() as u64,
        deadline_ms = budget.as_millis() as u64,
        "Shutting down: paused fetching, draining in-flight deliveries"
    );
    let drained = registry
        .drain_workers(None, deadline.cap(drain_timeout))
        .await;
    events::shutdown_drained(&metrics, drained.len(), started.elapsed());

    commit::commit_stored_until(consumer.clone(), deadline.at(), &metrics).await;

    // The pump holds the last reference once the workers are gone; it closes the consumer.
    drop(consumer);
    pump_stop.cancel();
    let exit = match tokio::time::timeout_at(deadline.at(), closed).await {
        Ok(_) => {
            let _ = tokio::task::spawn_blocking(move || pump.join()).await;
            Exit::Clean
        }
        Err(_) => {
            error!(
                remaining_ms = deadline.remaining().as_millis() as u64,
                "Shutdown deadline passed before the consumer closed; exiting (uncommitted records will be redelivered)"
            );
            Exit::DeadlineExceeded
        }
    };
    info!(
        shutdown_ms = started.elapsed().as_millis() as u64,
        "Stopped"
    );
    exit
}
