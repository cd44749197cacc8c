//! Offsets skipped by an offset reset: when a partition's fetch position is out of range
//! (retention or `DeleteRecords` removed the records before anyone consumed them),
//! librdkafka moves it per `auto.offset.reset` and says so only in a log line. We read that
//! line, remember where the partition was, and the next record received tells how many
//! offsets were skipped. Pure parsing and bookkeeping, unit-tested here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A reset that librdkafka reported: the partition and the offset it could not fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetReset {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
}

/// Parses librdkafka's `OFFSET` warning, e.g. `orders [3]: offset reset (at offset 8 (leader
/// epoch 8), broker 1) to offset BEGINNING (leader epoch -1): fetch failed due to requested
/// offset not available on the broker: Broker: Offset out of range`.
pub fn parse(message: &str) -> Option<OffsetReset> {
    let (partition_part, rest) = message.split_once("]: offset reset (at offset ")?;
    let (before, partition) = partition_part.rsplit_once(" [")?;
    // The message starts with librdkafka's thread tag (`[thrd:main]: `); topic names hold no
    // spaces, so the topic is the last word before ` [partition]`.
    let topic = before.rsplit(' ').next()?;
    let from: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(OffsetReset {
        topic: topic.to_string(),
        partition: partition.parse().ok()?,
        from: from.parse().ok()?,
    })
}

/// Shared between the log callback (marks a reset) and the partition's source (checks each
/// record). One relaxed atomic load per record when nothing happened.
#[derive(Debug, Clone)]
pub struct ResetWatch(Arc<AtomicI64>);

impl Default for ResetWatch {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(-1)))
    }
}

impl ResetWatch {
    /// The partition's fetch position `from` was out of range and was reset.
    pub fn mark(&self, from: i64) {
        self.0.store(from, Ordering::Relaxed);
    }

    /// Called with each received offset: after a reset, the first record at or past the old
    /// position ends it; returns the skipped range `from..offset` (end exclusive: where
    /// delivery resumed) when one was skipped. Records below the old position (fetched
    /// before the reset) leave it pending.
    pub fn check(&self, offset: i64) -> Option<(i64, i64)> {
        let from = self.0.load(Ordering::Relaxed);
        if from < 0 || offset < from {
            return None;
        }
        self.0.store(-1, Ordering::Relaxed);
        (offset > from).then_some((from, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_librdkafka_reset_lines() {
        assert_eq!(
            parse("orders.v1 [3]: offset reset (at offset 8 (leader epoch 8), broker 1) to offset BEGINNING (leader epoch -1): fetch failed due to requested offset not available on the broker: Broker: Offset out of range"),
            Some(OffsetReset { topic: "orders.v1".into(), partition: 3, from: 8 })
        );
        assert_eq!(
            parse("t [0]: offset reset (at offset 1234, broker 2) to cached BEGINNING offset 2000: fetch failed: Broker: Offset out of range"),
            Some(OffsetReset { topic: "t".into(), partition: 0, from: 1234 })
        );
        assert_eq!(
            parse("t [0]: offset reset (at offset INVALID, broker 1) to END"),
            None
        );
        assert_eq!(
            parse("[thrd:main]: fault-deleted-1-2-0 [0]: offset reset (at offset 100 (leader epoch -1), broker 1) to offset BEGINNING (leader epoch -1): fetch failed due to requested offset not available on the broker: Broker: Offset out of range"),
            Some(OffsetReset { topic: "fault-deleted-1-2-0".into(), partition: 0, from: 100 })
        );
        assert_eq!(parse("Fetch backoff"), None);
    }

    #[test]
    fn the_first_record_past_the_old_position_gives_the_skipped_range() {
        let watch = ResetWatch::default();
        assert_eq!(watch.check(5), None, "no reset yet");
        watch.mark(100);
        assert_eq!(watch.check(97), None, "prefetched before the reset");
        assert_eq!(watch.check(150), Some((100, 150)));
        assert_eq!(watch.check(151), None, "counted once");
        watch.mark(200);
        assert_eq!(watch.check(200), None, "nothing was skipped");
        assert_eq!(watch.check(300), None);
    }
}
