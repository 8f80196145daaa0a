//! `ClockedApp`: smsrelay-local in-process (SQLite in a temp dir, the simulator or a wiremock
//! Twilio) on a manual clock, in zero-to-production's `TestApp` shape. Time moves only through
//! [`ClockedApp::advance`]; the processor and the retry queue run only when a test calls
//! [`TestApp::run_processor`] or [`ClockedApp::drain_queue`]. So "two hours later" costs no real
//! sleep. (Only the simulator's status callbacks take real milliseconds; `wait_for` polls for them
//! with a deadline.)
//!
//! The manual clock starts at the real time or later, never earlier: the SQLite counters still
//! compare expiries with the system time (issue 8 item 4, storage slice), so a manual time in the
//! real past would expire their rows at once.

use crate::helpers::{AppOptions, TestApp};
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::Value;
use smsrelay::entrypoints::jobs::drain_queue_once;
use smsrelay::testing::ManualClock;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How many jobs one drain step receives.
const DRAIN_BATCH: usize = 10;
/// How many steps [`ClockedApp::drive`] takes before it gives up.
const DRIVE_STEPS: usize = 100;

/// A manual clock at the real time, on a whole millisecond (stored times have millisecond
/// precision, so a test can step to exactly one millisecond before a due time).
pub fn clock_at_real_time() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now().trunc_subsecs(3)))
}

/// smsrelay-local on a manual clock. Derefs to [`TestApp`] for the HTTP helpers
/// (`post_json`, `get`, `message`, `run_processor`, `wait_for`, `sim`, `store`, `alerts`, …).
pub struct ClockedApp {
    app: TestApp,
    /// The clock every part of the app reads.
    pub clock: Arc<ManualClock>,
}

impl Deref for ClockedApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl ClockedApp {
    /// The simulator, no queue worker, no processor timer, the clock at the real time.
    pub async fn new() -> Self {
        Self::with(AppOptions::default()).await
    }

    /// Start with `opts` (its `clock` is replaced by a new manual clock at the real time).
    pub async fn with(opts: AppOptions) -> Self {
        Self::with_clock(opts, clock_at_real_time()).await
    }

    /// Start with `opts` on `clock` (e.g. one set to a chosen local time).
    pub async fn with_clock(mut opts: AppOptions, clock: Arc<ManualClock>) -> Self {
        opts.clock = Some(clock.clone());
        Self {
            app: TestApp::with(opts).await,
            clock,
        }
    }

    /// Start on an existing database file with `clock` (restart tests share one clock).
    pub async fn on(db: &Path, mut opts: AppOptions, clock: Arc<ManualClock>) -> Self {
        opts.clock = Some(clock.clone());
        Self {
            app: TestApp::on(db, opts).await,
            clock,
        }
    }

    /// The app's time now.
    pub fn now(&self) -> DateTime<Utc> {
        smsrelay::ports::Clock::now(self.clock.as_ref())
    }

    /// `offset` after the app's now, as RFC 3339 (for `send_at`).
    pub fn at(&self, offset: Duration) -> String {
        let t = self.now() + chrono::Duration::from_std(offset).expect("a small offset");
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Move the app's time forward (waking anything that waits on the clock).
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// `POST /v1/messages` with `body`; asserts 202 and returns the message.
    pub async fn send(&self, body: &Value) -> Value {
        let resp = self.post_json("/v1/messages", body).send().await.expect("send");
        assert_eq!(resp.status(), 202);
        resp.json().await.expect("json")
    }

    /// Run `work` with the clock moving through every wait in it, as real time would pass
    /// (sends of one sender wait for their slots on the sender's schedule).
    pub async fn on_clock<F: std::future::Future>(&self, work: F) -> F::Output {
        self.clock.run_through(work).await
    }

    /// `POST /v1/processor/run`, the clock moving through any pacing wait of its sends.
    pub async fn run_processor(&self) -> Value {
        self.on_clock(self.app.run_processor()).await
    }

    /// Run the retry queue until it has no visible job (the clock moving through any pacing
    /// wait). Returns how many jobs ran.
    pub async fn drain_queue(&self) -> usize {
        let deps = self.deps();
        let mut ran = 0;
        loop {
            let n = self
                .on_clock(drain_queue_once(deps, deps.queue.as_ref(), DRAIN_BATCH))
                .await
                .expect("the queue is readable");
            if n == 0 {
                return ran;
            }
            ran += n;
        }
    }

    /// `POST /v1/batches`, moving the clock through the batch's pacing slots until it answers
    /// (each step jumps to the earliest send slot a batch item waits for). Returns the status,
    /// the body and how far the clock moved.
    pub async fn post_batch(&self, body: &Value) -> (u16, Value, Duration) {
        let start = smsrelay::ports::Clock::monotonic(self.clock.as_ref());
        let resp = self
            .on_clock(self.post_json("/v1/batches", body).send())
            .await
            .expect("batch");
        let moved = smsrelay::ports::Clock::elapsed_since(self.clock.as_ref(), start);
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null), moved)
    }

    /// Until `pred` holds for message `id`: advance the clock by `step`, run the retry queue and
    /// the processor. Panics after `DRIVE_STEPS` steps. No real sleep.
    pub async fn drive(&self, id: &str, step: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..DRIVE_STEPS {
            let m = self.message(id).await;
            if pred(&m) {
                return m;
            }
            self.advance(step);
            self.drain_queue().await;
            self.run_processor().await;
        }
        panic!(
            "not reached after {DRIVE_STEPS} steps of {step:?}: {}",
            self.message(id).await
        );
    }

    /// Stop the server.
    pub async fn stop(self) {
        self.app.stop().await;
    }
}
