//! The conversations port: one open conversation per (business number, lead phone), with both
//! directions in order, listed per phone. Every adapter gives the same conditional-write semantics;
//! `crate::testing::conversation_contract` runs against each of them.

use super::message_store::Page;
use super::StoreError;
use crate::domain::{Conversation, ConversationId, ConversationStatus, Outcome, PhoneNumber};
use async_trait::async_trait;

/// What `list_conversations` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// Only conversations in this status.
    pub status: Option<ConversationStatus>,
    /// Only conversations that ended with this outcome.
    pub outcome: Option<Outcome>,
}

impl ConversationFilter {
    /// Whether `c` passes the filter.
    pub fn keeps(&self, c: &Conversation) -> bool {
        self.status.is_none_or(|s| c.status == s) && self.outcome.is_none_or(|o| c.outcome == Some(o))
    }
}

/// Conversations and the open-conversation index of each (business number, phone) pair.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Insert a new conversation (`version` 0) as the open one of its pair.
    ///
    /// # Errors
    /// `ConditionFailed` if the id exists or the pair already has an open conversation (read it
    /// with [`ConversationStore::open_conversation`] and use that one).
    async fn create_conversation(&self, conversation: &Conversation) -> Result<(), StoreError>;

    /// Read a conversation (strongly consistent).
    ///
    /// # Errors
    /// Backend failures; an absent conversation is `Ok(None)`.
    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError>;

    /// The open (not ended) conversation of `phone` with `business_number`, if any.
    ///
    /// # Errors
    /// Backend failures.
    async fn open_conversation(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
    ) -> Result<Option<Conversation>, StoreError>;

    /// Replace a conversation if its stored version is still `conversation.version - 1` (the
    /// caller increments `version`). Ending it frees its pair for a new conversation, in the same
    /// atomic write.
    ///
    /// # Errors
    /// `ConditionFailed` if someone else wrote it first, or it is gone.
    async fn update_conversation(&self, conversation: &Conversation) -> Result<(), StoreError>;

    /// A phone's conversations (with any business number), newest first, filtered.
    ///
    /// # Errors
    /// Backend failures; an unreadable cursor is `Corrupt`.
    async fn list_conversations(
        &self,
        phone: &PhoneNumber,
        filter: ConversationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, StoreError>;

    /// Every phone's conversations in `status`, newest (by creation) first: a read of the status
    /// index, whose cost follows the page, never the number of conversations (no scan). The
    /// operator console's "open / needs a person / ended" lists.
    ///
    /// # Errors
    /// Backend failures; an unreadable cursor is `Corrupt`.
    async fn list_conversations_by_status(
        &self,
        status: ConversationStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, StoreError>;
}
