//! Offset watermark tracking for one partition: the committable offset is always the lowest
//! offset received but not yet acknowledged (or one past the last received when all are
//! acknowledged), whatever order acknowledgements arrive in. Pure, no I/O. Also the slot the
//! consumer's position look-up offers a partition's position in ([`PositionHint`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// Tracks the records of one partition between receipt and acknowledgement.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Received offsets in increasing order with their acknowledged flag. Only the
    /// not-yet-committable tail is kept, so its length is bounded by what is in the
    /// worker's buffer and in flight.
    pending: VecDeque<(i64, bool, Instant)>,
    /// One past the highest offset received (the committable offset when nothing is pending).
    next_offset: Option<i64>,
}

/// An offset outside what the tracker has seen; a bug in the caller, reported, not panicked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    #[error("offset {offset} arrived after {next}; offsets of a partition must increase")]
    NotIncreasing { offset: i64, next: i64 },
    #[error("offset {offset} was acknowledged but is not pending")]
    UnknownAck { offset: i64 },
}

impl OffsetTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a record received now. Offsets must increase (gaps are normal: compaction,
    /// transaction markers).
    #[cfg(test)]
    pub fn received(&mut self, offset: i64) -> Result<(), TrackError> {
        self.received_at(offset, Instant::now())
    }

    /// Registers a record received at `at`. Offsets must increase (gaps are normal:
    /// compaction, transaction markers).
    pub fn received_at(&mut self, offset: i64, at: Instant) -> Result<(), TrackError> {
        if let Some(next) = self.next_offset {
            if offset < next {
                return Err(TrackError::NotIncreasing { offset, next });
            }
        }
        self.pending.push_back((offset, false, at));
        self.next_offset = Some(offset + 1);
        Ok(())
    }

    /// Marks a record acknowledged. Returns the new committable offset if it advanced.
    pub fn acknowledged(&mut self, offset: i64) -> Result<Option<i64>, TrackError> {
        let index = self
            .pending
            .binary_search_by_key(&offset, |(pending, _, _)| *pending)
            .map_err(|_| TrackError::UnknownAck { offset })?;
        if self.pending[index].1 {
            return Err(TrackError::UnknownAck { offset });
        }
        self.pending[index].1 = true;
        if index != 0 {
            return Ok(None);
        }
        while matches!(self.pending.front(), Some((_, true, _))) {
            self.pending.pop_front();
        }
        Ok(self.committable())
    }

    /// The consumer's position moved to `position` without records (librdkafka skips
    /// transaction markers and aborted records without handing them out). Only call it with
    /// a position whose every record below was already passed to [`received`](Self::received):
    /// then committing up to it skips nothing.
    pub fn advance_to(&mut self, position: i64) {
        if self.next_offset.is_none_or(|next| position > next) {
            self.next_offset = Some(position);
        }
    }

    /// The offset to commit: the lowest unacknowledged offset, else one past the last
    /// received; `None` before the first record.
    pub fn committable(&self) -> Option<i64> {
        match self.pending.front() {
            Some((offset, _, _)) => Some(*offset),
            None => self.next_offset,
        }
    }

    /// The lowest unacknowledged offset and when it was received (the head-of-line record).
    pub fn oldest_unacknowledged(&self) -> Option<(i64, Instant)> {
        self.pending
            .iter()
            .find(|(_, acked, _)| !acked)
            .map(|(offset, _, at)| (*offset, *at))
    }

    /// Received but not acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.pending.iter().filter(|(_, acked, _)| !acked).count()
    }
}

/// The partition's position in the consumer, offered by the consumer's one position
/// look-up for the whole assignment (librdkafka moves it past transaction markers and
/// aborted records, which never reach the worker as records), taken by the worker when it
/// wakes. The worker publishes what it stored, so a look-up wakes only the workers whose
/// position moved past it: an idle partition is never woken.
#[derive(Debug)]
pub struct PositionHint {
    offered: AtomicI64,
    stored: AtomicI64,
}

/// No offset (offsets are never negative).
const NONE: i64 = i64::MIN;

impl Default for PositionHint {
    fn default() -> Self {
        Self {
            offered: AtomicI64::new(NONE),
            stored: AtomicI64::new(NONE),
        }
    }
}

impl PositionHint {
    /// Offers the position a look-up found. Every record below it must have been handed to
    /// this hint's worker when the look-up was made (the look-up began while this worker
    /// ran). Returns whether the worker should be woken to take it: it is past what the
    /// worker stored and not offered already.
    pub fn offer(&self, position: i64) -> bool {
        if position <= self.stored.load(Ordering::Relaxed) {
            return false;
        }
        self.offered.fetch_max(position, Ordering::Relaxed) < position
    }

