//! The real clock: the only place that reads the system time.

use crate::ports::Clock;
use chrono::{DateTime, Utc};

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
