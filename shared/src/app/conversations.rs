//! Conversation plumbing the use cases share: find-or-open the pair's conversation, and
//! read-modify-write with optimistic concurrency (like `modify_message`).

use super::MODIFY_ATTEMPTS;
use crate::domain::{Conversation, ConversationId, PhoneNumber};
use crate::ports::{ConversationStore, StoreError};
use chrono::{DateTime, Utc};

/// The open conversation of (`business_number`, `phone`), opened (with `campaign_id`) when there
/// is none. Two webhooks at once open one: the loser of the create reads the winner's.
///
/// # Errors
/// The store's error, or `ConditionFailed` if the pair kept changing under us.
pub async fn open_or_create(
    store: &dyn ConversationStore,
    business_number: &PhoneNumber,
    phone: &PhoneNumber,
    campaign_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Conversation, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        if let Some(open) = store.open_conversation(business_number, phone).await? {
            return Ok(open);
        }
        let fresh = Conversation::open(phone.clone(), business_number.clone(), campaign_id.clone(), now);
        match store.create_conversation(&fresh).await {
            Ok(()) => return Ok(fresh),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::ConditionFailed)
}

/// Read a conversation, apply `change`, and write it back if `change` returned `true`, re-reading
/// after a lost version race. Returns the record as stored afterwards (`None`: no such id).
///
/// # Errors
/// The store's error, or `ConditionFailed` after `MODIFY_ATTEMPTS` lost races.
pub async fn modify_conversation(
    store: &dyn ConversationStore,
    id: &ConversationId,
    mut change: impl FnMut(&mut Conversation) -> bool + Send,
) -> Result<Option<Conversation>, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        let Some(current) = store.get_conversation(id).await? else {
            return Ok(None);
        };
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(Some(current));
        }
        next.version = current.version + 1;
        match store.update_conversation(&next).await {
            Ok(()) => return Ok(Some(next)),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::ConditionFailed)
}

/// A person answers a conversation (`POST /v1/conversations/{id}/messages`): the text goes through
/// the send pipeline like any message (consent, limits, status tracking), the message is linked as
/// an outbound turn, and the conversation waits for people from now on (`needs_human`: the agent
/// stays quiet).
///
/// # Errors
/// `NotFound`; `Conflict` `conversation_ended` for an ended conversation; the send's own errors.
pub async fn reply_as_person(
    ctx: super::Ctx<'_>,
    conversations: &dyn ConversationStore,
    id: &ConversationId,
    body: crate::domain::MessageBody,
) -> Result<(Conversation, super::send::SendOutcome), super::AppError> {
    use super::AppError;
    let conversation = conversations.get_conversation(id).await?.ok_or(AppError::NotFound)?;
    if !conversation.is_open() {
        return Err(AppError::Conflict {
            code: "conversation_ended",
            message: "the conversation has ended; set its outcome instead, or wait for the lead to write again"
                .to_owned(),
        });
    }
    let from = crate::ports::Sender::parse(conversation.business_number.as_str())
        .map_err(|_| AppError::Unexpected(anyhow::anyhow!("a conversation's business number is not a sender")))?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("conversation_id".to_owned(), serde_json::json!(id.as_str()));
    let text = body.as_str().to_owned();
    let cmd = super::send::SendCommand {
        to: conversation.phone.clone(),
        body,
        from,
        reference: None,
        metadata,
        send_at: None,
        quiet_hours: None,
    };
    let sent = super::send::send_message(ctx, cmd).await?;
    let turn = crate::domain::Turn {
        direction: crate::domain::Direction::Outbound,
        body: text,
        at: sent.message.created_at,
        message_id: Some(sent.message.id.clone()),
        provider_ref: None,
    };
    let now = ctx.clock.now();
    let stored = modify_conversation(conversations, id, |c| {
        let added = c.append(turn.clone()).unwrap_or(false);
        let handed = c.status == crate::domain::ConversationStatus::Open && c.hand_to_human(now).is_ok();
        added || handed
    })
    .await?
    .ok_or(AppError::NotFound)?;
    Ok((stored, sent))
}

