//! Idempotency records for `Idempotency-Key` (docs/api.md "Conventions"), in the Powertools shape:
//! a conditional `begin`, the work, then `complete` with the response to replay.

use super::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// How long a completed record is kept (and replayed): 24 hours (TTL attribute `expires_at`).
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// How long an in-progress record blocks a repeat before it is considered abandoned (crash).
pub const IDEMPOTENCY_LEASE_SECS: i64 = 60;

/// A stored response, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes (JSON).
    pub body: String,
}

/// What `begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// No live record: this request owns the key now.
    Started,
    /// Completed before with the same request: replay this.
    Replay(SavedResponse),
    /// Another request with this key is still running (its lease has not expired).
    InProgress,
    /// The key was used with a different request body.
    Mismatch,
}

/// Idempotency records, keyed by `<scope>:<key>`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claim `key` for a request whose body hashes to `request_hash`. The claim succeeds if no
    /// record exists, the record expired, or an in-progress record's lease ran out.
    ///
    /// # Errors
    /// Backend failures.
    async fn begin(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Begin, StoreError>;

    /// Store the response of the request that owns `key`.
    ///
    /// # Errors
    /// Backend failures.
    async fn complete(
        &self,
        key: &str,
        request_hash: &str,
        response: &SavedResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Drop an in-progress claim whose request failed before it changed anything, so a retry
    /// with the same key can run.
    ///
    /// # Errors
    /// Backend failures.
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}
