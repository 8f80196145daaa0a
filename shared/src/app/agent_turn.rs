//! agent_turn: the campaign's agent answers a lead (`JobKind::AgentTurn`, queued by
//! `handle_inbound` for every reply), and a silent conversation is classified
//! (`JobKind::ConversationSilent`). Runs from the job queue, never inside a webhook.
//!
//! One turn:
//! 1. Skip unless the conversation is `open`, belongs to a campaign whose agent answers here
//!    (`openai`, `scripted`; Retell's agent replies by itself), and its last inbound text has no
//!    answer yet.
//! 2. The reply's message id is derived from (conversation, inbound turn) (`MessageId::derived`):
//!    a redelivered job finds that message and sends nothing again; two concurrent ones collide
//!    on the store's conditional create, and the loser sends nothing.
//! 3. A lead asking for a person (`domain::asks_for_person`) is escalated without asking any agent.
//! 4. At most `SMSRELAY_AGENT_MAX_REPLIES_PER_DAY` agent replies per conversation per UTC day (a
//!    counter), so two bots can never loop.
//! 5. The agent runs within `SMSRELAY_AGENT_DEADLINE`; `book_appointment` records the slot on the
//!    conversation and publishes `appointment.booked` while the model waits for the result.
//! 6. The reply goes through the send pipeline (consent checked, status tracked) from the
//!    conversation's business number, exempt from quiet hours and the hourly cap, and becomes an
//!    outbound turn; then the decisions apply, first rule first (api.md outcomes): escalated
//!    (`needs_human`, one alert naming the conversation), success (a confirmed booking), then a
//!    tool's outcome.
//!
//! A model failure fails the job (the queue retries it, then dead-letters it); nothing was sent.

use super::alerts::{publish, raise_once};
use super::conversations::{conversation_turns, end_after_silence, modify_conversation};
use super::send::{send_message_with, SendCommand, SendOptions};
use super::{AppError, Ctx};
use crate::domain::{
    asks_for_person, AgentSpec, Appointment, Conversation, ConversationId, ConversationStatus, Direction, MessageBody,
    MessageId, Outcome, Turn,
};
use crate::ports::{
    Agent, AgentError, AgentRequest, AlertKind, CampaignAgents, ConversationStore, DomainEvent, Sender, StoreError,
    ToolCall, ToolHost,
};
use serde_json::{json, Value};
use std::sync::Mutex;

/// The ports conversation jobs use besides the send pipeline's.
#[derive(Clone, Copy)]
pub struct ConversationPorts<'a> {
    /// Conversations.
    pub conversations: &'a dyn ConversationStore,
    /// The agent of a conversation's campaign.
    pub campaign_agents: &'a dyn CampaignAgents,
    /// The agents.
    pub agent: &'a dyn Agent,
}

/// What one agent turn did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOutcome {
    /// Nothing to do, and why.
    Skipped(&'static str),
    /// The last inbound text was answered already (a redelivered or duplicated job).
    AlreadyAnswered,
    /// The daily cap of agent replies is reached; the lead's text waits for a person.
    Capped,
    /// The lead asked for a person: escalated, nothing sent.
    Escalated,
    /// The agent answered.
    Answered {
        /// The reply, if the agent wrote one.
        message_id: Option<MessageId>,
        /// The conversation's outcome afterwards.
        outcome: Option<Outcome>,
    },
}

/// Longest reply sent (an SMS agent told to write ≤ 320 characters that writes a novel is cut).
const MAX_REPLY_CHARS: usize = 1000;

/// How long the daily reply counter is kept.
const COUNTER_DAYS: i64 = 2;