/// A person sets or corrects the outcome (`POST /v1/conversations/{id}/outcome`); the
/// conversation is ended either way.
///
/// # Errors
/// `NotFound`; store failures.
pub async fn set_outcome(
    conversations: &dyn ConversationStore,
    id: &ConversationId,
    outcome: crate::domain::Outcome,
    reason: String,
    now: DateTime<Utc>,
) -> Result<Conversation, super::AppError> {
    modify_conversation(conversations, id, |c| {
        let unchanged = c.outcome == Some(outcome) && c.outcome_reason.as_deref() == Some(reason.as_str());
        if !unchanged {
            c.correct_outcome(outcome, reason.clone(), now);
        }
        !unchanged
    })
    .await?
    .ok_or(super::AppError::NotFound)
}

/// A conversation silent for its campaign's `end_after_silence` ends (docs/api.md, the last outcome
/// rule). Without a model to classify it: `qualified` if the lead replied, else `no_response`,
/// the reason saying which. An ended conversation is left as it is. Returns whether it ended now.
///
/// # Errors
/// Store failures (a missing conversation is not one: there is nothing to end).
pub async fn end_after_silence(
    conversations: &dyn ConversationStore,
    id: &ConversationId,
    now: DateTime<Utc>,
) -> Result<bool, super::AppError> {
    use crate::domain::{ConversationStatus, Direction, Outcome};
    let ended = modify_conversation(conversations, id, |c| {
        if c.status == ConversationStatus::Ended {
            return false;
        }
        let replied = c.turns.iter().any(|t| t.direction == Direction::Inbound);
        let (outcome, reason) = if replied {
            (
                Outcome::Qualified,
                "the lead replied; no model classified the conversation",
            )
        } else {
            (Outcome::NoResponse, "the lead never replied")
        };
        c.end(outcome, reason.to_owned(), now).is_ok()
    })
    .await?;
    Ok(ended.is_some_and(|c| c.status == ConversationStatus::Ended && c.ended_at == Some(now)))
}

/// Pages of a phone's messages read to join a conversation's outbound messages.
const JOIN_PAGES: usize = 5;
/// Messages per page of that read.
const JOIN_PAGE_SIZE: usize = 200;

/// Both directions of a conversation, in order: its recorded turns (inbound texts, Retell's
/// turns, a person's replies) joined with every outbound message the send pipeline accepted for
/// the phone from the conversation's business number while it was open. The join happens when the
/// conversation is read, so sending costs no extra store call; a message already recorded as a
/// turn (same message id) appears once. Reads at most `JOIN_PAGES` pages of the phone's messages.
///
/// # Errors
/// Store failures.
pub async fn conversation_turns(
    messages: &dyn crate::ports::MessageStore,
    c: &Conversation,
) -> Result<Vec<crate::domain::Turn>, StoreError> {
    use crate::domain::{Direction, Turn};
    let mut turns = c.turns.clone();
    let until = c.ended_at;
    let mut cursor: Option<String> = None;
    for _ in 0..JOIN_PAGES {
        let page = messages
            .list_messages_to(&c.phone, None, JOIN_PAGE_SIZE, cursor.as_deref())
            .await?;
        let mut older = false;
        for m in &page.items {
            if m.created_at < c.created_at {
                older = true;
                continue;
            }
            let in_window = until.is_none_or(|u| m.created_at <= u);
            let known = turns.iter().any(|t| t.message_id.as_ref() == Some(&m.id));
            if in_window && !known && m.from == c.business_number.as_str() {
                turns.push(Turn {
                    direction: Direction::Outbound,
                    body: m.body.as_str().to_owned(),
                    at: m.created_at,
                    message_id: Some(m.id.clone()),
                    provider_ref: m.provider_sid.as_ref().map(|s| s.as_str().to_owned()),
                });
            }
        }
        match page.next_cursor {
            Some(next) if !older => cursor = Some(next),
            _ => break,
        }
    }
    turns.sort_by_key(|t| t.at);
    Ok(turns)
}
