//! The pump: polls the consumer's main queue on its own OS thread, so rebalance callbacks are
//! served (and may block while partitions drain, which a runtime thread must never do) and
//! the member stays in the group however long deliveries wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::ops::health::FENCE_HOLD;
use crate::ops::Health;

/// How long the pump waits for the workers to drop their consumer references before it
/// drops its own anyway.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// Polls until `stop`; then drops its reference to the consumer so it closes (leaving the
/// group) on this same thread. `done` fires when the consumer is closed.
pub fn spawn<C: ConsumerContext + 'static>(
    consumer: Arc<BaseConsumer<C>>,
    health: Arc<Health>,
    stop: CancellationToken,
    done: tokio::sync::oneshot::Sender<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("kafka-pump".into())
        .spawn(move || {
            while !stop.is_cancelled() {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(message)) => {
                        // Unreachable by construction (queues are split before assignment). The
                        // record is not stored, so the committed offset cannot pass it.
                        error!(
                            topic = message.topic(),
                            partition = message.partition(),
                            offset = message.offset(),
                            "Record arrived on the main queue instead of its partition queue"
                        );
                        health.set_failed();
                    }
                    Some(Err(error)) => warn!(%error, "Kafka consumer error"),
                }
                if let Some(gap) = health.pump_polled() {
                    warn!(
                        gap_ms = gap.as_millis() as u64,
                        hold_ms = FENCE_HOLD.as_millis() as u64,
                        "The process was not scheduled for half a session timeout (frozen or starved); holding new deliveries until the group confirms or revokes the assignment"
                    );
                }
            }
            let started = Instant::now();
            // Wait until the workers' references are gone, so this drop is the one that closes.
            while Arc::strong_count(&consumer) > 1 && started.elapsed() < RELEASE_WAIT {
                consumer.poll(Duration::from_millis(50));
                health.pump_polled();
            }
            drop(consumer);
            // librdkafka's close sends LeaveGroup when the coordinator is reachable; with the
            // brokers down it gives up after the session timeout.
            info!(
                close_ms = started.elapsed().as_millis() as u64,
                "Consumer closed"
            );
            let _ = done.send(());
        })
}
