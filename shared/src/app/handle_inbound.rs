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
    record_consent(
        ports.consent,
        &text.from,
        &evidence(text, ConsentStatus::OptedOut, keyword),
    )
    .await?;
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
    let stored = modify_conversation(ports.conversations, &conversation.id, |c| {
        match c.append(turn.clone()) {
            Ok(added) => {
                appended = added;
                added
            }
            Err(_) => false,
        }
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

#[cfg(all(test, feature = "sqlite"))]
pub(crate) mod tests {
    use super::*;
    use crate::adapters::no_campaigns::NoEnrolments;
    use crate::adapters::sqlite::{SqliteJobQueue, SqliteStore};
    use crate::domain::Region;
    use crate::ports::JobKind;
    use crate::testing::{ManualClock, RecordingPublisher};
    use chrono::TimeZone;
    use std::sync::Arc;

    /// SQLite store and queue, recorded events, a manual clock (shared with the Retell tests).
    pub(crate) struct World {
        pub(crate) store: SqliteStore,
        pub(crate) queue: SqliteJobQueue,
        pub(crate) events: RecordingPublisher,
        pub(crate) clock: Arc<ManualClock>,
        pub(crate) campaigns: crate::testing::StaticCampaignAgents,
    }

    impl World {
        pub(crate) fn new() -> Self {
            let clock = Arc::new(ManualClock::new(
                Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).single().unwrap_or_default(),
            ));
            Self {
                store: SqliteStore::open_in_memory().unwrap_or_else(|e| panic!("{e}")),
                queue: SqliteJobQueue::open_in_memory(5, clock.clone()).unwrap_or_else(|e| panic!("{e}")),
                events: RecordingPublisher::default(),
                clock,
                campaigns: crate::testing::StaticCampaignAgents::default(),
            }
        }

        pub(crate) fn ports(&self) -> InboundPorts<'_> {
            InboundPorts {
                consent: &self.store,
                conversations: &self.store,
                queue: &self.queue,
                events: &self.events,
                enrolments: &NoEnrolments,
            }
        }

        async fn text(&self, sid: &str, body: &str, opt_out_type: Option<&str>) -> InboundOutcome {
            let text = InboundText {
                channel: ConsentChannel::Sms,
                provider_ref: sid.to_owned(),
                from: lead(),
                to: ours(),
                body: body.to_owned(),
                opt_out_type: opt_out_type.map(str::to_owned),
                at: crate::ports::Clock::now(self.clock.as_ref()),
            };
            handle_inbound(self.ports(), text, "Acme: reply STOP to opt out.")
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    }

    pub(crate) fn lead() -> PhoneNumber {
        PhoneNumber::parse("+14155550100", Region::US).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn ours() -> PhoneNumber {
        PhoneNumber::parse("+15005550006", Region::US).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_reply_opens_a_conversation_queues_the_agent_and_a_redelivery_adds_nothing() {
        let w = World::new();
        let InboundOutcome::Reply {
            conversation_id,
            appended,
        } = w.text("SM01", "yes thursday", None).await
        else {
            panic!("not a reply");
        };
        assert!(appended);
        w.clock.advance(std::time::Duration::from_secs(40));
        let again = w.text("SM01", "yes thursday", None).await;
        assert_eq!(
            again,
            InboundOutcome::Reply {
                conversation_id: conversation_id.clone(),
                appended: false
            }
        );
        w.text("SM02", "2pm please", None).await;
        let c = w
            .store
            .get_conversation(&conversation_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("stored"));
        let bodies: Vec<&str> = c.turns.iter().map(|t| t.body.as_str()).collect();
        assert_eq!(bodies, ["yes thursday", "2pm please"]);
        assert_eq!(
            w.events
                .events()
                .iter()
                .filter(|e| e.detail_type == "message.received")
                .count(),
            2
        );
        let jobs = w
            .queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .unwrap_or_default();
        assert!(
            !jobs.is_empty()
                && jobs.iter().all(|j| j.payload.kind == JobKind::AgentTurn
                    && j.payload.conversation_id.as_ref() == Some(&conversation_id))
        );
    }

    #[tokio::test]
    async fn stop_opts_out_with_evidence_and_discards_the_open_conversation_once() {
        let w = World::new();
        let InboundOutcome::Reply { conversation_id, .. } = w.text("SM01", "hi", None).await else {
            panic!("not a reply");
        };
        let outcome = w.text("SMa1", "Stop", Some("STOP")).await;
        assert_eq!(
            outcome,
            InboundOutcome::OptedOut {
                conversations_ended: 1,
                enrolments_stopped: 0
            }
        );
        assert_eq!(
            w.text("SMa1", "Stop", Some("STOP")).await,
            InboundOutcome::OptedOut {
                conversations_ended: 0,
                enrolments_stopped: 0
            }
        );
        assert!(w.store.opt_out_of(&lead()).await.unwrap_or_default().is_some());
        let history = w.store.consent_history(&lead()).await.unwrap_or_default();
        assert_eq!(history.len(), 1);
        assert_eq!(
            (
                history[0].status,
                history[0].keyword.as_deref(),
                history[0].message_sid.as_deref()
            ),
            (ConsentStatus::OptedOut, Some("STOP"), Some("SMa1"))
        );
        let c = w.store.get_conversation(&conversation_id).await.unwrap_or_default();
        assert_eq!(c.and_then(|c| c.outcome), Some(Outcome::Discarded));
    }

    #[tokio::test]
    async fn start_opts_in_again_and_help_answers_only_when_twilio_did_not() {
        let w = World::new();
        w.text("SMa1", "STOP", None).await;
        w.clock.advance(std::time::Duration::from_secs(300));
        assert_eq!(w.text("SMb1", "start", None).await, InboundOutcome::OptedIn);
        assert_eq!(w.store.opt_out_of(&lead()).await.unwrap_or_default(), None);
        assert_eq!(w.store.consent_history(&lead()).await.unwrap_or_default().len(), 2);
        assert_eq!(
            w.text("SMc1", "HELP", None).await,
            InboundOutcome::Help {
                reply: Some("Acme: reply STOP to opt out.".to_owned())
            }
        );
        assert_eq!(
            w.text("SMc2", "help", Some("HELP")).await,
            InboundOutcome::Help { reply: None }
        );
        let open = w.store.open_conversation(&ours(), &lead()).await.unwrap_or_default();
        assert_eq!(open, None, "keywords are not conversation turns");
    }
}
