//! Operator actions (docs/api.md "Operations" and message cancel): the failed list, retry, removal, cancel.

use super::attempt::enqueue_attempt;
use super::fire_scheduled::canceled_ref_key;
use super::{modify_message, AppError, Ctx};
use crate::domain::{Message, MessageId, MessageStatus, Ref};
use crate::ports::MessageQueries;
use std::time::Duration;

/// Send a failed or rate-limited message again with a fresh attempt budget. An operator retry
/// goes past the hourly limit, but never to an opted-out number.
///
/// # Errors
/// `NotFound` if it is not on the failed list; `Refused` (`recipient_opted_out`) if the
/// recipient opted out; store failures.
pub async fn retry_failed(ctx: Ctx<'_>, id: &MessageId) -> Result<Message, AppError> {
    let current = ctx.messages.get_message(id).await?.ok_or(AppError::NotFound)?;
    if !current.failed_listed {
        return Err(AppError::NotFound);
    }
    if ctx.consent.opt_out_of(&current.to).await?.is_some() {
        return Err(AppError::Refused {
            code: "recipient_opted_out",
            message: "the recipient opted out; the message cannot be sent".to_owned(),
        });
    }
    let now = ctx.clock.now();
    let mut ours = false;
    let updated = modify_message(ctx.messages, id, |m| {
        ours = m.failed_listed && m.status.can_requeue();
        if !ours {
            return false;
        }
        m.failed_listed = false;
        m.attempts = 0;
        m.error = None;
        if let Some(old) = m.provider_sid.take() {
            m.previous_sids.push(old);
        }
        m.reset_to(MessageStatus::Queued, now);
        m.due_at = Some(now);
        true
    })
    .await?
    .ok_or(AppError::NotFound)?;
    if !ours {
        return Err(AppError::NotFound);
    }
    enqueue_attempt(ctx, id, now, Duration::ZERO).await;
    tracing::info!(message_id = %id, "operator retry queued");
    Ok(updated)
}

/// Take a message off the failed list; the record stays for audit.
///
/// # Errors
/// `NotFound` if it is not listed; store failures.
pub async fn remove_failed(ctx: Ctx<'_>, id: &MessageId) -> Result<(), AppError> {
    let mut was_listed = false;
    modify_message(ctx.messages, id, |m| {
        was_listed = m.failed_listed;
        m.failed_listed = false;
        was_listed
    })
    .await?
    .ok_or(AppError::NotFound)?;
    if was_listed {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// Cancel a message not yet handed to the provider.
///
/// # Errors
/// `NotFound`; `Conflict` (`already_sent`) once the provider has (or may have) it.
pub async fn cancel_message(ctx: Ctx<'_>, id: &MessageId) -> Result<Message, AppError> {
    let now = ctx.clock.now();
    let mut cancelable = false;
    let m = modify_message(ctx.messages, id, |m| {
        cancelable = m.status.is_cancelable();
        if !cancelable {
            return false;
        }
        m.due_at = None;
        m.failed_listed = false;
        m.advance(MessageStatus::Canceled, None, now)
    })
    .await?
    .ok_or(AppError::NotFound)?;
    if cancelable || m.status == MessageStatus::Canceled {
        Ok(m)
    } else {
        Err(AppError::Conflict {
            code: "already_sent",
            message: format!("the message is {} and can no longer be canceled", m.status),
        })
    }
}

/// How many messages one cancel-by-ref looks at.
const CANCEL_BY_REF_LIMIT: usize = 1000;

/// Cancel every not-yet-sent message linked to the caller's entity (e.g. a deleted calendar
/// event), and mark the entity canceled for 30 days so a linked scheduled message that fires
/// later (one the index did not show yet) is skipped too. Returns how many were canceled.
///
/// # Errors
/// `Validation` (`invalid_ref`) for a ref that a send would refuse ([`Ref::validate`]); store failures.
pub async fn cancel_by_ref(ctx: Ctx<'_>, queries: &dyn MessageQueries, reference: &Ref) -> Result<usize, AppError> {
    reference
        .validate()
        .map_err(|e| AppError::invalid("invalid_ref", "ref", e.to_string()))?;
    let now = ctx.clock.now();
    let marker = serde_json::json!({"at": now.to_rfc3339()});
    ctx.counters
        .put_doc(
            &canceled_ref_key(reference),
            &marker,
            Some(now + chrono::Duration::days(30)),
        )
        .await?;
    let mut canceled = 0;
    for m in queries.list_by_ref(reference, CANCEL_BY_REF_LIMIT).await? {
        if m.status.is_cancelable()
            && cancel_message(ctx, &m.id)
                .await
                .is_ok_and(|x| x.status == MessageStatus::Canceled)
        {
            canceled += 1;
        }
    }
    tracing::info!(kind = %reference.kind, canceled, "canceled by ref");
    Ok(canceled)
}