/// Run one agent turn for `id`.
///
/// # Errors
/// Store failures and agent failures (the job is retried); nothing was sent then.
pub async fn agent_turn(
    ctx: Ctx<'_>,
    ports: ConversationPorts<'_>,
    id: &ConversationId,
) -> Result<TurnOutcome, AppError> {
    let now = ctx.clock.now();
    let Some(c) = ports.conversations.get_conversation(id).await? else {
        return Ok(TurnOutcome::Skipped("no such conversation"));
    };
    match c.status {
        ConversationStatus::Open => {}
        ConversationStatus::NeedsHuman => return Ok(TurnOutcome::Skipped("a person answers this conversation")),
        ConversationStatus::Ended => return Ok(TurnOutcome::Skipped("the conversation has ended")),
    }
    let Some(campaign_id) = c.campaign_id.clone() else {
        return Ok(TurnOutcome::Skipped("no campaign: replies wait for a person"));
    };
    let Some(spec) = ports.campaign_agents.agent_of(&campaign_id).await? else {
        return Ok(TurnOutcome::Skipped(
            "the campaign has no agent: replies wait for a person",
        ));
    };
    if matches!(spec, AgentSpec::Retell { .. }) {
        return Ok(TurnOutcome::Skipped("Retell's agent answers by itself"));
    }
    let Some(last_in) = c.turns.iter().rposition(|t| t.direction == Direction::Inbound) else {
        return Ok(TurnOutcome::Skipped("nothing to answer"));
    };
    if c.turns[last_in + 1..]
        .iter()
        .any(|t| t.direction == Direction::Outbound)
    {
        return Ok(TurnOutcome::AlreadyAnswered);
    }
    let inbound = c.turns[last_in].clone();
    let reply_id = reply_id(&c, &inbound);
    if let Some(existing) = ctx.messages.get_message(&reply_id).await? {
        // Sent by an earlier delivery of this job that stopped before linking it.
        link_and_decide(ctx, ports, &c.id, Some(outbound_turn(&existing)), None, now).await?;
        return Ok(TurnOutcome::AlreadyAnswered);
    }
    if asks_for_person(&inbound.body) {
        let decision = Decision::Escalate("the lead asked for a person".to_owned());
        link_and_decide(ctx, ports, &c.id, None, Some(decision), now).await?;
        return Ok(TurnOutcome::Escalated);
    }
    let counter = format!("agent_replies\u{1f}{}\u{1f}{}", c.id, now.format("%Y-%m-%d"));
    let expires = Some(now + chrono::Duration::days(COUNTER_DAYS));
    let taken = ctx.counters.add(&counter, 1, expires, now).await?;
    if taken > i64::from(ctx.config.agent_max_replies_per_day) {
        give_back(ctx, &counter, expires).await;
        tracing::warn!(conversation_id = %c.id, cap = ctx.config.agent_max_replies_per_day, "agent reply cap reached for today: not answering");
        return Ok(TurnOutcome::Capped);
    }
    let answered = answer(ctx, ports, &c, &campaign_id, &spec, reply_id).await;
    if answered.is_err() {
        give_back(ctx, &counter, expires).await;
    }
    answered
}

/// The part of a turn that asks the agent, sends and applies (the reply slot is taken).
async fn answer(
    ctx: Ctx<'_>,
    ports: ConversationPorts<'_>,
    c: &Conversation,
    campaign_id: &str,
    spec: &AgentSpec,
    reply_id: MessageId,
) -> Result<TurnOutcome, AppError> {
    let turns = conversation_turns(ctx.messages, c).await?;
    let host = Host {
        ctx,
        conversations: ports.conversations,
        conversation_id: &c.id,
        campaign_id,
        failure: Mutex::new(None),
    };
    let request = AgentRequest {
        spec,
        conversation_id: &c.id,
        turns: &turns,
        deadline: ctx.clock.monotonic() + ctx.config.agent_deadline,
    };
    let reply = ports.agent.reply(request, &host).await.map_err(agent_error)?;
    if let Some(e) = host
        .failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        return Err(e.into());
    }
    let mut sent_turn = None;
    // A model may emit control characters or a blank text: those never reach the lead.
    let text = reply.text.as_deref().map(|t| {
        t.chars()
            .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
            .take(MAX_REPLY_CHARS)
            .collect::<String>()
    });
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        let body = MessageBody::parse(text)
            .map_err(|e| AppError::Unexpected(anyhow::anyhow!("the agent's reply is not a message body: {e}")))?;
        let from = Sender::parse(c.business_number.as_str())
            .map_err(|_| AppError::Unexpected(anyhow::anyhow!("a conversation's business number is not a sender")))?;
        let mut metadata = serde_json::Map::new();
        metadata.insert("conversation_id".to_owned(), json!(c.id.as_str()));
        metadata.insert("agent".to_owned(), json!(spec.provider()));
        let cmd = SendCommand {
            to: c.phone.clone(),
            body,
            from,
            reference: None,
            metadata,
            send_at: None,
            quiet_hours: None,
        };
        let opts = SendOptions {
            id: Some(reply_id),
            reply_to_lead: true,
        };
        let sent = send_message_with(ctx, cmd, opts).await?;
        sent_turn = Some(outbound_turn(&sent.message));
    }
    let message_id = sent_turn.as_ref().and_then(|t| t.message_id.clone());
    let decision = Decision::from_calls(&reply.calls);
    let stored = link_and_decide(ctx, ports, &c.id, sent_turn, decision, ctx.clock.now()).await?;
    Ok(TurnOutcome::Answered {
        message_id,
        outcome: stored.and_then(|c| c.outcome),
    })
}

