//! Wires the pieces together and runs until shutdown: admin server, HTTP client, dead-letter
//! producer, consumer with its pump, then the drain sequence on the shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, FailurePolicy};
use crate::consumer;
use crate::dead_letter::DeadLetterProducer;
use crate::delivery::Deliverer;
use crate::error::Error;
use crate::http_client::HttpClient;
use crate::metrics::Metrics;
use crate::request::RequestTemplate;
use crate::state::State;
use crate::worker::WorkerSettings;

/// Bytes a partition may hold in its buffer and in flight before it stops taking records.
const PARTITION_BUFFER_BYTES: usize = 4 << 20;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained, committed and left the group.
    Clean,
    /// The hard deadline passed before the consumer closed.
    DeadlineExceeded,
}

/// Runs the sidecar until `shutdown` completes, then drains, commits and leaves the group.
/// `shutdown` is a parameter so tests and `main` decide what triggers it.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<Exit, Error> {
    let metrics = Metrics::new();
    let state = Arc::new(State::new());
    let admin_addr = config.admin_addr();
    let listener = crate::admin::bind(admin_addr)
        .await
        .map_err(|source| Error::AdminBind {
            addr: admin_addr,
            source,
        })?;
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(crate::admin::serve(
        listener,
        metrics.clone(),
        state.clone(),
        admin_stop.clone(),
    ));

    let in_flight_cap = config.in_flight_cap();
    let template = RequestTemplate::new(&config.delivery).map_err(Error::Request)?;
    let dead_letter = match (
        config.delivery.on_failure,
        &config.delivery.dead_letter_topic,
    ) {
        (FailurePolicy::DeadLetter, Some(topic)) => Some(DeadLetterProducer::new(
            &consumer::producer_base_config(&config),
            topic.clone(),
        )?),
        _ => None,
    };
    let deliverer = Arc::new(Deliverer {
        client: HttpClient::new(&config.delivery),
        template,
        timeout: config.delivery.timeout,
        retry: config.delivery.retry.clone(),
        on_failure: config.delivery.on_failure,
        dead_letter,
        metrics: metrics.clone(),
    });
    let settings = Arc::new(WorkerSettings {
        ordering: config.delivery.ordering,
        in_flight_cap,
        buffer_records: (in_flight_cap * 2).max(8),
        buffer_bytes: PARTITION_BUFFER_BYTES,
    });

    let consumer = consumer::create(&config, deliverer, settings, metrics.clone(), state.clone())?;
    let pump_stop = CancellationToken::new();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let pump = consumer::spawn_pump(
        consumer.clone(),
        state.clone(),
        pump_stop.clone(),
        closed_tx,
    )
    .map_err(Error::Thread)?;
    info!(
        group_id = %config.kafka.group_id,
        topics = ?config.kafka.topics,
        ordering = ?config.delivery.ordering,
        in_flight_cap,
        "Joined consumer group; delivering"
    );

    shutdown.await;
    let started = Instant::now();
    let drain_timeout = config.shutdown.drain_timeout;
    // The hard deadline: past it we exit without waiting further (nothing unacknowledged is
    // ever stored, so exiting loses nothing; the next owner redelivers).
    let hard_deadline = (config
        .shutdown
        .termination_grace_period
        .saturating_sub(Duration::from_secs(1)))
    .max(drain_timeout + Duration::from_secs(1));
    state.begin_shutdown();
    let paused = consumer.context().pause_all(&consumer);
    info!(
        paused,
        drain_timeout_ms = drain_timeout.as_millis() as u64,
        "Shutting down: paused fetching, draining in-flight deliveries"
    );
    let exits = consumer.context().drain_workers(None, drain_timeout).await;
    metrics
        .shutdown_drain
        .observe(started.elapsed().as_secs_f64());

    let committer = consumer.clone();
    let commit =
        tokio::task::spawn_blocking(move || committer.commit_consumer_state(CommitMode::Sync));
    match tokio::time::timeout(Duration::from_secs(10), commit).await {
        Ok(Ok(Ok(()))) => info!(partitions = exits.len(), "Committed final offsets"),
        Ok(Ok(Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        )))) => {
            info!("No new offsets to commit")
        }
        Ok(Ok(Err(commit_error))) => {
            warn!(error = %commit_error, "Final commit failed; uncommitted records will be redelivered")
        }
        Ok(Err(join_error)) => error!(error = %join_error, "Final commit task failed"),
        Err(_) => warn!("Final commit timed out; uncommitted records will be redelivered"),
    }

    drop(consumer);
    pump_stop.cancel();
    let remaining = hard_deadline.saturating_sub(started.elapsed());
    let exit = match tokio::time::timeout(remaining, closed_rx).await {
        Ok(_) => {
            let _ = pump.join();
            Exit::Clean
        }
        Err(_) => {
            error!("Hard shutdown deadline passed before the consumer closed; exiting");
            Exit::DeadlineExceeded
        }
    };
    admin_stop.cancel();
    let _ = admin.await;
    info!(
        shutdown_ms = started.elapsed().as_millis() as u64,
        "Stopped"
    );
    Ok(exit)
}
