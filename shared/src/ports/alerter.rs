//! Alerts an operator must act on (docs/design.md invariant 8): Slack and EventBridge in AWS, the log
//! locally. Raised once per kind and subject per cooldown (the caller dedupes via
//! `CounterStore::claim`); they carry counts, never phone numbers or bodies.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A batch completed with more than the threshold of its accepted (sent-to) items failed.
    BatchFailureRate,
    /// Several sends in a row failed for one sender.
    ConsecutiveSendFailures,
    /// Messages ended `failed` (a permanent provider error such as 21211, or their last attempt
    /// failed) and wait in the failed list. Not raised for batch items: their batch's
    /// [`AlertKind::BatchFailureRate`] carries them, with the breakdown by error code.
    MessagesFailed,
    /// Retry jobs reached the dead-letter queue.
    DeadLetter,
    /// The processor has not run for two intervals.
    ProcessorNotRunning,
    /// Messages sent long ago never got a final status from the provider.
    CallbacksMissing,
    /// A conversation was handed to a person (the lead asked for one, or the agent called
    /// `escalate_to_human`); the subject is the conversation id.
    ConversationEscalated,
}

impl AlertKind {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BatchFailureRate => "batch_failure_rate",
            Self::ConsecutiveSendFailures => "consecutive_send_failures",
            Self::MessagesFailed => "messages_failed",
            Self::DeadLetter => "dead_letter",
            Self::ProcessorNotRunning => "processor_not_running",
            Self::CallbacksMissing => "callbacks_missing",
            Self::ConversationEscalated => "conversation_escalated",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Kind.
    pub kind: AlertKind,
    /// What it is about: a batch id, a sender, a message id, `processor` — never a phone number.
    pub subject: String,
    /// One-line summary for a person.
    pub summary: String,
    /// Figures (counts, rates, ages) as name → value.
    pub counts: serde_json::Map<String, serde_json::Value>,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
}

/// Why an alert could not be delivered (logged by the caller; never fails a request).
#[derive(Debug, thiserror::Error)]
#[error("alert could not be delivered")]
pub struct AlertError(#[source] pub anyhow::Error);

/// Delivers alerts.
#[async_trait]
pub trait Alerter: Send + Sync {
    /// Deliver one alert.
    ///
    /// # Errors
    /// [`AlertError`] when the channel did not accept it.
    async fn raise(&self, alert: &Alert) -> Result<(), AlertError>;
}
