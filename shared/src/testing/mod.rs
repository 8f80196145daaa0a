//! Test support (feature `testing`): a clock tests control, and the store contract suite that
//! every `MessageStore` adapter must pass.

pub mod counting_store;
pub mod queue_contract;
pub mod store_contract;

pub use counting_store::CountingStore;

use crate::ports::Clock;
use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Start at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
