//! Which buffered record of a partition may be sent next, per ordering mode:
//! `partition` (one at a time, in offset order), `key` (up to the cap, never two of one key,
//! each key in offset order) and `none` (up to the cap, any order). With batching the unit in
//! flight is a batch ([`Scheduler::take_batch`]): `partition` sends consecutive records, one
//! batch at a time; `key` never lets two batches in flight share a key (a batch may hold
//! several records of one key, in offset order); `none` takes any records. Pure, no I/O.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;

use crate::config::Ordering;

/// The ordering key of a record. Records without a key are independent of each other in
/// `key` mode (Kafka itself spreads null-key records without order).
pub type Key = Option<Bytes>;

/// Buffers a partition's records in offset order and releases them as ordering allows.
#[derive(Debug)]
pub struct Scheduler<T> {
    ordering: Ordering,
    cap: usize,
    waiting: VecDeque<(Key, T)>,
    in_flight: usize,
    in_flight_keys: HashSet<Bytes>,
}

impl<T> Scheduler<T> {
    /// `cap` is the in-flight limit (forced to 1 in `partition` mode).
    pub fn new(ordering: Ordering, cap: usize) -> Self {
        let cap = match ordering {
            Ordering::Partition => 1,
            _ => cap.max(1),
        };
        Self {
            ordering,
            cap,
            waiting: VecDeque::new(),
            in_flight: 0,
            in_flight_keys: HashSet::new(),
        }
    }

    /// Adds the next record of the partition (offset order).
    pub fn push(&mut self, key: Key, item: T) {
        self.waiting.push_back((key, item));
    }

    /// Takes the next record that may be sent now, marking it in flight.
    pub fn next_ready(&mut self) -> Option<(Key, T)> {
        if self.in_flight >= self.cap {
            return None;
        }
        let index = match self.ordering {
            Ordering::Partition | Ordering::None => (!self.waiting.is_empty()).then_some(0),
            Ordering::Key => self.first_free_key(),
        }?;
        let (key, item) = self.waiting.remove(index)?;
        if let (Ordering::Key, Some(key)) = (self.ordering, &key) {
            self.in_flight_keys.insert(key.clone());
        }
        self.in_flight += 1;
        Some((key, item))
    }

    /// The first waiting record whose key is neither in flight nor held by an earlier
    /// waiting record (which keeps each key in offset order).
    fn first_free_key(&self) -> Option<usize> {
        let mut earlier: HashSet<&Bytes> = HashSet::new();
        for (index, (key, _)) in self.waiting.iter().enumerate() {
            match key {
                None => return Some(index),
                Some(key) => {
                    if !self.in_flight_keys.contains(key) && !earlier.contains(key) {
                        return Some(index);
                    }
                    earlier.insert(key);
                }
            }
        }
        None
    }

    /// Takes the next batch: up to `max_records` waiting records that may be sent now, in
    /// offset order, while `accept` takes them (it sees each candidate once; the first
    /// refusal ends the batch and leaves that record waiting). Marks the batch in flight;
    /// returns its records and the keys to give back to [`finished_batch`](Self::finished_batch)
    /// (empty outside `key` mode). Nothing when the cap is reached or no record may go.
    pub fn take_batch(
        &mut self,
        max_records: usize,
        mut accept: impl FnMut(&T) -> bool,
    ) -> (Vec<T>, Vec<Bytes>) {
        let mut items = Vec::new();
        if self.in_flight >= self.cap || max_records == 0 {
            return (items, Vec::new());
        }
        let mut keys = Vec::new();
        if self.ordering != Ordering::Key {
            while items.len() < max_records {
                match self.waiting.front() {
                    Some((_, item)) if accept(item) => {}
                    _ => break,
                }
                if let Some((_, item)) = self.waiting.pop_front() {
                    items.push(item);
                }
            }
        } else {
            // The scan borrows the keys; only the batch's distinct keys are copied (reference
            // counts), once, after it.
            let mut taken_keys: HashSet<&Bytes> = HashSet::new();
            // Keys of records left waiting: a later record of such a key must wait too.
            let mut skipped: HashSet<&Bytes> = HashSet::new();
            let mut taken = vec![false; self.waiting.len()];
            let mut count = 0;
            for (index, (key, item)) in self.waiting.iter().enumerate() {
                if count == max_records {
                    break;
                }
                if let Some(key) = key {
                    if self.in_flight_keys.contains(key) || skipped.contains(key) {
                        skipped.insert(key);
                        continue;
                    }
                }
                if !accept(item) {
                    break;
                }
                taken[index] = true;
                count += 1;
                if let Some(key) = key {
                    taken_keys.insert(key);
                }
            }
            keys = taken_keys.into_iter().cloned().collect();
            if count > 0 {
                let waiting = std::mem::take(&mut self.waiting);
                for ((key, item), taken) in waiting.into_iter().zip(taken) {
                    if taken {
                        items.push(item);
                    } else {
                        self.waiting.push_back((key, item));
                    }
                }
                self.in_flight_keys.extend(keys.iter().cloned());
            }
        }
        if !items.is_empty() {
            self.in_flight += 1;
        }
        (items, keys)
    }

