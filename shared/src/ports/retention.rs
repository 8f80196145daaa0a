//! Dropping what has expired, for stores without native expiry. DynamoDB's TTL does it for the
//! table (template.yaml `TimeToLiveSpecification`), so its adapter has nothing to do; SQLite has
//! no TTL, so the processor calls this each tick.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Purges expired records.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Delete what has expired before `now` (counters, claims, documents, idempotency records,
    /// webhook receipts, batches). Returns how many records were removed.
    ///
    /// # Errors
    /// Backend failures.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
