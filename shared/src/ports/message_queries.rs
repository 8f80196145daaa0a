//! Index queries over messages used by the processor and the operations API: what is due, and
//! what is listed as failed. Kept apart from `MessageStore` so each use case depends only on
//! what it reads.

use super::message_store::Page;
use super::StoreError;
use crate::domain::{Message, Ref};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Due-index and failed-list reads.
#[async_trait]
pub trait MessageQueries: Send + Sync {
    /// Messages whose `due_at` is at or before `now`, oldest due first: about `limit` of them
    /// (a sharded adapter reads `limit` split across its shards, rounded up, so it may return a
    /// few more, or fewer when the due items sit in few shards; callers page until nothing new
    /// comes back). Every returned message is due. Cost grows with the due items only, never
    /// with all stored messages (no scan).
    ///
    /// # Errors
    /// Backend failures.
    async fn list_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>, StoreError>;

    /// Messages listed as failed (`failed_listed`), most recently changed first.
    ///
    /// # Errors
    /// Backend failures; an unreadable cursor is `Corrupt`.
    async fn list_failed(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Message>, StoreError>;

    /// Messages linked to the caller's entity `reference` (any status), at most `limit`.
    ///
    /// # Errors
    /// Backend failures.
    async fn list_by_ref(&self, reference: &Ref, limit: usize) -> Result<Vec<Message>, StoreError>;
}
