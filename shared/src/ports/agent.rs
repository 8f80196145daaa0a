//! The agent port: given a conversation's turns and its campaign's [`AgentSpec`], produce the next
//! reply and what it decided (tool calls), or classify a silent conversation into an outcome.
//!
//! Tools run through a [`ToolHost`] the use case implements (`app::agent_turn`): the adapter asks
//! the host to execute each validated call and sends the host's result back to the model (the
//! standard tool loop). The adapters: `adapters::openai` (any Chat Completions server),
//! `adapters::scripted` (built-in rules, no network), both behind `adapters::agents::AgentRouter`.
//! Retell's agent writes its own replies, so the router answers a Retell spec with no reply.

use super::clock::Moment;
use crate::domain::{AgentSpec, ConversationId, Outcome, Turn};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What the agent is asked to answer.
#[derive(Debug, Clone, Copy)]
pub struct AgentRequest<'a> {
    /// The campaign's agent.
    pub spec: &'a AgentSpec,
    /// The conversation (for logs; never a phone number).
    pub conversation_id: &'a ConversationId,
    /// Both directions so far, in order (the last inbound turn is the one to answer).
    pub turns: &'a [Turn],
    /// Work must be over by this moment of the clock (retries and backoff included).
    pub deadline: Moment,
}

/// A validated tool call (`book_appointment`, `escalate_to_human`, `mark_qualified`,
/// `mark_unqualified`, `end_conversation`), or the same decision from a scripted rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum ToolCall {
    /// Book a slot for the lead.
    BookAppointment {
        /// RFC 3339 with an offset.
        start: String,
        /// Minutes, 5 to 480.
        duration_minutes: u32,
        /// Notes, if any.
        notes: Option<String>,
    },
    /// Hand the conversation to a person.
    EscalateToHuman {
        /// Why.
        reason: String,
    },
    /// A lead worth following up.
    MarkQualified {
        /// Why.
        reason: String,
    },
    /// Not a fit.
    MarkUnqualified {
        /// Why.
        reason: String,
    },
    /// The conversation is over with `outcome` (qualified, unqualified or discarded).
    EndConversation {
        /// The outcome.
        outcome: Outcome,
        /// Why.
        reason: String,
    },
}

impl ToolCall {
    /// The tool's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BookAppointment { .. } => "book_appointment",
            Self::EscalateToHuman { .. } => "escalate_to_human",
            Self::MarkQualified { .. } => "mark_qualified",
            Self::MarkUnqualified { .. } => "mark_unqualified",
            Self::EndConversation { .. } => "end_conversation",
        }
    }
}

/// Executes tool calls for the agent; the result (or the error text) goes back to the model.
#[async_trait]
pub trait ToolHost: Send + Sync {
    /// Execute `call`. `Ok` is the JSON result the model sees; `Err` is an error message the
    /// model sees instead (the call did not happen).
    async fn execute(&self, call: &ToolCall) -> Result<serde_json::Value, String>;
}

/// What the agent decided for one turn.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentReply {
    /// The text to send to the lead (`None`: stay quiet).
    pub text: Option<String>,
    /// The tool calls the host executed successfully, in order.
    pub calls: Vec<ToolCall>,
}

/// A silent conversation, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// One of the six outcomes.
    pub outcome: Outcome,
    /// The model's reason.
    pub reason: String,
}

/// Why the agent gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The model server failed in a way a later try may not (429 rate limit, 5xx, timeouts,
    /// connection errors), after the adapter's own retries.
    #[error("the model server is unavailable: {0}")]
    Unavailable(String),
    /// The deadline would pass before another try could finish.
    #[error("the agent's deadline passed")]
    DeadlineExceeded,
    /// The model server refused the request (400, 401, 404, `insufficient_quota`…): a
    /// configuration problem a retry will not fix by itself.
    #[error("the model server refused the request: {0}")]
    Refused(String),
    /// The answer is not in the shape asked for (structured output that does not parse).
    #[error("the model's answer is unusable: {0}")]
    BadOutput(String),
    /// This spec's provider is not configured here (no `openai` client).
    #[error("agent provider `{0}` is not configured")]
    NotConfigured(&'static str),
}

/// An agent: replies with the tool loop, and classifies silent conversations.
#[async_trait]
pub trait Agent: Send + Sync {
    /// The reply to the conversation's last inbound turn.
    ///
    /// # Errors
    /// [`AgentError`]; nothing was sent.
    async fn reply(&self, request: AgentRequest<'_>, host: &dyn ToolHost) -> Result<AgentReply, AgentError>;

    /// Classify a conversation that went silent into one of the six outcomes. `Ok(None)`: this
    /// agent has no model to classify with (the no-model rule applies).
    ///
    /// # Errors
    /// [`AgentError`].
    async fn classify(&self, request: AgentRequest<'_>) -> Result<Option<Classification>, AgentError>;
}
