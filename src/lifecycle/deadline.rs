//! One deadline for the whole shutdown: each step (drain, commit, close) gets its own limit,
//! capped by what remains, so no step can carry the process past the pod's grace period.

use std::time::Duration;

use tokio::time::Instant;

/// A point in time every step of a sequence must finish by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// When a step with its own `limit` must end: `now + limit`, but never after the deadline.
    pub fn cap(&self, limit: Duration) -> Instant {
        (Instant::now() + limit).min(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn steps_are_capped_by_what_remains() {
        let deadline = Deadline::after(Duration::from_secs(29));
        assert_eq!(deadline.remaining(), Duration::from_secs(29));
        // A 20 s drain fits entirely.
        assert_eq!(
            deadline.cap(Duration::from_secs(20)),
            Instant::now() + Duration::from_secs(20)
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        // A commit that would wait 10 s more gets the 9 s left.
        assert_eq!(deadline.cap(Duration::from_secs(10)), deadline.at());
        assert_eq!(deadline.remaining(), Duration::from_secs(9));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert_eq!(deadline.cap(Duration::from_secs(1)), deadline.at());
    }
}
