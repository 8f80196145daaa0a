//! The real clock: the only place that reads the system time and sleeps on tokio's timer.

use crate::ports::{Clock, Moment};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::OnceLock;
use std::time::Instant;

/// Wall-clock time from the system, monotonic time from [`Instant`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of every [`SystemClock`]'s monotonic timeline (one per process, so moments taken
/// through different `SystemClock` values compare).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic(&self) -> Moment {
        Moment::from_origin(origin().elapsed())
    }

    async fn sleep_until(&self, at: Moment) {
        let deadline = origin() + at.since_origin();
        tokio::time::sleep_until(deadline.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sleep_until_waits_for_the_moment_and_monotonic_time_moves_forward() {
        let clock = SystemClock;
        let start = clock.monotonic();
        clock.sleep_until(start + Duration::from_millis(30)).await;
        assert!(clock.elapsed_since(start) >= Duration::from_millis(30));
        // A moment in the past returns at once.
        clock.sleep_until(start).await;
    }
}
