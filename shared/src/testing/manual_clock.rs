//! A clock that only moves when a test says so (the mini-redis idea of pausing and advancing
//! time). Wall time and monotonic time move together; [`ManualClock::advance`] wakes every
//! [`Clock::sleep_until`] whose moment has come, so a batch's pacing or a retry's backoff is
//! tested without a real sleep.

use crate::ports::{Clock, Moment};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<State>,
    /// The monotonic time since the origin, for sleepers to wait on.
    moved: watch::Sender<Duration>,
    /// How many tasks are inside `sleep_until`, for tests to wait on.
    sleeping: watch::Sender<usize>,
}

#[derive(Debug)]
struct State {
    wall: DateTime<Utc>,
    mono: Duration,
    /// The moments sleepers wait for, by sleeper id.
    waiting: Vec<(u64, Moment)>,
    next_id: u64,
}

impl ManualClock {
    /// Start at wall time `at` (monotonic time starts at the origin).
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            state: Mutex::new(State {
                wall: at,
                mono: Duration::ZERO,
                waiting: Vec::new(),
                next_id: 0,
            }),
            moved: watch::Sender::new(Duration::ZERO),
            sleeping: watch::Sender::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Move forward by `by`, waking the sleepers whose moment has come.
    pub fn advance(&self, by: Duration) {
        let mono = {
            let mut s = self.state();
            s.wall += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
            s.mono = s.mono.saturating_add(by);
            s.mono
        };
        self.moved.send_replace(mono);
    }

    /// Move forward to the earliest moment a sleeper waits for; `false` (and no move) when
    /// nobody sleeps.
    pub fn advance_to_next_wakeup(&self) -> bool {
        let step = {
            let s = self.state();
            s.waiting
                .iter()
                .map(|(_, at)| *at)
                .min()
                .map(|at| at.since_origin().saturating_sub(s.mono))
        };
        match step {
            Some(by) => {
                self.advance(by);
                true
            }
            None => false,
        }
    }

    /// How many tasks wait in [`Clock::sleep_until`] now.
    pub fn sleepers(&self) -> usize {
        *self.sleeping.borrow()
    }

    /// Wait (in real time, without moving this clock) until at least `n` tasks sleep on it.
    pub async fn wait_for_sleepers(&self, n: usize) {
        let mut rx = self.sleeping.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _reached = rx.wait_for(|count| *count >= n).await;
    }

    /// Run `work` to completion, moving this clock to the next wake-up whenever anything sleeps
    /// on it, as real time would pass: pacing slots, backoffs and `Retry-After` waits end at
    /// once, in order, and nothing waits in real time.
    pub async fn run_through<F: std::future::Future>(&self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                () = self.wait_for_sleepers(1) => {
                    self.advance_to_next_wakeup();
                    // Let the woken task run (a current-thread test runtime would spin otherwise).
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

/// Removes a sleeper's registration however its future ends (woken or dropped).
struct Registration<'a> {
    clock: &'a ManualClock,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.clock.state().waiting.retain(|(id, _)| *id != self.id);
        self.clock.sleeping.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.state().wall
    }

    fn monotonic(&self) -> Moment {
        Moment::from_origin(self.state().mono)
    }

    async fn sleep_until(&self, at: Moment) {
        let mut rx = self.moved.subscribe();
        let registration = {
            let mut s = self.state();
            if s.mono >= at.since_origin() {
                return;
            }
            let id = s.next_id;
            s.next_id += 1;
            s.waiting.push((id, at));
            Registration { clock: self, id }
        };
        self.sleeping.send_modify(|n| *n += 1);
        // `moved` is sent after the state changed, so a wake-up cannot be missed.
        let _woken = rx.wait_for(|mono| *mono >= at.since_origin()).await;
        drop(registration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use std::sync::Arc;

    fn clock() -> Arc<ManualClock> {
        let start = Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a valid time");
        Arc::new(ManualClock::new(start))
    }

    #[tokio::test]
    async fn a_sleeper_wakes_only_when_the_clock_is_advanced_to_its_moment() {
        let clock = clock();
        let at = clock.monotonic() + Duration::from_secs(10);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(at).await }
        });
        clock.wait_for_sleepers(1).await;
        clock.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its moment");
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::from_secs(1));
        sleeper.await.expect("sleeper");
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn wall_and_monotonic_time_move_together_and_a_past_moment_does_not_wait() {
        let clock = clock();
        let (wall, mono) = (clock.now(), clock.monotonic());
        clock.advance(Duration::from_secs(7200));
        assert_eq!(clock.now() - wall, chrono::Duration::hours(2));
        assert_eq!(clock.elapsed_since(mono), Duration::from_secs(7200));
        clock.sleep_until(mono).await;
        assert!(!clock.advance_to_next_wakeup(), "nobody sleeps");
    }

    #[tokio::test]
    async fn advance_to_next_wakeup_wakes_the_earliest_sleeper_first() {
        let clock = clock();
        let start = clock.monotonic();
        let spawn = |after: u64| {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + Duration::from_millis(after)).await })
        };
        let (early, late) = (spawn(100), spawn(300));
        clock.wait_for_sleepers(2).await;
        assert!(clock.advance_to_next_wakeup());
        early.await.expect("early");
        assert_eq!(clock.elapsed_since(start), Duration::from_millis(100));
        assert!(!late.is_finished());
        assert!(clock.advance_to_next_wakeup());
        late.await.expect("late");
        assert_eq!(clock.elapsed_since(start), Duration::from_millis(300));
    }
}