    /// The position offered since the last take, if any.
    pub fn take(&self) -> Option<i64> {
        let offered = self.offered.swap(NONE, Ordering::Relaxed);
        (offered != NONE).then_some(offered)
    }

    /// The worker stored `offset`.
    pub fn stored(&self, offset: i64) {
        self.stored.store(offset, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_acks_advance() {
        let mut tracker = OffsetTracker::new();
        assert_eq!(tracker.committable(), None);
        for offset in 10..13 {
            tracker.received(offset).unwrap();
        }
        assert_eq!(tracker.committable(), Some(10));
        assert_eq!(tracker.acknowledged(10), Ok(Some(11)));
        assert_eq!(tracker.acknowledged(11), Ok(Some(12)));
        assert_eq!(tracker.acknowledged(12), Ok(Some(13)));
        assert_eq!(tracker.committable(), Some(13));
    }

    #[test]
    fn out_of_order_acks_wait_for_the_gap() {
        let mut tracker = OffsetTracker::new();
        for offset in [5, 6, 9] {
            tracker.received(offset).unwrap();
        }
        assert_eq!(tracker.acknowledged(9), Ok(None));
        assert_eq!(tracker.acknowledged(6), Ok(None));
        assert_eq!(tracker.committable(), Some(5));
        assert_eq!(
            tracker.oldest_unacknowledged().map(|(offset, _)| offset),
            Some(5)
        );
        assert_eq!(tracker.acknowledged(5), Ok(Some(10)));
        assert_eq!(tracker.unacknowledged(), 0);
    }

    #[test]
    fn rejects_misuse() {
        let mut tracker = OffsetTracker::new();
        tracker.received(3).unwrap();
        assert!(tracker.received(3).is_err());
        assert!(tracker.acknowledged(4).is_err());
        tracker.acknowledged(3).unwrap();
        assert!(tracker.acknowledged(3).is_err());
    }

    #[test]
    fn a_position_past_control_records_becomes_committable_once_nothing_is_pending() {
        let mut tracker = OffsetTracker::new();
        tracker.received(10).unwrap();
        tracker.received(11).unwrap();
        // Offset 12 is a commit marker: the position moves to 13 without a record.
        tracker.advance_to(13);
        assert_eq!(
            tracker.committable(),
            Some(10),
            "10 and 11 are not acknowledged"
        );
        tracker.acknowledged(11).unwrap();
        assert_eq!(tracker.committable(), Some(10));
        tracker.acknowledged(10).unwrap();
        assert_eq!(tracker.committable(), Some(13));
        tracker.advance_to(12);
        assert_eq!(tracker.committable(), Some(13), "never moves back");
        tracker.received(15).unwrap();
        assert_eq!(tracker.committable(), Some(15));
        let mut fresh = OffsetTracker::new();
        fresh.advance_to(4);
        assert_eq!(fresh.committable(), Some(4));
    }

    proptest! {
        /// The committable offset never passes an unacknowledged record, and reaches the end
        /// once everything is acknowledged, for any ack order.
        #[test]
        fn never_passes_an_unacknowledged_record(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 60),
        ) {
            let mut tracker = OffsetTracker::new();
            let mut offsets = Vec::new();
            let mut offset = 100;
            for gap in gaps {
                tracker.received(offset).unwrap();
                offsets.push(offset);
                offset += gap;
            }
            let mut remaining = offsets.clone();
            let mut index = 0;
            while !remaining.is_empty() {
                let pick = order[index % order.len()].index(remaining.len());
                index += 1;
                let acked = remaining.remove(pick);
                tracker.acknowledged(acked).unwrap();
                let committable = tracker.committable().unwrap();
                let lowest = remaining.iter().min().copied();
                match lowest {
                    Some(lowest) => prop_assert_eq!(committable, lowest),
                    None => prop_assert_eq!(committable, offsets[offsets.len() - 1] + 1),
                }
            }
        }
    }

    #[test]
    fn a_position_hint_wakes_only_for_a_new_position_past_the_stored_offset() {
        let hint = PositionHint::default();
        assert_eq!(hint.take(), None);
        assert!(hint.offer(5), "nothing stored yet");
        assert!(!hint.offer(5), "offered already");
        assert!(!hint.offer(4), "behind what was offered");
        assert!(hint.offer(6));
        assert_eq!(hint.take(), Some(6));
        assert_eq!(hint.take(), None);
        hint.stored(6);
        assert!(
            !hint.offer(6),
            "the worker stored it: an idle partition is not woken"
        );
        assert!(!hint.offer(3));
        assert!(hint.offer(9), "markers moved the position on");
        assert_eq!(hint.take(), Some(9));
    }
}
