//! Apply a provider status callback (`POST /webhooks/twilio/status`), after its signature was checked.
//!
//! Callbacks arrive out of order and more than once. The rank rule in `MessageStatus` makes a
//! repeated or late one change nothing; the receipt is recorded once per (sid, status) for audit,
//! and a callback for a sid we do not know is recorded and acknowledged (never an error, or
//! Twilio would log failures for a message we cannot act on).

use super::alerts::publish;
use super::attempt::{message_event, requeue_or_fail, AttemptOutcome};
use super::metrics::{count, Metric};
use super::{modify_message, Ctx};
use crate::domain::retry_policy::delivery_error_is_retryable;
use crate::domain::{MessageError, MessageId, MessageStatus, ProviderSid};
use crate::ports::{StoreError, WebhookRecord};

/// A parsed status callback.
#[derive(Debug, Clone)]
pub struct StatusCallback {
    /// Our id, from the callback URL's query (set by us at send time).
    pub message_id: Option<MessageId>,
    /// `MessageSid`.
    pub sid: ProviderSid,
    /// Raw `MessageStatus`.
    pub status: String,
    /// `ErrorCode`, when failed/undelivered.
    pub error_code: Option<u32>,
    /// `ErrorMessage`, if sent.
    pub error_message: Option<String>,
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The message moved to a new status.
    Advanced(MessageStatus),
    /// Duplicate, out of order, or for a superseded attempt: nothing changed.
    Ignored,
    /// No message has this sid (recorded, acknowledged).
    UnknownMessage,
    /// A delivery failure another attempt may fix: a fresh attempt was queued.
    Resending,
}

/// Apply one callback.
///
/// # Errors
/// Store failures (the caller answers 5xx so the provider may retry; nothing is half-applied:
/// the status write is one conditional put).
pub async fn record_status(ctx: Ctx<'_>, cb: StatusCallback) -> Result<StatusOutcome, StoreError> {
    let store = ctx.messages;
    let now = ctx.clock.now();
    let id = match &cb.message_id {
        Some(id) => Some(id.clone()),
        None => store.message_id_for_sid(&cb.sid).await?,
    };
    let mapped = MessageStatus::from_twilio(&cb.status);
    let mut outcome = StatusOutcome::UnknownMessage;
    let mut linked = false;
    let mut changed = false;
    if let Some(id) = &id {
        let updated = modify_message(store, id, |m| {
            let wrote = apply_callback(m, &cb, mapped, now, &mut outcome, &mut linked);
            changed = wrote;
            wrote
        })
        .await?;
        if updated.is_none() {
            outcome = StatusOutcome::UnknownMessage;
            changed = false;
        }
        // The delivery failure this callback reports, if the fresh attempt it calls for is still
        // to be queued: just recorded, or recorded by an earlier delivery of this callback whose
        // requeue never happened (a store fault or a crash in between; the provider delivers the
        // callback again after our 5xx). Once requeued, the sid is the previous attempt's and a
        // redelivery changes nothing (found by tests/sim).
        let failure = match (outcome, &updated, mapped) {
            (StatusOutcome::Advanced(st @ (MessageStatus::Undelivered | MessageStatus::Failed)), _, _) => Some(st),
            (StatusOutcome::Ignored, Some(m), Some(st @ (MessageStatus::Undelivered | MessageStatus::Failed)))
                if m.status == st && m.provider_sid.as_ref() == Some(&cb.sid) =>
            {
                Some(st)
            }
            _ => None,
        };
        if let (Some(st), Some(code)) = (failure, cb.error_code) {
            if delivery_error_is_retryable(code)
                && matches!(requeue_or_fail(ctx, id, st).await?, Some(AttemptOutcome::Retrying(_)))
            {
                outcome = StatusOutcome::Resending;
            }
        }
        if linked {
            if let Err(e) = store.link_provider_sid(&cb.sid, id).await {
                tracing::warn!(message_id = %id, error.message = %e, "could not index provider sid from callback");
            }
        }
    }
    // A callback that moved the message is recorded by that write: the status, its time and the
    // provider's status are on the record, and the same callback again changes nothing (a
    // status never advances to itself). Only the others — for no known message, or changing
    // nothing (late, duplicate, another attempt's) — leave a receipt, once per (sid, status).
    let record = WebhookRecord {
        key: format!("twilio_status:{}:{}", cb.sid, cb.status),
        kind: "twilio_status".to_owned(),
        message_id: if outcome == StatusOutcome::UnknownMessage {
            None
        } else {
            id
        },
        provider_sid: Some(cb.sid.clone()),
        status: Some(cb.status.clone()),
        received_at: now,
    };
    if !changed && !store.record_webhook(&record).await? {
        tracing::debug!(sid = %cb.sid, status = %cb.status, "duplicate status callback");
    }
    if let (StatusOutcome::Advanced(st), Some(id)) = (outcome, &record.message_id) {
        let metric = match st {
            MessageStatus::Delivered => Some((Metric::Delivered, "message.delivered")),
            MessageStatus::Undelivered => Some((Metric::Undelivered, "message.undelivered")),
            MessageStatus::Failed => Some((Metric::Failed, "message.failed")),
            _ => None,
        };
        if let Some((metric, detail_type)) = metric {
            count(ctx, metric).await;
            if let Ok(Some(m)) = store.get_message(id).await {
                if st == MessageStatus::Delivered {
                    super::campaigns::count_delivered(ctx.counters, &m, now).await;
                }
                publish(ctx, vec![message_event(detail_type, &m, now)]).await;
            }
        }
    }
    if outcome == StatusOutcome::UnknownMessage {
        tracing::warn!(sid = %cb.sid, status = %cb.status, "status callback for an unknown message recorded");
    }
    Ok(outcome)
}

