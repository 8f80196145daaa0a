//! Retell's outbound SMS chats (`POST /create-sms-chat`, conversation-facts §1.6), for campaign
//! steps on a Retell campaign. The call has no idempotency key, so a failure after the request
//! went out is [`SmsChatError::Ambiguous`]: the caller reconciles with
//! [`RetellChats::find_sms_chat`] (our metadata echoed on the chat) before it tries again, as the
//! Twilio path reconciles a `sending` message.

use async_trait::async_trait;
use std::collections::BTreeMap;

/// One outbound SMS chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsChatRequest {
    /// Our Retell number (E.164).
    pub from_number: String,
    /// The lead (E.164).
    pub to_number: String,
    /// The chat agent that writes the text (`override_agent_id`), e.g. a verbatim agent whose
    /// first message is `{{message_body}}`.
    pub agent_id: String,
    /// `retell_llm_dynamic_variables` (strings only), e.g. `message_body`.
    pub dynamic_variables: BTreeMap<String, String>,
    /// Our ids, sent as `metadata.smsrelay` and echoed by Retell's chat events and list.
    pub smsrelay_metadata: BTreeMap<String, String>,
}

/// A chat Retell created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsChat {
    /// Retell's chat id.
    pub chat_id: String,
    /// `ongoing`, `ended`, `error`.
    pub chat_status: Option<String>,
}

/// Why no chat is known to exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsChatError {
    /// Retell answered no (400, 401, 402, 404, 422): nothing was sent; a retry will not help.
    #[error("Retell refused the chat: HTTP {status}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Retell's `message`.
        message: String,
    },
    /// Nothing was sent and a later try may pass (429, or the connection never opened).
    #[error("Retell is unavailable; nothing was sent: {0}")]
    NotSent(String),
    /// The request went out and no clear answer came back (5xx, a timeout, an unreadable body):
    /// the SMS may have gone. Reconcile before any retry; never retry blindly.
    #[error("Retell's answer is ambiguous; the SMS may have been sent: {0}")]
    Ambiguous(String),
}

/// Retell's SMS chats.
#[async_trait]
pub trait RetellChats: Send + Sync {
    /// Create one SMS chat: exactly one request, never retried here.
    ///
    /// # Errors
    /// [`SmsChatError`].
    async fn create_sms_chat(&self, request: &SmsChatRequest) -> Result<SmsChat, SmsChatError>;

    /// The chat of `agent_id` started at or after `since_ms` whose `metadata.smsrelay.<key>` is
    /// `value`, if any (the reconciliation of an ambiguous create).
    ///
    /// # Errors
    /// [`SmsChatError::NotSent`] / [`SmsChatError::Ambiguous`] when Retell cannot be read.
    async fn find_sms_chat(
        &self,
        agent_id: &str,
        since_ms: i64,
        key: &str,
        value: &str,
    ) -> Result<Option<SmsChat>, SmsChatError>;
}
