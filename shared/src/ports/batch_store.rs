//! Batches (`POST /v1/batches`) as typed records: what was accepted, and the per-item outcome
//! tallies updated atomically as items finish, each item counted once. Completion and the
//! failure-rate alert are taken once per batch. The adapter owns the keys and the layout.

use super::StoreError;
use crate::domain::MessageId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A batch as created: its size and what was rejected before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// `bat_` + ULID.
    pub id: String,
    /// Items in the request.
    pub total: u32,
    /// Items that passed validation (records written for them).
    pub accepted: u32,
    /// Items rejected at validation.
    pub rejected: u32,
    /// When the batch was accepted.
    pub created_at: DateTime<Utc>,
    /// When the record (and its tallies) may be dropped.
    pub expires_at: DateTime<Utc>,
}

/// How a batch item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Accepted by the provider.
    Sent,
    /// Ended failed.
    Failed,
    /// Not sent: the recipient opted out.
    Suppressed,
    /// Not sent: the recipient's rate limit was reached.
    RateLimited,
}

/// The tallies of a batch, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchProgress {
    /// Items sent.
    pub sent: u32,
    /// Items failed.
    pub failed: u32,
    /// Items suppressed.
    pub suppressed: u32,
    /// Items rate limited.
    pub rate_limited: u32,
    /// Items finished (every outcome above, plus items that never got a record).
    pub finished: u32,
}

/// A batch with its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchState {
    /// As created.
    pub record: BatchRecord,
    /// Tallies now.
    pub progress: BatchProgress,
    /// Whether the failure-rate alert was raised for it.
    pub alerted: bool,
}

impl BatchState {
    /// Every item has finished.
    pub fn is_complete(&self) -> bool {
        self.progress.finished >= self.record.total
    }
}

/// Batch records and their tallies.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Store a new batch; its tallies start at 0 except `finished`, which starts at `rejected`.
    ///
    /// # Errors
    /// `ConditionFailed` if a batch with that id exists; backend failures.
    async fn create_batch(&self, record: &BatchRecord) -> Result<(), StoreError>;

    /// The batch `id` as of `now` (`None` if unknown or expired), strongly consistent.
    ///
    /// # Errors
    /// Backend failures; an unreadable record is `Corrupt`.
    async fn get_batch(&self, id: &str, now: DateTime<Utc>) -> Result<Option<BatchState>, StoreError>;

    /// Count the outcome of `item` once (its tally and `finished` together, atomically with
    /// respect to other counts) and return the batch afterwards; `None` when this item was
    /// counted before or the batch is unknown.
    ///
    /// # Errors
    /// Backend failures.
    async fn record_item(
        &self,
        id: &str,
        item: &MessageId,
        outcome: ItemOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<BatchState>, StoreError>;

    /// Add `n` items that finished without a record (their write failed) to `finished`.
    ///
    /// # Errors
    /// Backend failures.
    async fn add_finished(&self, id: &str, n: u32) -> Result<(), StoreError>;

    /// Take the completion of `id`: `true` for exactly one caller, ever.
    ///
    /// # Errors
    /// Backend failures.
    async fn claim_completion(&self, id: &str) -> Result<bool, StoreError>;

    /// Remember that the failure-rate alert was raised for `id`.
    ///
    /// # Errors
    /// Backend failures.
    async fn mark_alerted(&self, id: &str) -> Result<(), StoreError>;
}
