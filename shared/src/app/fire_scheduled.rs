//! A scheduled message whose time has come: checked again before it is sent (issue: pre-send
//! validation at fire time). Order: ref canceled → canceled; opted out → suppressed; inside the
//! message's own quiet hours → moved to the window's end (a `rescheduled` entry, the caller's time
//! kept as `original_send_at`; no default window applies to API messages); then the message is claimed (one conditional write, so two
//! overlapping processor runs cannot both fire it), and only the claimer counts it against the
//! recipient's daily limit (over → canceled with the reason) and hourly limit (over → held
//! `rate_limited`), then makes the attempt.

use super::attempt::{claim_fired, run_claimed, AttemptOutcome, Claim};
use super::{modify_message, AppError, Ctx};
use crate::domain::schedule::local_day;
use crate::domain::{Message, MessageError, MessageStatus, Ref, RescheduleReason};
use chrono::{DateTime, Utc};

/// What firing a scheduled message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The attempt was made; its outcome.
    Attempted(AttemptOutcome),
    /// Moved to the end of the message's own quiet hours.
    Rescheduled,
    /// Not sent: canceled (ref canceled, daily limit), suppressed, or held rate-limited.
    NotSent(MessageStatus),
    /// Another run got it first, or it is no longer scheduled.
    Skipped,
}

/// The key of a canceled-ref marker.
pub fn canceled_ref_key(r: &Ref) -> String {
    format!("ref_canceled\u{1f}{}\u{1f}{}", r.kind, r.id)
}

/// Fire one due scheduled message.
///
/// # Errors
/// Store failures (the message stays due and is retried next tick).
pub async fn fire_scheduled(ctx: Ctx<'_>, m: &Message) -> Result<Fired, AppError> {
    if m.status != MessageStatus::Scheduled {
        return Ok(Fired::Skipped);
    }
    let now = ctx.clock.now();
    if let Some(r) = &m.reference {
        if ctx.counters.get_doc(&canceled_ref_key(r), now).await?.is_some() {
            return end_without_sending(ctx, m, MessageStatus::Canceled, None, now).await;
        }
    }
    if ctx.consent.opt_out_of(&m.to).await?.is_some() {
        return end_without_sending(ctx, m, MessageStatus::Suppressed, None, now).await;
    }
    // Only the message's own quiet hours: a `send_at` without them is the caller's decision.
    if let Some(q) = &m.quiet_hours {
        let next = q.next_allowed(now);
        if next > now {
            let version = m.version;
            modify_message(ctx.messages, &m.id, |x| {
                if x.status != MessageStatus::Scheduled || x.version != version {
                    return false;
                }
                x.reschedule(next, RescheduleReason::QuietHours, now);
                true
            })
            .await?;
            tracing::info!(message_id = %m.id, until = %next, reason = RescheduleReason::QuietHours.as_str(), "rescheduled");
            return Ok(Fired::Rescheduled);
        }
    }
    // Claim: scheduled → queued, once.
    let mut won = false;
    modify_message(ctx.messages, &m.id, |x| {
        won = x.status == MessageStatus::Scheduled;
        if won {
            x.advance(MessageStatus::Queued, None, now);
            x.due_at = Some(now);
        }
        won
    })
    .await?;
    if !won {
        return Ok(Fired::Skipped);
    }
    let tz = m
        .quiet_hours
        .as_ref()
        .map_or(ctx.config.default_timezone, |q| q.timezone());
    let day_key = format!("daily\u{1f}{}\u{1f}{}", m.to.as_str(), local_day(now, tz));
    let expires = now + chrono::Duration::days(2);
    let sent_today = ctx.counters.add(&day_key, 1, Some(expires), now).await?;
    if sent_today > i64::from(ctx.config.daily_limit) {
        ctx.counters.add(&day_key, -1, Some(expires), now).await?;
        let reason = MessageError {
            code: 0,
            message: format!(
                "daily limit reached: at most {} messages per recipient per local day",
                ctx.config.daily_limit
            ),
        };
        return end_without_sending(ctx, m, MessageStatus::Canceled, Some(reason), now).await;
    }
    if !ctx
        .consent
        .take_send_slot(&m.to, now, chrono::Duration::hours(1), ctx.config.rate_limit_per_hour)
        .await?
    {
        modify_message(ctx.messages, &m.id, |x| {
            if x.status != MessageStatus::Queued {
                return false;
            }
            x.reset_to(MessageStatus::RateLimited, now);
            x.failed_listed = true;
            x.due_at = None;
            true
        })
        .await?;
        return Ok(Fired::NotSent(MessageStatus::RateLimited));
    }
    match claim_fired(ctx, &m.id).await? {
        Claim::Claimed(claimed) => {
            let (_, outcome, _) = run_claimed(ctx, claimed).await?;
            Ok(Fired::Attempted(outcome))
        }
        // The sender's rate is booked: it stays queued and due; the next tick sends it.
        Claim::Busy => Ok(Fired::Rescheduled),
        Claim::Suppressed => Ok(Fired::NotSent(MessageStatus::Suppressed)),
        Claim::Skipped => Ok(Fired::Skipped),
    }
}

async fn end_without_sending(
    ctx: Ctx<'_>,
    m: &Message,
    status: MessageStatus,
    error: Option<MessageError>,
    now: DateTime<Utc>,
) -> Result<Fired, AppError> {
    let mut changed = false;
    modify_message(ctx.messages, &m.id, |x| {
        if !matches!(x.status, MessageStatus::Scheduled | MessageStatus::Queued) {
            return false;
        }
        x.due_at = None;
        x.failed_listed = false;
        if error.is_some() {
            x.error = error.clone();
        }
        changed = x.advance(status, None, now);
        changed
    })
    .await?;
    tracing::info!(message_id = %m.id, %status, "scheduled message not sent");
    Ok(if changed {
        Fired::NotSent(status)
    } else {
        Fired::Skipped
    })
}
