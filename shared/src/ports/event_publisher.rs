//! Domain events (`message.sent`, `message.delivered`, `message.failed`, `batch.completed`,
//! `alert.raised`): EventBridge in AWS (`source: smsrelay`), a table and the log locally.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// One domain event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    /// EventBridge `detail-type`, e.g. `message.delivered`.
    pub detail_type: String,
    /// JSON detail (ids, statuses, counts; never full phone numbers or bodies).
    pub detail: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Why publishing failed; `failed` lists the indexes of events not accepted.
#[derive(Debug, thiserror::Error)]
#[error("{} of the events were not published", .failed.len())]
pub struct PublishError {
    /// Indexes (into the published slice) of events that were not accepted.
    pub failed: Vec<usize>,
    /// The underlying failure, if the whole call failed.
    #[source]
    pub source: Option<anyhow::Error>,
}

/// Publishes domain events.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publish `events` (batched as the backend allows), reporting per-event failures.
    ///
    /// # Errors
    /// [`PublishError`] naming the events that were not accepted.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError>;
}
