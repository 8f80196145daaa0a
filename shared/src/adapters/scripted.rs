//! The built-in `scripted` agent (docs/api.md `agent.provider: scripted`): no network, the
//! embedded default for trying smsrelay locally. The first rule whose regex matches the lead's
//! last text gives the reply and, optionally, the outcome; else the fallback reply; else quiet.

use crate::domain::{AgentSpec, Direction, Outcome};
use crate::ports::{Agent, AgentError, AgentReply, AgentRequest, Classification, ToolCall, ToolHost};
use async_trait::async_trait;

/// The scripted agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScriptedAgent;

/// The decision a rule's outcome stands for (the same tools the model would call).
fn call_for(outcome: Outcome, pattern: &str) -> ToolCall {
    let reason = format!("scripted rule `{pattern}` matched");
    match outcome {
        Outcome::Escalated => ToolCall::EscalateToHuman { reason },
        Outcome::Qualified => ToolCall::MarkQualified { reason },
        Outcome::Unqualified => ToolCall::MarkUnqualified { reason },
        other => ToolCall::EndConversation { outcome: other, reason },
    }
}

/// The scripted answer to `text` (pure; the agent applies it to the last inbound turn).
///
/// # Errors
/// `Refused` for a rule whose pattern does not compile (campaigns validate specs, so only a
/// hand-edited record gets here).
pub fn answer(spec: &AgentSpec, text: &str) -> Result<AgentReply, AgentError> {
    let AgentSpec::Scripted { rules, fallback } = spec else {
        return Err(AgentError::NotConfigured("scripted"));
    };
    for rule in rules {
        let re = rule
            .regex()
            .map_err(|e| AgentError::Refused(format!("scripted rule `{}`: {e}", rule.pattern)))?;
        if re.is_match(text) {
            return Ok(AgentReply {
                text: Some(rule.reply.clone()),
                calls: rule.outcome.map(|o| call_for(o, &rule.pattern)).into_iter().collect(),
            });
        }
    }
    Ok(AgentReply {
        text: fallback.clone(),
        calls: Vec::new(),
    })
}

#[async_trait]
impl Agent for ScriptedAgent {
    async fn reply(&self, request: AgentRequest<'_>, _host: &dyn ToolHost) -> Result<AgentReply, AgentError> {
        let last = request
            .turns
            .iter()
            .rev()
            .find(|t| t.direction == Direction::Inbound)
            .map_or("", |t| t.body.as_str());
        answer(request.spec, last)
    }

    async fn classify(&self, _request: AgentRequest<'_>) -> Result<Option<Classification>, AgentError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScriptedRule;

    fn spec() -> AgentSpec {
        AgentSpec::Scripted {
            rules: vec![
                ScriptedRule {
                    pattern: r"\b(yes|sure)\b".into(),
                    reply: "Great! Does Thursday 2pm work?".into(),
                    outcome: None,
                },
                ScriptedRule {
                    pattern: r"thursday|2\s*pm".into(),
                    reply: "Booked, see you then.".into(),
                    outcome: Some(Outcome::Qualified),
                },
                ScriptedRule {
                    pattern: r"not interested".into(),
                    reply: "No problem, thanks!".into(),
                    outcome: Some(Outcome::Unqualified),
                },
            ],
            fallback: Some("Tell me more?".into()),
        }
    }

    #[test]
    fn the_first_matching_rule_answers_with_its_outcome_else_the_fallback() {
        let yes = answer(&spec(), "YES thursday").expect("answer");
        assert_eq!(yes.text.as_deref(), Some("Great! Does Thursday 2pm work?"));
        assert!(yes.calls.is_empty(), "the first rule wins and names no outcome");
        let thu = answer(&spec(), "Thursday at 2 pm").expect("answer");
        assert_eq!(thu.text.as_deref(), Some("Booked, see you then."));
        assert!(matches!(thu.calls.as_slice(), [ToolCall::MarkQualified { .. }]));
        let no = answer(&spec(), "not interested").expect("answer");
        assert!(matches!(no.calls.as_slice(), [ToolCall::MarkUnqualified { .. }]));
        let other = answer(&spec(), "what is this?").expect("answer");
        assert_eq!(other.text.as_deref(), Some("Tell me more?"));
        let quiet = AgentSpec::Scripted {
            rules: Vec::new(),
            fallback: None,
        };
        assert_eq!(answer(&quiet, "hi").expect("answer"), AgentReply::default());
    }
}
