//! Time comes only from here, so tests can control it: no `Utc::now()`, `Instant::now()` or
//! `tokio::time` in `domain/` or `app/` (scripts/test.sh greps for them).
//!
//! A clock has two faces. [`Clock::now`] is the wall time that is stored and compared with
//! `send_at`, leases and expiries. [`Clock::monotonic`] and [`Clock::sleep_until`] measure and
//! wait (time budgets, batch pacing): they never jump when the wall clock is adjusted. The
//! manual clock in `testing/` moves both together, and its `advance` wakes the sleepers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A point on a clock's monotonic timeline: the time since the clock's own origin. Only
/// moments of the same clock can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Moment(Duration);

impl Moment {
    /// The moment `since_origin` after the clock's origin.
    pub const fn from_origin(since_origin: Duration) -> Self {
        Self(since_origin)
    }

    /// Time since the clock's origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is (zero if it is not later).
    pub fn saturating_since(self, earlier: Moment) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for Moment {
    type Output = Moment;
    fn add(self, by: Duration) -> Moment {
        Moment(self.0.saturating_add(by))
    }
}

/// The current time, and waiting for a moment to come.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Now, in UTC (wall time: what is stored and compared with due times).
    fn now(&self) -> DateTime<Utc>;

    /// Now on the monotonic timeline, for measuring elapsed time (budgets, pacing).
    fn monotonic(&self) -> Moment;

    /// Return once [`Clock::monotonic`] has reached `at` (at once if it already has).
    async fn sleep_until(&self, at: Moment);

    /// Time elapsed since `start`, a moment of this clock.
    fn elapsed_since(&self, start: Moment) -> Duration {
        self.monotonic().saturating_since(start)
    }
}
