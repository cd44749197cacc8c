//! When a partition's fetching is paused and resumed (`delivery.pause_fetch_after`), decided
//! from the head record's wait and the partition's progress, time injected.
//!
//! Paused when the oldest unacknowledged record has waited `after` and nothing in the
//! partition was acknowledged for `after` either (so, in `key` mode, one blocked key does not
//! pause a partition whose other keys flow). Resumed at the next acknowledgement, or when
//! nothing is unacknowledged any more.

use std::time::{Duration, Instant};

/// What the worker should do to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseChange {
    /// Pause fetching: `head` waited `waited`.
    Pause {
        head: i64,
        waited: Duration,
    },
    Resume,
}

#[derive(Debug)]
pub struct PauseControl {
    after: Option<Duration>,
    paused: bool,
    /// Something was acknowledged since the last check (the check dates it: no clock read
    /// per acknowledgement on the hot path).
    progressed: bool,
    last_progress: Instant,
}

impl PauseControl {
    /// `after`: `None` never pauses.
    pub fn new(after: Option<Duration>, now: Instant) -> Self {
        Self {
            after,
            paused: false,
            progressed: false,
            last_progress: now,
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// A record was acknowledged.
    pub fn acknowledged(&mut self) -> Option<PauseChange> {
        self.progressed = true;
        self.paused.then(|| {
            self.paused = false;
            PauseChange::Resume
        })
    }

    /// The periodic check; `head` is the oldest unacknowledged record and when it arrived.
    /// Progress since the last check counts as made at `now`.
    pub fn check(&mut self, head: Option<(i64, Instant)>, now: Instant) -> Option<PauseChange> {
        if std::mem::take(&mut self.progressed) {
            self.last_progress = now;
        }
        let after = self.after?;
        match head {
            None => {
                self.last_progress = now;
                self.paused.then(|| {
                    self.paused = false;
                    PauseChange::Resume
                })
            }
            Some(_) if self.paused => None,
            Some((head, received)) => {
                let waited = now.saturating_duration_since(received);
                let stalled = now.saturating_duration_since(self.last_progress);
                (waited >= after && stalled >= after).then(|| {
                    self.paused = true;
                    PauseChange::Pause { head, waited }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(10);

    #[test]
    fn pauses_a_stalled_head_and_resumes_when_it_moves() {
        let start = Instant::now();
        let mut control = PauseControl::new(Some(AFTER), start);
        let head = Some((5, start));
        assert_eq!(control.check(head, start + Duration::from_secs(9)), None);
        assert_eq!(
            control.check(head, start + AFTER),
            Some(PauseChange::Pause {
                head: 5,
                waited: AFTER
            })
        );
        assert!(control.is_paused());
        assert_eq!(control.check(head, start + 2 * AFTER), None);
        assert_eq!(control.acknowledged(), Some(PauseChange::Resume));
        assert_eq!(control.acknowledged(), None);
        // The next head arrived long ago too, but the partition just moved: not paused again
        // until it stalls for `after`.
        let next = Some((6, start));
        assert_eq!(
            control.check(next, start + 2 * AFTER + Duration::from_secs(1)),
            None
        );
        assert_eq!(control.check(next, start + 3 * AFTER), None);
        assert!(control
            .check(next, start + 3 * AFTER + Duration::from_secs(1))
            .is_some());
    }

    #[test]
    fn progress_elsewhere_in_the_partition_keeps_it_fetching() {
        let start = Instant::now();
        let mut control = PauseControl::new(Some(AFTER), start);
        let head = Some((5, start));
        for second in 1..60 {
            let now = start + Duration::from_secs(second);
            control.acknowledged();
            assert_eq!(control.check(head, now), None);
        }
    }

    #[test]
    fn nothing_unacknowledged_resumes_and_nothing_configured_never_pauses() {
        let start = Instant::now();
        let mut control = PauseControl::new(Some(AFTER), start);
        assert!(control.check(Some((1, start)), start + AFTER).is_some());
        assert_eq!(
            control.check(None, start + 2 * AFTER),
            Some(PauseChange::Resume)
        );
        let mut off = PauseControl::new(None, start);
        assert_eq!(off.check(Some((1, start)), start + 100 * AFTER), None);
    }
}
