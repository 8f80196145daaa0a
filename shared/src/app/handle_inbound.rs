//! handle_inbound: what a lead texted us (Twilio's inbound webhook, or a Retell text), recorded
//! and queued — never answered by a model here (docs/api.md "Keywords"; the webhook must answer
//! within Twilio's 15 s and Retell's 10 s).
//!
//! - STOP family → opted out with evidence; the phone's open conversations end `discarded`; its
//!   active enrolments stop (the [`EnrolmentHook`]); nothing more is sent (every send checks the
//!   opt-out first). No reply: Twilio confirms the opt-out itself.
//! - START family → opted in again with evidence; nothing restarts by itself.
//! - HELP family → the help text, unless Twilio's Advanced Opt-Out answered already.
//! - Anything else → a turn of the open conversation of (business number, phone), opened if
//!   there is none; `message.received`; enrolments of the pair pause; an agent-turn job.
//!
//! Every step is idempotent, so a redelivered webhook (same `MessageSid`) stores nothing twice
//! and gets the same answer: consent entries and turns are deduplicated on the provider's id.

use super::consent::record_consent;
use super::conversations::{modify_conversation, open_or_create};
use super::AppError;
use crate::domain::{
    ConsentChannel, ConsentEvidence, ConsentStatus, ConversationId, ConversationStatus, Direction, Keyword, Outcome,
    PhoneNumber, Turn,
};
use crate::ports::{
    ConsentStore, ConversationFilter, ConversationStore, DomainEvent, EnrolmentHook, EventPublisher, JobPayload,
    JobQueue,
};
use chrono::{DateTime, Utc};

/// The ports inbound handling uses.
#[derive(Clone, Copy)]
pub struct InboundPorts<'a> {
    /// Opt-outs and their evidence.
    pub consent: &'a dyn ConsentStore,
    /// Conversations.
    pub conversations: &'a dyn ConversationStore,
    /// Where agent turns are queued.
    pub queue: &'a dyn JobQueue,
    /// `message.received`.
    pub events: &'a dyn EventPublisher,
    /// Campaign enrolments to stop or pause.
    pub enrolments: &'a dyn EnrolmentHook,
}

/// One text from a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundText {
    /// Where it came from (`Sms` for Twilio's webhook, `Retell` for Retell's).
    pub channel: ConsentChannel,
    /// The provider's id of the text (`MessageSid`, or Retell's message id): the dedupe key.
    pub provider_ref: String,
    /// The lead.
    pub from: PhoneNumber,
    /// Our number.
    pub to: PhoneNumber,
    /// The text, as received.
    pub body: String,
    /// Twilio's `OptOutType`, when sent.
    pub opt_out_type: Option<String>,
    /// When it arrived (from the clock).
    pub at: DateTime<Utc>,
}

/// What was done with it (the entrypoint turns it into TwiML or JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Opted out; the conversations that ended and enrolments that stopped.
    OptedOut {
        /// Conversations ended `discarded`.
        conversations_ended: usize,
        /// Enrolments stopped.
        enrolments_stopped: usize,
    },
    /// Opted in again.
    OptedIn,
    /// Asked for help: `reply` is what to answer (none when the provider answered already).
    Help {
        /// The help text to send back in the webhook's answer.
        reply: Option<String>,
    },
    /// A reply, now a turn of `conversation_id`.
    Reply {
        /// The conversation.
        conversation_id: ConversationId,
        /// Whether this text was new (a redelivery is `false`).
        appended: bool,
    },
}

/// Handle one inbound text. `help_text` is `SMSRELAY_HELP_TEXT`.
///
/// # Errors
/// A store failure (`Transient`: the webhook answers 503 and the provider may retry, which is
/// safe since every step is idempotent).
pub async fn handle_inbound(
    ports: InboundPorts<'_>,
    text: InboundText,
    help_text: &str,
) -> Result<InboundOutcome, AppError> {
    match Keyword::classify(&text.body, text.opt_out_type.as_deref()) {
        Keyword::Stop(keyword) => opt_out(ports, &text, keyword).await,
        Keyword::Start(keyword) => {
            let evidence = evidence(&text, ConsentStatus::OptedIn, keyword);
            record_consent(ports.consent, &text.from, &evidence).await?;
            tracing::info!(phone = %text.from.masked(), "opted in again by keyword");
            Ok(InboundOutcome::OptedIn)
        }
        Keyword::Help {
            answered_by_provider, ..
        } => Ok(InboundOutcome::Help {
            reply: (!answered_by_provider).then(|| help_text.to_owned()),
        }),
        Keyword::Reply => reply(ports, text).await,
    }
}

