//! One partition's records between Kafka and the endpoint: the worker task ([`worker`]), the
//! committable-offset watermark ([`offsets`]), the ordering-mode scheduler
//! ([`scheduler`]) and when to pause fetching ([`pause`]). The worker reads its records from a [`PartitionSource`], so this folder
//! knows nothing of the consumer it runs under (`kafka::source` implements it).

use std::time::Instant;

use rdkafka::error::KafkaError;

use crate::record::Record;

pub mod offsets;
pub mod pause;
pub mod scheduler;
pub mod worker;

pub use offsets::PositionHint;
pub use worker::{PartitionWorker, WorkerExit, WorkerSettings};

/// Where a worker takes its partition's records from and stores its committable offset.
pub trait PartitionSource: Send + 'static {
    /// The next record if one is ready now, received `now` (one clock read serves a burst of
    /// polls); `None` when the queue is empty.
    fn poll(&mut self, now: Instant) -> Option<Result<Record, KafkaError>>;
    /// Stores the committable offset (the lowest unacknowledged); the consumer commits it
    /// on its next commit.
    fn store(&self, offset: i64) -> Result<(), KafkaError>;
    /// Pauses (`true`) or resumes fetching of this partition. Records already handed out are
    /// kept by the worker; the source resumes at the next record not yet handed out.
    fn set_paused(&self, paused: bool) -> Result<(), KafkaError>;
}
