//! The workers' share of the memory budget: how many bytes of records each assigned
//! partition may hold (buffered, in flight, and batch bodies), recomputed on every
//! assignment.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Half of the budget split among the partitions assigned now, each share at most `cap`
/// (the buffer a partition needs for full speed: 4 MiB, or two batches).
#[derive(Debug)]
pub struct BufferShare {
    total: usize,
    cap: usize,
    per_partition: AtomicUsize,
}

impl BufferShare {
    pub fn new(budget: u64, cap: usize) -> Self {
        let total = usize::try_from(budget / 2).unwrap_or(usize::MAX);
        Self {
            total,
            cap,
            per_partition: AtomicUsize::new(cap.min(total)),
        }
    }

    /// The assignment changed: `partitions` are assigned now.
    pub fn assigned(&self, partitions: usize) {
        let share = (self.total / partitions.max(1)).min(self.cap);
        self.per_partition.store(share, Ordering::Relaxed);
    }

    /// Bytes one partition may hold now. A worker holding nothing still takes one record,
    /// however large.
    pub fn bytes(&self) -> usize {
        self.per_partition.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_share_follows_the_assignment() {
        let share = BufferShare::new(64 << 20, 4 * MIB);
        assert_eq!(share.bytes(), 4 * MIB);
        share.assigned(4);
        assert_eq!(share.bytes(), 4 * MIB, "capped at what full speed needs");
        share.assigned(1000);
        assert_eq!(share.bytes(), 32 * MIB / 1000);
        assert!(share.bytes() * 1000 <= 32 * MIB);
        share.assigned(0);
        assert_eq!(share.bytes(), 4 * MIB);
    }
}
