//! The retry queue port: delayed jobs that survive crashes and restarts (SQS in AWS, a SQLite
//! table locally). Delivery is at least once; every consumer must be idempotent.

use crate::domain::{ConversationId, MessageId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest delay one enqueue can carry (SQS `DelaySeconds` maximum). Longer waits are chained:
/// the consumer re-enqueues a job whose `not_before` has not come yet.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// What a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Make the next provider attempt for a queued message (`message_id`).
    SendAttempt,
    /// Ask the conversation's agent for a reply (`conversation_id`).
    AgentTurn,
    /// The conversation has been silent for its campaign's `end_after_silence`: end it with an
    /// outcome (`conversation_id`).
    ConversationSilent,
}

/// A job's content (the SQS message body, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// What to do.
    pub kind: JobKind,
    /// The message concerned (`SendAttempt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// The conversation concerned (`AgentTurn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// Not to be acted on before this time (delays beyond [`MAX_DELAY`] are chained).
    pub not_before: DateTime<Utc>,
}

impl JobPayload {
    /// The next send attempt of `message_id`, not before `not_before`.
    pub fn send_attempt(message_id: MessageId, not_before: DateTime<Utc>) -> Self {
        Self {
            kind: JobKind::SendAttempt,
            message_id: Some(message_id),
            conversation_id: None,
            not_before,
        }
    }

    /// An agent turn for `conversation_id`.
    pub fn agent_turn(conversation_id: ConversationId, not_before: DateTime<Utc>) -> Self {
        Self {
            kind: JobKind::AgentTurn,
            message_id: None,
            conversation_id: Some(conversation_id),
            not_before,
        }
    }

    /// End `conversation_id`, silent for its campaign's `end_after_silence`, with an outcome.
    pub fn conversation_silent(conversation_id: ConversationId, not_before: DateTime<Utc>) -> Self {
        Self {
            kind: JobKind::ConversationSilent,
            message_id: None,
            conversation_id: Some(conversation_id),
            not_before,
        }
    }
}

/// A job handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedJob {
    /// Handle to acknowledge it with (SQS receipt handle / row id).
    pub receipt: String,
    /// Queue's id of the message (SQS MessageId), used for partial batch failure reports.
    pub message_id: String,
    /// Its content.
    pub payload: JobPayload,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// Queue depth, for health metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Jobs waiting or in flight.
    pub pending: u64,
    /// Jobs moved to the dead-letter queue.
    pub dead: u64,
}

/// Why a queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A body that is not a valid [`JobPayload`] (it can never succeed; dead-letter it).
    #[error("job payload is malformed")]
    Malformed(#[source] serde_json::Error),
    /// Anything else (network, SDK, I/O): retry.
    #[error("queue failure")]
    Unexpected(#[source] anyhow::Error),
}

/// Delayed, at-least-once jobs.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueue `payload`, invisible for `delay` (capped at [`MAX_DELAY`]).
    ///
    /// # Errors
    /// `Unexpected` when the queue cannot be reached.
    async fn enqueue(&self, payload: &JobPayload, delay: Duration) -> Result<(), QueueError>;

    /// Receive up to `max` visible jobs, hiding them for `visibility`. A job received more than
    /// the queue's max-receive count goes to the dead-letter queue instead of being returned.
    ///
    /// # Errors
    /// `Unexpected` when the queue cannot be reached.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedJob>, QueueError>;

    /// Delete a job that was handled.
    ///
    /// # Errors
    /// `Unexpected` when the queue cannot be reached.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;

    /// Pending and dead-letter counts.
    ///
    /// # Errors
    /// `Unexpected` when the queue cannot be reached.
    async fn stats(&self) -> Result<QueueStats, QueueError>;
}