/// The reply's id: one per (conversation, inbound turn).
pub fn reply_id(c: &Conversation, inbound: &Turn) -> MessageId {
    let turn_key = inbound
        .provider_ref
        .clone()
        .unwrap_or_else(|| inbound.at.timestamp_millis().to_string());
    MessageId::derived(inbound.at, &format!("agent-reply\u{1f}{}\u{1f}{turn_key}", c.id))
}

fn outbound_turn(m: &crate::domain::Message) -> Turn {
    Turn {
        direction: Direction::Outbound,
        body: m.body.as_str().to_owned(),
        at: m.created_at,
        message_id: Some(m.id.clone()),
        provider_ref: None,
    }
}

async fn give_back(ctx: Ctx<'_>, counter: &str, expires: Option<chrono::DateTime<chrono::Utc>>) {
    if let Err(e) = ctx.counters.add(counter, -1, expires, ctx.clock.now()).await {
        tracing::warn!(error.message = %e, "could not give back an agent reply slot");
    }
}

/// A model failure fails the job: `Transient` when a later try may pass, `Unexpected` otherwise
/// (both are retried by the queue and dead-lettered after its max receives).
fn agent_error(e: AgentError) -> AppError {
    tracing::warn!(error.message = %e, "the agent gave no answer; the job will be retried");
    match e {
        AgentError::Unavailable(_) | AgentError::DeadlineExceeded => {
            AppError::Transient(StoreError::Unexpected(anyhow::Error::new(e)))
        }
        other => AppError::Unexpected(anyhow::Error::new(other)),
    }
}

/// What the agent's calls decide, by api.md's order of outcome rules.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Escalate(String),
    End(Outcome, String),
}

impl Decision {
    fn from_calls(calls: &[ToolCall]) -> Option<Self> {
        if let Some(reason) = calls.iter().find_map(|c| match c {
            ToolCall::EscalateToHuman { reason } => Some(reason.clone()),
            _ => None,
        }) {
            return Some(Self::Escalate(reason));
        }
        if let Some(start) = calls.iter().find_map(|c| match c {
            ToolCall::BookAppointment { start, .. } => Some(start.clone()),
            _ => None,
        }) {
            return Some(Self::End(Outcome::Success, format!("appointment booked for {start}")));
        }
        calls.iter().find_map(|c| match c {
            ToolCall::MarkQualified { reason } => Some(Self::End(Outcome::Qualified, reason.clone())),
            ToolCall::MarkUnqualified { reason } => Some(Self::End(Outcome::Unqualified, reason.clone())),
            ToolCall::EndConversation { outcome, reason } => Some(Self::End(*outcome, reason.clone())),
            _ => None,
        })
    }
}

/// Link the reply as an outbound turn and apply the decision, in one conditional write; an
/// escalation that is new raises one alert naming the conversation.
async fn link_and_decide(
    ctx: Ctx<'_>,
    ports: ConversationPorts<'_>,
    id: &ConversationId,
    turn: Option<Turn>,
    decision: Option<Decision>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Conversation>, AppError> {
    let mut escalated_now = false;
    let stored = modify_conversation(ports.conversations, id, |c| {
        escalated_now = false;
        let mut changed = turn.as_ref().is_some_and(|t| c.append(t.clone()).unwrap_or(false));
        match &decision {
            Some(Decision::Escalate(reason)) => {
                escalated_now = c.escalate(reason.clone(), now).unwrap_or(false);
                changed |= escalated_now;
            }
            Some(Decision::End(outcome, reason)) => changed |= c.end(*outcome, reason.clone(), now).is_ok(),
            None => {}
        }
        changed
    })
    .await?;
    if escalated_now {
        raise_once(
            ctx,
            AlertKind::ConversationEscalated,
            id.as_str(),
            format!("conversation {id} needs a person (GET /v1/conversations/{id})"),
            serde_json::Map::new(),
        )
        .await;
    }
    Ok(stored)
}

/// The use case's tools: `book_appointment` records the slot now (its result is what the model
/// confirms to the lead); the other tools are decisions applied after the reply is sent.
struct Host<'a> {
    ctx: Ctx<'a>,
    conversations: &'a dyn ConversationStore,
    conversation_id: &'a ConversationId,
    campaign_id: &'a str,
    /// A store failure while booking: the turn fails after the agent returns.
    failure: Mutex<Option<StoreError>>,
}

