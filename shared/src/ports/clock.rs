//! Time comes only from here, so tests can control it (no `Utc::now()` outside `SystemClock`).

use chrono::{DateTime, Utc};

/// The current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}
