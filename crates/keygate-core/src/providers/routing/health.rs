//! The health of one deployment, shared by every request: its run of consecutive retryable
//! failures and the cooldown that follows `allowed_fails` of them. Lock-free atomics; a
//! success costs one load (and a store only after a failure).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Failure count and cooldown of one deployment. Times are milliseconds since the process's
/// routing epoch (see [`crate::providers::route`]).
#[derive(Debug, Default)]
pub(super) struct Health {
    fails: AtomicU32,
    cooldown_until: AtomicU64,
    last_failed: AtomicU64,
}

impl Health {
    /// Whether the deployment is cooling down at `now`.
    pub fn cooling(&self, now: u64) -> bool {
        self.cooldown_until.load(Ordering::Relaxed) > now
    }

    /// When it last failed (0: never).
    pub fn last_failed(&self) -> u64 {
        self.last_failed.load(Ordering::Relaxed)
    }

    /// Counts a retryable failure at `now`; true when it starts a cooldown (the `allowed`-th
    /// failure in a row). Of concurrent failures, only one starts it.
    pub fn failed(&self, now: u64, allowed: u32, cooldown: Duration) -> bool {
        self.last_failed.store(now, Ordering::Relaxed);
        let fails = self.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if fails < allowed || self.fails.swap(0, Ordering::Relaxed) < allowed {
            return false;
        }
        let period = u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX);
        self.cooldown_until
            .fetch_max(now.saturating_add(period), Ordering::Relaxed);
        true
    }

    /// Ends a run of failures.
    pub fn succeeded(&self) {
        if self.fails.load(Ordering::Relaxed) != 0 {
            self.fails.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cools_down_after_allowed_fails_in_a_row() {
        let health = Health::default();
        let cooldown = Duration::from_millis(1_000);
        assert!(!health.failed(10, 3, cooldown));
        health.succeeded();
        assert!(!health.failed(11, 3, cooldown));
        assert!(!health.failed(12, 3, cooldown));
        assert!(!health.cooling(12));
        assert!(health.failed(13, 3, cooldown));
        assert!(health.cooling(13) && health.cooling(1_012));
        assert!(!health.cooling(1_013));
        assert_eq!(health.last_failed(), 13);
        // The count starts again after a cooldown.
        assert!(!health.failed(1_100, 3, cooldown));
    }
}