#[async_trait::async_trait]
impl ToolHost for Host<'_> {
    async fn execute(&self, call: &ToolCall) -> Result<Value, String> {
        let ToolCall::BookAppointment {
            start,
            duration_minutes,
            notes,
        } = call
        else {
            return Ok(json!({ "status": "recorded", "tool": call.name() }));
        };
        let now = self.ctx.clock.now();
        let booking = Appointment {
            start: start.clone(),
            duration_minutes: *duration_minutes,
            notes: notes.clone(),
            booked_at: now,
        };
        let same = |a: &Appointment| a.start == booking.start && a.duration_minutes == booking.duration_minutes;
        let mut recorded_now = false;
        let stored = modify_conversation(self.conversations, self.conversation_id, |c| {
            recorded_now = !c.appointment.as_ref().is_some_and(same);
            if recorded_now {
                c.appointment = Some(booking.clone());
            }
            recorded_now
        })
        .await;
        let stored = match stored {
            Ok(Some(c)) => c,
            Ok(None) => return Err("the conversation is gone; nothing was booked".to_owned()),
            Err(e) => {
                *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                return Err("the booking could not be recorded; nothing was booked".to_owned());
            }
        };
        let recorded = stored.appointment.unwrap_or(booking);
        if recorded_now {
            let event = DomainEvent {
                detail_type: "appointment.booked".to_owned(),
                detail: json!({
                    "conversation_id": self.conversation_id.as_str(),
                    "campaign_id": self.campaign_id,
                    "start": recorded.start,
                    "duration_minutes": recorded.duration_minutes,
                    "notes": recorded.notes,
                }),
                at: now,
            };
            publish(self.ctx, vec![event]).await;
        }
        Ok(json!({
            "status": "confirmed",
            "conversation_id": self.conversation_id.as_str(),
            "start": recorded.start,
            "duration_minutes": recorded.duration_minutes,
            "notes": recorded.notes,
        }))
    }
}

/// A conversation silent for its campaign's `end_after_silence` ends: the campaign's model
/// classifies it when it has one (strict JSON-schema output), else the no-model rule
/// (`conversations::end_after_silence`). An answer in the wrong shape falls back to the rule; a
/// model that cannot be reached fails the job (retried). Returns whether it ended now.
///
/// # Errors
/// Store failures; an unreachable model.
pub async fn conversation_silent(
    ctx: Ctx<'_>,
    ports: ConversationPorts<'_>,
    id: &ConversationId,
) -> Result<bool, AppError> {
    let now = ctx.clock.now();
    let Some(c) = ports.conversations.get_conversation(id).await? else {
        return Ok(false);
    };
    if c.status == ConversationStatus::Ended {
        return Ok(false);
    }
    if c.outcome == Some(Outcome::Escalated) {
        // Handed to a person, then silent: it ends as it stood; no model re-decides it.
        let reason = c.outcome_reason.clone().unwrap_or_else(|| "escalated".to_owned());
        let ended = modify_conversation(ports.conversations, id, |c| {
            c.end(Outcome::Escalated, reason.clone(), now).is_ok()
        })
        .await?;
        return Ok(ended.is_some_and(|c| c.ended_at == Some(now)));
    }
    let spec = match &c.campaign_id {
        Some(campaign) => ports.campaign_agents.agent_of(campaign).await?,
        None => None,
    };
    let Some(spec) = spec else {
        return end_after_silence(ports.conversations, id, now).await;
    };
    let turns = conversation_turns(ctx.messages, &c).await?;
    let request = AgentRequest {
        spec: &spec,
        conversation_id: id,
        turns: &turns,
        deadline: ctx.clock.monotonic() + ctx.config.agent_deadline,
    };
    let classified = match ports.agent.classify(request).await {
        Ok(c) => c,
        Err(AgentError::BadOutput(why)) => {
            tracing::warn!(conversation_id = %id, why, "the model's classification is unusable: the no-model rule applies");
            None
        }
        Err(e) => return Err(agent_error(e)),
    };
    let Some(classified) = classified else {
        return end_after_silence(ports.conversations, id, now).await;
    };
    let reason = format!("classified by the model: {}", classified.reason);
    let ended = modify_conversation(ports.conversations, id, |c| {
        c.end(classified.outcome, reason.clone(), now).is_ok()
    })
    .await?;
    Ok(ended.is_some_and(|c| c.ended_at == Some(now)))
}
