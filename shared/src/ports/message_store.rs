//! The state port: message records, the provider-sid index and webhook receipts.
//!
//! Every adapter (DynamoDB, SQLite) must give the same conditional-write semantics; the contract
//! suite in `crate::testing::store_contract` runs against each of them.

use crate::domain::{Message, MessageId, MessageStatus, PhoneNumber, ProviderSid};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Why a store call failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item exists already, or its version moved on.
    #[error("conditional write failed")]
    ConditionFailed,
    /// The backend throttled us; safe to retry later.
    #[error("store throttled the request")]
    Throttled,
    /// An item could not be mapped back to a domain value.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// Anything else (network, I/O, SDK failure).
    #[error("store failure")]
    Unexpected(#[source] anyhow::Error),
}

impl StoreError {
    /// Whether the same call may succeed if repeated.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled | Self::Unexpected(_))
    }
}

/// A webhook we received, recorded once per dedupe key (e.g. `MessageSid:MessageStatus`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    /// Dedupe key; the first record with a key wins, later ones are reported as duplicates.
    pub key: String,
    /// Which webhook (`twilio_status`, `twilio_inbound`, …).
    pub kind: String,
    /// The message it was linked to, if any (`None` for an unknown sid).
    pub message_id: Option<MessageId>,
    /// Provider sid it names.
    pub provider_sid: Option<ProviderSid>,
    /// Reported status (raw provider value).
    pub status: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Opaque cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// Messages, the sid index and webhook receipts.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Insert a new message record (its `version` is 0).
    ///
    /// # Errors
    /// `ConditionFailed` if a message with that id exists.
    async fn create_message(&self, message: &Message) -> Result<(), StoreError>;

    /// Insert many new message records (bulk; each like [`MessageStore::create_message`]).
    /// Returns one result per message, in order: a message reported failed is not stored (so it
    /// is never sent, and a client retrying it cannot make it go twice); the call fails as a whole
    /// only when it wrote nothing.
    ///
    /// # Errors
    /// A failure of the whole call (nothing written); per-message failures are in the list.
    async fn create_messages(&self, messages: &[Message]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.create_message(m).await);
        }
        Ok(out)
    }

    /// Read a message (strongly consistent).
    ///
    /// # Errors
    /// Backend failures; an absent message is `Ok(None)`.
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>, StoreError>;

    /// Replace a message record if its stored version is still `message.version - 1`.
    /// The caller increments `version` before calling.
    ///
    /// # Errors
    /// `ConditionFailed` if someone else wrote it first (re-read and re-apply), or it is gone.
    async fn update_message(&self, message: &Message) -> Result<(), StoreError>;

    /// Point a provider sid at a message. Idempotent for the same pair.
    ///
    /// # Errors
    /// `ConditionFailed` if the sid already points at a different message.
    async fn link_provider_sid(&self, sid: &ProviderSid, id: &MessageId) -> Result<(), StoreError>;

    /// The outcome of a provider call in one store call: `message` written as
    /// [`Self::update_message`] writes it and `sid` pointed at it as [`Self::link_provider_sid`]
    /// points it, atomically (one SQLite transaction, one DynamoDB `TransactWriteItems`; both
    /// items are the message's own, so no hot key joins the transaction). This default, for
    /// stores that cannot, links first (a failure there is logged and does not stop the update,
    /// the callback URL carries the id) and then updates.
    ///
    /// # Errors
    /// As [`Self::update_message`]; an atomic store also gives `ConditionFailed`, and writes
    /// neither, when the sid points at another message.
    async fn update_message_and_link(&self, message: &Message, sid: &ProviderSid) -> Result<(), StoreError> {
        if let Err(e) = self.link_provider_sid(sid, &message.id).await {
            tracing::warn!(message_id = %message.id, error.message = %e, "could not index provider sid; the callback URL still carries the id");
        }
        self.update_message(message).await
    }

    /// The message a provider sid points at.
    ///
    /// # Errors
    /// Backend failures.
    async fn message_id_for_sid(&self, sid: &ProviderSid) -> Result<Option<MessageId>, StoreError>;

    /// Record a webhook receipt once per key. Returns `true` the first time, `false` for a duplicate.
    ///
    /// # Errors
    /// Backend failures.
    async fn record_webhook(&self, record: &WebhookRecord) -> Result<bool, StoreError>;

    /// A recipient's messages, newest first, optionally only those in `status`.
    ///
    /// # Errors
    /// Backend failures; an unreadable cursor is `Corrupt`.
    async fn list_messages_to(
        &self,
        to: &PhoneNumber,
        status: Option<MessageStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, StoreError>;
}