/// Apply callback `cb` (its status mapped to ours: `mapped`) to `m`; `true` when `m` changed
/// and must be written. Sets `outcome`, and `linked` when the callback taught us the sid.
fn apply_callback(
    m: &mut crate::domain::Message,
    cb: &StatusCallback,
    mapped: Option<MessageStatus>,
    now: chrono::DateTime<chrono::Utc>,
    outcome: &mut StatusOutcome,
    linked: &mut bool,
) -> bool {
    *outcome = StatusOutcome::Ignored;
    *linked = false;
    if m.previous_sids.contains(&cb.sid) {
        return false; // an earlier attempt's late callback
    }
    match &m.provider_sid {
        Some(current) if *current != cb.sid => return false, // not this attempt's sid
        Some(_) => {}
        None => {
            m.provider_sid = Some(cb.sid.clone());
            *linked = true;
        }
    }
    let Some(next) = mapped else { return *linked };
    if m.advance(next, cb.error_code, now) {
        m.provider_status = Some(cb.status.clone());
        if let (MessageStatus::Failed | MessageStatus::Undelivered, Some(code)) = (next, cb.error_code) {
            m.error = Some(MessageError {
                code,
                message: cb
                    .error_message
                    .clone()
                    .unwrap_or_else(|| format!("provider reported error {code}")),
            });
        }
        match next {
            MessageStatus::Delivered | MessageStatus::Undelivered | MessageStatus::Canceled => m.due_at = None,
            MessageStatus::Failed => {
                m.due_at = None;
                m.failed_listed = true;
            }
            _ => {}
        }
        // A retryable failure stays due until its fresh attempt is queued (by this callback, or
        // by the processor if this one is cut short before the requeue).
        if matches!(next, MessageStatus::Failed | MessageStatus::Undelivered)
            && cb.error_code.is_some_and(delivery_error_is_retryable)
        {
            m.due_at = Some(now);
        }
        *outcome = StatusOutcome::Advanced(next);
        return true;
    }
    if next == m.status && provider_rank(&cb.status) > m.provider_status.as_deref().map_or(0, provider_rank) {
        m.provider_status = Some(cb.status.clone());
        return true;
    }
    *linked
}

/// Twilio's own order of the statuses that all map to our `sent`, so `provider_status` never regresses.
fn provider_rank(status: &str) -> u8 {
    match status {
        "scheduled" => 1,
        "accepted" => 2,
        "queued" => 3,
        "sending" => 4,
        "sent" => 5,
        _ => 6,
    }
}
