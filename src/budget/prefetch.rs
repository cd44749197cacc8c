//! librdkafka's share of the memory budget: what it may prefetch for one partition.

/// A partition's prefetch in librdkafka: its queue (`queued.max.messages.kbytes`) plus the
/// one fetch answer in flight for it (`max.partition.fetch.bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    pub queued_kbytes: u64,
    pub fetch_bytes: u64,
}

/// Below these a partition fetches so little per round trip that the fetch requests, not
/// the records, cost the CPU.
pub const MIN_QUEUED_KBYTES: u64 = 8;
pub const MIN_FETCH_BYTES: u64 = 8 << 10;

impl Prefetch {
    /// The prefetch of one partition when any of `partitions` may be assigned: half of
    /// `budget` split evenly, half of each share for the queue and half for the fetch in
    /// flight; never more than `cap` (the sizes chosen for throughput), never less than the
    /// floors.
    pub fn within(budget: u64, partitions: usize, cap: Prefetch) -> Prefetch {
        let share = budget / 2 / partitions.max(1) as u64;
        Prefetch {
            queued_kbytes: (share / 2 / 1024)
                .min(cap.queued_kbytes)
                .max(MIN_QUEUED_KBYTES),
            fetch_bytes: (share / 2).min(cap.fetch_bytes).max(MIN_FETCH_BYTES),
        }
    }

    /// What librdkafka may hold for `partitions` at most (records larger than a fetch
    /// aside).
    pub fn bytes_for(self, partitions: usize) -> u64 {
        (self.queued_kbytes * 1024 + self.fetch_bytes) * partitions as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Prefetch = Prefetch {
        queued_kbytes: 512,
        fetch_bytes: 256 << 10,
    };
    const MIB: u64 = 1 << 20;

    #[test]
    fn few_partitions_keep_the_throughput_sizes() {
        assert_eq!(Prefetch::within(64 * MIB, 12, CAP), CAP);
        assert_eq!(Prefetch::within(64 * MIB, 1, CAP), CAP);
        assert_eq!(Prefetch::within(64 * MIB, 0, CAP), CAP, "0 counts as 1");
    }

    #[test]
    fn many_partitions_share_half_the_budget() {
        let prefetch = Prefetch::within(64 * MIB, 1000, CAP);
        assert_eq!(prefetch.queued_kbytes, 16);
        assert_eq!(prefetch.fetch_bytes, 16_777);
        assert!(prefetch.bytes_for(1000) <= 32 * MIB);
        for partitions in [1, 10, 64, 100, 128, 500, 1000, 2000] {
            let prefetch = Prefetch::within(64 * MIB, partitions, CAP);
            assert!(
                prefetch.bytes_for(partitions) <= 32 * MIB,
                "{partitions}: {prefetch:?}"
            );
        }
    }

    #[test]
    fn the_floors_hold_past_the_budget() {
        let prefetch = Prefetch::within(8 * MIB, 10_000, CAP);
        assert_eq!(prefetch.queued_kbytes, MIN_QUEUED_KBYTES);
        assert_eq!(prefetch.fetch_bytes, MIN_FETCH_BYTES);
    }
}