    /// A batch released by `take_batch` is finished (every entry settled or abandoned).
    pub fn finished_batch(&mut self, keys: &[Bytes]) {
        self.in_flight = self.in_flight.saturating_sub(1);
        for key in keys {
            self.in_flight_keys.remove(key);
        }
    }

    /// The oldest waiting record.
    pub fn front(&self) -> Option<&T> {
        self.waiting.front().map(|(_, item)| item)
    }

    /// A record released by `next_ready` is finished (acknowledged or abandoned).
    pub fn finished(&mut self, key: &Key) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let (Ordering::Key, Some(key)) = (self.ordering, key) {
            self.in_flight_keys.remove(key);
        }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Drops every waiting record (on revoke or shutdown: they were never sent and are not
    /// committed, so the next owner delivers them).
    pub fn clear_waiting(&mut self) -> Vec<T> {
        self.waiting.drain(..).map(|(_, item)| item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(text: &str) -> Key {
        Some(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn partition_mode_is_one_at_a_time() {
        let mut scheduler = Scheduler::new(Ordering::Partition, 64);
        scheduler.push(key("a"), 1);
        scheduler.push(key("b"), 2);
        assert_eq!(scheduler.next_ready().map(|(_, item)| item), Some(1));
        assert!(scheduler.next_ready().is_none());
        scheduler.finished(&key("a"));
        assert_eq!(scheduler.next_ready().map(|(_, item)| item), Some(2));
    }

    #[test]
    fn key_mode_never_runs_one_key_twice() {
        let mut scheduler = Scheduler::new(Ordering::Key, 10);
        for (index, name) in ["a", "a", "b", "a", "c"].iter().enumerate() {
            scheduler.push(key(name), index);
        }
        let first: Vec<usize> =
            std::iter::from_fn(|| scheduler.next_ready().map(|(_, item)| item)).collect();
        assert_eq!(first, vec![0, 2, 4]);
        scheduler.finished(&key("a"));
        assert_eq!(scheduler.next_ready().map(|(_, item)| item), Some(1));
        assert!(scheduler.next_ready().is_none());
    }

    #[test]
    fn null_keys_are_independent() {
        let mut scheduler = Scheduler::new(Ordering::Key, 3);
        for index in 0..4 {
            scheduler.push(None, index);
        }
        assert_eq!(std::iter::from_fn(|| scheduler.next_ready()).count(), 3);
    }

    #[test]
    fn none_mode_respects_cap() {
        let mut scheduler = Scheduler::new(Ordering::None, 2);
        for index in 0..5 {
            scheduler.push(key("same"), index);
        }
        assert_eq!(std::iter::from_fn(|| scheduler.next_ready()).count(), 2);
        scheduler.finished(&key("same"));
        assert!(scheduler.next_ready().is_some());
    }

    #[test]
    fn partition_batches_are_consecutive_and_one_at_a_time() {
        let mut scheduler = Scheduler::new(Ordering::Partition, 64);
        for index in 0..7 {
            scheduler.push(key("a"), index);
        }
        let (first, _) = scheduler.take_batch(3, |_| true);
        assert_eq!(first, vec![0, 1, 2]);
        assert!(scheduler.take_batch(3, |_| true).0.is_empty());
        scheduler.finished_batch(&[]);
        // The byte limit (here: accept) ends a batch and leaves the record waiting.
        let (second, _) = scheduler.take_batch(3, |item| *item < 4);
        assert_eq!(second, vec![3]);
        scheduler.finished_batch(&[]);
        assert_eq!(scheduler.front(), Some(&4));
    }

    #[test]
    fn key_batches_skip_keys_in_flight_and_keep_each_key_in_order() {
        let mut scheduler = Scheduler::new(Ordering::Key, 4);
        for (index, name) in ["a", "b", "a", "c", "b"].iter().enumerate() {
            scheduler.push(key(name), index);
        }
        let (first, keys) = scheduler.take_batch(2, |_| true);
        assert_eq!(first, vec![0, 1]);
        // a and b are in flight: only c may go, and b's later record waits.
        let (second, _) = scheduler.take_batch(10, |_| true);
        assert_eq!(second, vec![3]);
        assert!(scheduler.take_batch(10, |_| true).0.is_empty());
        scheduler.finished_batch(&keys);
        let (third, _) = scheduler.take_batch(10, |_| true);
        assert_eq!(third, vec![2, 4]);
    }

    proptest! {
        /// Key-mode batches, any completion order: cap respected, no key in two batches in
        /// flight, each key's records released in offset order, everything released.
        #[test]
        fn key_batch_invariants(
            keys in proptest::collection::vec(0u8..6, 1..120),
            cap in 1usize..5,
            size in 1usize..9,
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 200),
        ) {
            let mut scheduler = Scheduler::new(Ordering::Key, cap);
            for (offset, name) in keys.iter().enumerate() {
                scheduler.push(key(&name.to_string()), offset);
            }
            let mut running: Vec<(Vec<usize>, Vec<Bytes>)> = Vec::new();
            let mut released: Vec<usize> = Vec::new();
            let mut pick = 0;
            loop {
                loop {
                    let (batch, batch_keys) = scheduler.take_batch(size, |_| true);
                    if batch.is_empty() {
                        break;
                    }
                    prop_assert!(batch.len() <= size);
                    prop_assert!(batch.windows(2).all(|pair| pair[0] < pair[1]));
                    for (other, _) in &running {
                        prop_assert!(!other.iter().any(|o| batch.iter().any(|b| keys[*o] == keys[*b])));
                    }
                    released.extend(&batch);
                    running.push((batch, batch_keys));
                    prop_assert!(running.len() <= cap);
                }
                if running.is_empty() {
                    break;
                }
                let index = picks[pick % picks.len()].index(running.len());
                pick += 1;
                let (_, batch_keys) = running.remove(index);
                scheduler.finished_batch(&batch_keys);
            }
            prop_assert_eq!(released.len(), keys.len());
            for name in 0u8..6 {
                let offsets: Vec<usize> = released.iter().copied().filter(|o| keys[*o] == name).collect();
                prop_assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
            }
        }

        /// In key mode, any completion order keeps: cap respected, no key twice in flight,
        /// each key's records released in offset order, everything released eventually.
        #[test]
        fn key_mode_invariants(
            keys in proptest::collection::vec(0u8..5, 1..80),
            cap in 1usize..8,
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 200),
        ) {
            let mut scheduler = Scheduler::new(Ordering::Key, cap);
            for (offset, name) in keys.iter().enumerate() {
                scheduler.push(key(&name.to_string()), offset);
            }
            let mut running: Vec<(Key, usize)> = Vec::new();
            let mut released: Vec<(u8, usize)> = Vec::new();
            let mut pick = 0;
            loop {
                while let Some((key, offset)) = scheduler.next_ready() {
                    prop_assert!(!running.iter().any(|(other, _)| *other == key));
                    running.push((key, offset));
                    prop_assert!(running.len() <= cap);
                    released.push((keys[offset], offset));
                }
                if running.is_empty() {
                    break;
                }
                let index = picks[pick % picks.len()].index(running.len());
                pick += 1;
                let (key, _) = running.remove(index);
                scheduler.finished(&key);
            }
            prop_assert_eq!(released.len(), keys.len());
            for name in 0u8..5 {
                let offsets: Vec<usize> = released.iter().filter(|(k, _)| *k == name).map(|(_, o)| *o).collect();
                prop_assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
            }
        }
    }
}