fn evidence(text: &InboundText, status: ConsentStatus, keyword: String) -> ConsentEvidence {
    ConsentEvidence {
        status,
        at: text.at,
        keyword: Some(keyword),
        channel: text.channel,
        message_sid: Some(text.provider_ref.clone()),
    }
}

async fn opt_out(ports: InboundPorts<'_>, text: &InboundText, keyword: String) -> Result<InboundOutcome, AppError> {
    let reason = format!("opted out ({keyword})");
    record_consent(ports.consent, &text.from, &evidence(text, ConsentStatus::OptedOut, keyword)).await?;
    let mut conversations_ended = 0;
    for status in [ConversationStatus::Open, ConversationStatus::NeedsHuman] {
        let filter = ConversationFilter {
            status: Some(status),
            outcome: None,
        };
        // One open conversation per business number: a phone has few; read them all.
        let mut cursor: Option<String> = None;
        loop {
            let page = ports
                .conversations
                .list_conversations(&text.from, filter, 200, cursor.as_deref())
                .await?;
            for c in &page.items {
                let ended = modify_conversation(ports.conversations, &c.id, |c| {
                    c.end(Outcome::Discarded, reason.clone(), text.at).is_ok()
                })
                .await?;
                if ended.is_some_and(|c| c.outcome == Some(Outcome::Discarded)) {
                    conversations_ended += 1;
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    let enrolments_stopped = ports.enrolments.stop_all(&text.from, &reason, text.at).await?;
    tracing::info!(
        phone = %text.from.masked(),
        conversations_ended,
        enrolments_stopped,
        "opted out by keyword"
    );
    Ok(InboundOutcome::OptedOut {
        conversations_ended,
        enrolments_stopped,
    })
}

async fn reply(ports: InboundPorts<'_>, text: InboundText) -> Result<InboundOutcome, AppError> {
    let turn = Turn {
        direction: Direction::Inbound,
        body: text.body.clone(),
        at: text.at,
        message_id: None,
        provider_ref: Some(text.provider_ref.clone()),
    };
    let conversation = open_or_create(ports.conversations, &text.to, &text.from, None, text.at).await?;
    let mut appended = false;
    let stored = modify_conversation(ports.conversations, &conversation.id, |c| match c.append(turn.clone()) {
        Ok(added) => {
            appended = added;
            added
        }
        Err(_) => false,
    })
    .await?;
    let conversation_id = stored.map_or(conversation.id, |c| c.id);
    if appended {
        ports.enrolments.pause_pair(&text.to, &text.from, text.at).await?;
        let event = DomainEvent {
            detail_type: "message.received".to_owned(),
            detail: serde_json::json!({
                "conversation_id": conversation_id.as_str(),
                "channel": text.channel,
                "provider_ref": text.provider_ref,
            }),
            at: text.at,
        };
        if let Err(e) = ports.events.publish(&[event]).await {
            tracing::warn!(error.message = %e, "message.received was not published");
        }
    }
    // Queued on a redelivery too: a crash after the append must not lose the agent's turn, and the
    // turn itself is idempotent (it answers the conversation's latest unanswered inbound text).
    // A queue outage is a 503: the provider's retry finds the turn recorded and queues again.
    let job = JobPayload::agent_turn(conversation_id.clone(), text.at);
    ports
        .queue
        .enqueue(&job, std::time::Duration::ZERO)
        .await
        .map_err(|e| AppError::Transient(crate::ports::StoreError::Unexpected(anyhow::Error::new(e))))?;
    Ok(InboundOutcome::Reply {
        conversation_id,
        appended,
    })
}
