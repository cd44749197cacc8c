//! Offset commits: one synchronous commit used by revoke (before a partition is released)
//! and by shutdown (under the shutdown deadline), and the classification every commit
//! result goes through. Outcomes are counted once, in the consumer's commit callback
//! (librdkafka reports automatic and synchronous commits there alike), except a commit
//! that did not answer before the deadline, which no callback reports.

use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;
use tracing::{debug, info, warn};

use crate::ops::events::{self, CommitResult};
use crate::ops::Metrics;

/// What a commit did. "Nothing new to commit" is a success, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    Done,
    NothingNew,
    Failed(String),
    TimedOut,
}

/// Classifies a commit result. `None` for "nothing new to commit".
pub fn classify(result: &KafkaResult<()>) -> Option<CommitResult> {
    match result {
        Ok(()) => Some(CommitResult::Ok),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => None,
        Err(_) => Some(CommitResult::Error),
    }
}

/// Commits synchronously: `offsets` when given (a revoke's final offsets), else every
/// stored offset. Blocks until the broker answers; call it where blocking is allowed (the
/// pump thread, or a blocking task).
pub fn commit_sync<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: Option<&TopicPartitionList>,
) -> Committed {
    let result = match offsets {
        Some(list) => consumer.commit(list, CommitMode::Sync),
        None => consumer.commit_consumer_state(CommitMode::Sync),
    };
    match (classify(&result), result) {
        (None, _) => Committed::NothingNew,
        (_, Ok(())) => Committed::Done,
        (_, Err(error)) => Committed::Failed(error.to_string()),
    }
}

/// Commits every stored offset on a blocking thread, waiting at most until `deadline`. A
/// commit still running then is left behind (it can only commit acknowledged offsets).
pub async fn commit_stored_until<C: ConsumerContext + 'static>(
    consumer: Arc<BaseConsumer<C>>,
    deadline: tokio::time::Instant,
    metrics: &Metrics,
) -> Committed {
    let commit = tokio::task::spawn_blocking(move || commit_sync(&consumer, None));
    let committed = match tokio::time::timeout_at(deadline, commit).await {
        Ok(Ok(committed)) => committed,
        Ok(Err(join_error)) => Committed::Failed(join_error.to_string()),
        Err(_) => {
            events::commit_finished(metrics, CommitResult::Timeout, None);
            Committed::TimedOut
        }
    };
    match &committed {
        Committed::Done => info!("Committed final offsets"),
        Committed::NothingNew => info!("No new offsets to commit"),
        Committed::Failed(error) => {
            warn!(%error, "Final commit failed; uncommitted records will be redelivered")
        }
        Committed::TimedOut => {}
    }
    committed
}

/// Logs the outcome of a revoke's commit (counted by the commit callback).
pub fn log_revoke_commit(committed: &Committed, partitions: usize) {
    match committed {
        Committed::Done => debug!(partitions, "Committed revoked partitions"),
        Committed::NothingNew => {}
        Committed::Failed(error) => warn!(
            %error,
            "Could not commit revoked partitions; the next owner redelivers from the last commit"
        ),
        Committed::TimedOut => {}
    }
}
