//! Crash reconciliation: an attempt left `sending` past `SMSRELAY_RECONCILE_AFTER` (a crash
//! between the provider's answer and our write, a Lambda timeout, a provider 5xx or timeout) is
//! looked up at the provider BEFORE anything is resent (docs/design.md invariant 2).
//!
//! Match rule: a provider message to the same number, from the same sender, with the same body,
//! created no earlier than one minute before the attempt started, whose sid no other message
//! (and no earlier attempt of this one) owns. Found → linked and `sent`. Not found → the attempt
//! never reached the provider: retried (or failed when attempts are used up).

use super::attempt::{requeue_or_fail, AttemptOutcome};
use super::{modify_message, AppError, Ctx};
use crate::domain::{Message, MessageStatus};
use crate::ports::{ProviderError, Sender, StoreError};

/// What reconciling one message found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// The provider has it: linked and marked with the provider's status.
    Found,
    /// The provider never got it: another attempt was queued (or it failed for good).
    NotFound(AttemptOutcome),
    /// The provider could not be asked now; try on the next sweep.
    Deferred,
    /// The message is no longer an unconfirmed attempt.
    Skipped,
}

/// Reconcile one `sending` message with the provider.
///
/// # Errors
/// Store failures.
pub async fn reconcile_message(ctx: Ctx<'_>, message: &Message) -> Result<Reconciled, AppError> {
    if message.status != MessageStatus::Sending {
        return Ok(Reconciled::Skipped);
    }
    let started = message.attempt_started_at.unwrap_or(message.updated_at);
    let since = started - chrono::Duration::minutes(1);
    let from = Sender::parse(&message.from).unwrap_or_else(|_| ctx.config.default_sender.clone());
    let candidates = match ctx.provider.list_sent(&message.to, &from, since, 50).await {
        Ok(c) => c,
        Err(e) => {
            log_deferred(message, &e);
            return Ok(Reconciled::Deferred);
        }
    };
    for c in candidates {
        if c.body != message.body.as_str() || message.previous_sids.contains(&c.sid) {
            continue;
        }
        if c.date_created.is_some_and(|d| d < since) {
            continue;
        }
        match ctx.messages.message_id_for_sid(&c.sid).await? {
            Some(owner) if owner != message.id => continue,
            _ => {}
        }
        match ctx.messages.link_provider_sid(&c.sid, &message.id).await {
            Ok(()) => {}
            // Another message owns the sid now: not ours.
            Err(StoreError::ConditionFailed) => continue,
            // The provider has it, we could not record it: never "not found" (that resends);
            // the next sweep reconciles again.
            Err(e) => return Err(e.into()),
        }
        let now = ctx.clock.now();
        let mapped = MessageStatus::from_twilio(&c.status).unwrap_or(MessageStatus::Sent);
        let poll_after = chrono::Duration::from_std(ctx.config.status_poll_after).unwrap_or_default();
        let attempts = message.attempts;
        modify_message(ctx.messages, &message.id, |m| {
            if m.status != MessageStatus::Sending || m.attempts != attempts {
                return false;
            }
            m.provider_sid = Some(c.sid.clone());
            m.provider_status = Some(c.status.clone());
            m.error = None;
            m.advance(MessageStatus::Sent, None, now);
            if mapped != MessageStatus::Sent {
                m.advance(mapped, c.error_code, now);
            }
            m.due_at = if m.status == MessageStatus::Sent {
                Some(now + poll_after)
            } else {
                None
            };
            if m.status == MessageStatus::Failed {
                m.failed_listed = true;
            }
            true
        })
        .await?;
        tracing::info!(message_id = %message.id, sid = %c.sid, "reconciled: the provider had it");
        return Ok(Reconciled::Found);
    }
    let outcome = requeue_or_fail(ctx, &message.id, MessageStatus::Sending).await?;
    tracing::info!(message_id = %message.id, ?outcome, "reconciled: the provider never got it");
    Ok(outcome.map_or(Reconciled::Skipped, Reconciled::NotFound))
}

fn log_deferred(message: &Message, e: &ProviderError) {
    tracing::warn!(message_id = %message.id, error.message = %e, "reconciliation deferred: provider unavailable");
}
