//! `AgentRouter`: the [`Agent`] port for every provider a campaign can name. `openai` goes to the
//! Chat Completions client (when one is configured), `scripted` to the built-in rules, and
//! `retell` answers nothing: Retell's agent writes and sends its own replies (conversation-facts
//! §1.5), smsrelay only records them from the chat events.

use super::openai::OpenAiAgent;
use super::scripted::ScriptedAgent;
use crate::domain::AgentSpec;
use crate::ports::{Agent, AgentError, AgentReply, AgentRequest, Classification, ToolHost};
use async_trait::async_trait;

/// Dispatch on the spec's provider.
#[derive(Clone, Default)]
pub struct AgentRouter {
    openai: Option<OpenAiAgent>,
}

impl AgentRouter {
    /// A router with the Chat Completions client `openai` (`None`: `openai` specs are refused
    /// with `NotConfigured`).
    pub fn new(openai: Option<OpenAiAgent>) -> Self {
        Self { openai }
    }
}

#[async_trait]
impl Agent for AgentRouter {
    async fn reply(&self, request: AgentRequest<'_>, host: &dyn ToolHost) -> Result<AgentReply, AgentError> {
        match request.spec {
            AgentSpec::Openai { .. } => match &self.openai {
                Some(agent) => agent.reply(request, host).await,
                None => Err(AgentError::NotConfigured("openai")),
            },
            AgentSpec::Scripted { .. } => ScriptedAgent.reply(request, host).await,
            AgentSpec::Retell { .. } => Ok(AgentReply::default()),
        }
    }

    async fn classify(&self, request: AgentRequest<'_>) -> Result<Option<Classification>, AgentError> {
        match request.spec {
            AgentSpec::Openai { .. } => match &self.openai {
                Some(agent) => agent.classify(request).await,
                None => Err(AgentError::NotConfigured("openai")),
            },
            AgentSpec::Scripted { .. } | AgentSpec::Retell { .. } => Ok(None),
        }
    }
}
