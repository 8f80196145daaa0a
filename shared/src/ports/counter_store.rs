//! Counters, claims and small documents: hourly metric buckets, the daily send count, the
//! failure streak, alert cooldowns, the processor heartbeat, cancel markers. Everything health reports is
//! read from here (and the queue's attributes), never from a scan of messages.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One change in [`CounterStore::add_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterOp {
    /// Add `by` (as [`CounterStore::add`]).
    Add {
        /// Counter key.
        key: String,
        /// Amount (may be negative).
        by: i64,
        /// New expiry, if any.
        expires_at: Option<DateTime<Utc>>,
    },
    /// Set to 0 in one write (as [`CounterStore::reset`]).
    Reset {
        /// Counter key.
        key: String,
    },
}

/// `at` in nanoseconds since the epoch, the resolution of [`CounterStore::reserve_slot`]'s
/// schedules (representable until 2262).
///
/// # Errors
/// `Unexpected` for a time outside that range.
pub fn epoch_nanos(at: DateTime<Utc>) -> Result<i64, StoreError> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("{at} is outside the schedule's range")))
}

/// Atomic counters, one-time claims and small JSON documents, each under a string key.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Atomically add `by` to the counter `key` (absent counts as 0) and return the new value.
    /// `expires_at` (if given) sets the item's expiry (TTL); a counter whose expiry is before
    /// the second of the caller's `now` reads as absent, so an add restarts it from `by`.
    ///
    /// # Errors
    /// Backend failures.
    async fn add(
        &self,
        key: &str,
        by: i64,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// Set the counter `key` to 0 in one write (no read first, so concurrent resets and adds
    /// never drive it below 0 the way a read-then-subtract could). Its expiry is kept.
    ///
    /// # Errors
    /// Backend failures.
    async fn reset(&self, key: &str) -> Result<(), StoreError>;

    /// Apply several changes as one store call (one transaction on SQLite; each change is atomic
    /// on its own everywhere) and return the value after each (0 for a reset), in order.
    ///
    /// # Errors
    /// Backend failures (on SQLite nothing is applied then).
    async fn add_many(&self, ops: &[CounterOp], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.push(match op {
                CounterOp::Add { key, by, expires_at } => self.add(key, *by, *expires_at, now).await?,
                CounterOp::Reset { key } => {
                    self.reset(key).await?;
                    0
                }
            });
        }
        Ok(out)
    }

    /// Values of `keys` as of `now`, in order (absent or expired → 0).
    ///
    /// # Errors
    /// Backend failures.
    async fn values(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError>;

    /// Take the flag `key` until `until` if nobody holds it at `now` (absent, or held until a time
    /// before `now`). Returns whether this caller took it. Concurrent callers: exactly one wins.
    ///
    /// # Errors
    /// Backend failures.
    async fn claim(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Store a small JSON document under `key` (replacing it).
    ///
    /// # Errors
    /// Backend failures.
    async fn put_doc(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// The document under `key`, if any and not expired at `now`.
    ///
    /// # Errors
    /// Backend failures; an unreadable document is `Corrupt`.
    async fn get_doc(&self, key: &str, now: DateTime<Utc>) -> Result<Option<serde_json::Value>, StoreError>;

    /// Reserve the next slot of the evenly spaced schedule `key` (a sender's send rate), shared
    /// by every process on this store: the later of `now` and the schedule's next free slot,
    /// unless that is at or after `deadline` (then `None`, and nothing is reserved). The next
    /// free slot then moves to the reserved slot plus `gap`, so concurrent callers, in any
    /// process, get slots at least `gap` apart. Nanosecond resolution, on the callers' wall
    /// clocks; the schedule's record expires an hour after `deadline`.
    ///
    /// # Errors
    /// Backend failures.
    async fn reserve_slot(
        &self,
        key: &str,
        now: DateTime<Utc>,
        gap: Duration,
        deadline: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
}
