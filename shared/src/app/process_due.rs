//! The processor tick (EventBridge `rate(5 minutes)`, smsrelay-local's timer, `POST /v1/processor/run`):
//! everything whose `due_at` has come — queued messages whose retry is due (a safety net under the
//! queue), unconfirmed attempts to reconcile, sent messages to poll for a final status.
//!
//! It reads only the due index, in pages, to a time budget; what it does not reach stays due for
//! the next tick. Overlapping ticks are safe: every action is a conditional write on the message.

use super::alerts::raise_once;
use super::attempt::{claim_attempt, requeue_or_fail, run_claimed, AttemptOutcome, Claim};
use super::fire_scheduled::{fire_scheduled, Fired};
use super::heartbeat::{check_processor, record_heartbeat};
use super::reconcile::{reconcile_message, Reconciled};
use super::{modify_message, AppError, Ctx};
use crate::domain::retry_policy::delivery_error_is_retryable;
use crate::domain::{Message, MessageError, MessageStatus};
use crate::ports::{AlertKind, MessageQueries, ProviderError, Retention};
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

/// Items read per page of the due index.
const PAGE: usize = 100;
/// A `sent` message with no final status this long after it was sent is `unknown`: Twilio keeps
/// a message in its queue at most 10 hours (ValidityPeriod default 36,000 s), so 24 h is past any
/// legitimate delivery report.
const GIVE_UP_POLLING_AFTER_HOURS: i64 = 24;

/// What one tick did (the response of `POST /v1/processor/run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Queued or scheduled messages sent.
    pub due_sent: u32,
    /// Messages moved to a later time (quiet hours, backoff).
    pub rescheduled: u32,
    /// Unconfirmed attempts reconciled with the provider.
    pub reconciled: u32,
    /// Sent messages whose status was fetched from the provider.
    pub polled: u32,
    /// Conversations ended for no response (filled by the campaign half of the tick,
    /// `app::campaigns::process_enrolments`, which `entrypoints::jobs::tick` runs after this).
    pub ended_no_response: u32,
    /// Due items read.
    pub items_read: u32,
    /// Whether due work was left for the next tick (budget exhausted).
    pub remaining: bool,
    /// How long the tick took.
    pub duration_ms: u64,
}

/// Run one tick within `budget`, measured on `ctx.clock`'s monotonic time (a test on the manual
/// clock exhausts the budget by advancing the clock, never by waiting). The due index comes from
/// `queries`, and what expired is purged through `retention` at the end.
///
/// # Errors
/// Store failures on reading the due index (a failure on one item is logged and left due).
pub async fn process_due(
    ctx: Ctx<'_>,
    queries: &dyn MessageQueries,
    retention: &dyn Retention,
    budget: Duration,
) -> Result<TickReport, AppError> {
    let started = ctx.clock.monotonic();
    let mut report = TickReport::default();
    let mut seen = HashSet::new();
    // A tick that finds the previous one too old says so (once per cooldown).
    if let Err(e) = check_processor(ctx).await {
        tracing::warn!(error.message = %e, "heartbeat unreadable");
    }
    // Jobs in the dead-letter queue need an operator: say so once per cooldown.
    match ctx.queue.stats().await {
        Ok(stats) if stats.dead > 0 => {
            let mut counts = serde_json::Map::new();
            counts.insert("dead_letters".to_owned(), serde_json::json!(stats.dead));
            let summary = format!("{} retry jobs are in the dead-letter queue", stats.dead);
            raise_once(ctx, AlertKind::DeadLetter, "retry_dlq", summary, counts).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error.message = %e, "queue attributes unreadable"),
    }
    loop {
        if ctx.clock.elapsed_since(started) >= budget {
            report.remaining = true;
            break;
        }
        let now = ctx.clock.now();
        let page = queries.list_due(now, PAGE).await?;
        let fresh: Vec<Message> = page.into_iter().filter(|m| seen.insert(m.id.clone())).collect();
        if fresh.is_empty() {
            break;
        }
        for m in fresh {
            report.items_read += 1;
            if ctx.clock.elapsed_since(started) >= budget {
                report.remaining = true;
                break;
            }
            if let Err(e) = process_one(ctx, &m, &mut report).await {
                tracing::warn!(message_id = %m.id, error.message = %e, error.cause_chain = ?e, "due item failed; stays due");
            }
        }
    }
    match retention.purge_expired(ctx.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(purged = n, "expired records removed"),
        Err(e) => tracing::warn!(error.message = %e, "expired records not purged"),
    }
    report.duration_ms = u64::try_from(ctx.clock.elapsed_since(started).as_millis()).unwrap_or(u64::MAX);
    record_heartbeat(ctx, &report).await?;
    if report.items_read > 0 {
        tracing::info!(?report, "processor tick");
    } else {
        tracing::debug!(?report, "processor tick: nothing due");
    }
    Ok(report)
}

async fn process_one(ctx: Ctx<'_>, m: &Message, report: &mut TickReport) -> Result<(), AppError> {
    match m.status {
        MessageStatus::Scheduled => match fire_scheduled(ctx, m).await? {
            Fired::Attempted(AttemptOutcome::Sent) => report.due_sent += 1,
            Fired::Attempted(AttemptOutcome::Retrying(_)) | Fired::Rescheduled => report.rescheduled += 1,
            _ => {}
        },
        MessageStatus::Queued => match claim_attempt(ctx, &m.id).await? {
            Claim::Claimed(claimed) => {
                let (_, outcome, _) = run_claimed(ctx, claimed).await?;
                match outcome {
                    AttemptOutcome::Sent => report.due_sent += 1,
                    AttemptOutcome::Retrying(_) => report.rescheduled += 1,
                    _ => {}
                }
            }
            // Busy: the sender's rate is booked; it stays queued and due for the next tick.
            Claim::Suppressed | Claim::Skipped | Claim::Busy => {}
        },
        MessageStatus::Sending => {
            if reconcile_message(ctx, m).await? != Reconciled::Deferred {
                report.reconciled += 1;
            }
        }
        MessageStatus::Sent => {
            poll_status(ctx, m).await?;
            report.polled += 1;
        }
        MessageStatus::Undelivered | MessageStatus::Failed
            if m.provider_sid.is_some() && m.error.as_ref().is_some_and(|e| delivery_error_is_retryable(e.code)) =>
        {
            // A retryable delivery failure whose fresh attempt was never queued (the callback or
            // poll that recorded it was cut short): queue it now, or fail it for good.
            requeue_or_fail(ctx, &m.id, m.status).await?;
        }
        _ => {
            // Nothing is expected of it any more: drop it from the due index.
            let id = m.id.clone();
            modify_message(ctx.messages, &id, |x| x.due_at.take().is_some()).await?;
        }
    }
    Ok(())
}

/// Ask the provider for the status of a `sent` message whose final status never came.
async fn poll_status(ctx: Ctx<'_>, m: &Message) -> Result<(), AppError> {
    let Some(sid) = m.provider_sid.clone() else {
        return Ok(());
    };
    let now = ctx.clock.now();
    let fetched = match ctx.provider.fetch(&sid).await {
        Ok(f) => Some(f),
        Err(ProviderError::NotFound) => None,
        Err(e) => {
            tracing::warn!(message_id = %m.id, error.message = %e, "status poll deferred");
            return Ok(());
        }
    };
    let poll_again = chrono::Duration::from_std(ctx.config.status_poll_after).unwrap_or_default() * 2;
    let sent_at = m
        .events
        .iter()
        .rev()
        .find(|e| e.status == MessageStatus::Sent)
        .map_or(m.updated_at, |e| e.at);
    let give_up = now - sent_at >= chrono::Duration::hours(GIVE_UP_POLLING_AFTER_HOURS);
    let mut gave_up = false;
    // The failed status to start a fresh attempt from: a retryable delivery failure just polled.
    let mut retry_from = None;
    modify_message(ctx.messages, &m.id, |x| {
        retry_from = None;
        if x.status != MessageStatus::Sent || x.provider_sid.as_ref() != Some(&sid) {
            return false;
        }
        if let Some(f) = &fetched {
            if let Some(next) = MessageStatus::from_twilio(&f.status) {
                if x.advance(next, f.error_code, now) {
                    if matches!(next, MessageStatus::Undelivered | MessageStatus::Failed)
                        && f.error_code.is_some_and(delivery_error_is_retryable)
                    {
                        retry_from = Some(next);
                    }
                    x.provider_status = Some(f.status.clone());
                    if let Some(code) = f.error_code {
                        x.error = Some(MessageError {
                            code,
                            message: f.error_message.clone().unwrap_or_default(),
                        });
                    }
                    x.failed_listed = next == MessageStatus::Failed;
                    // A retryable failure stays due until its fresh attempt is queued (below,
                    // or by the next tick if this one is cut short).
                    x.due_at = retry_from.map(|_| now);
                    return true;
                }
            }
        }
        if give_up {
            gave_up = x.advance(MessageStatus::Unknown, None, now);
            x.due_at = None;
        } else {
            x.due_at = Some(now + poll_again);
        }
        true
    })
    .await?;
    // A retryable delivery failure learned by the poll starts the fresh attempt a callback
    // reporting it would have (found by tests/sim: a message whose callbacks never reached us
    // was left undelivered with a retryable code and attempts left).
    if let Some(status) = retry_from {
        requeue_or_fail(ctx, &m.id, status).await?;
    }
    if gave_up {
        let mut counts = serde_json::Map::new();
        counts.insert(
            "hours_without_final_status".to_owned(),
            serde_json::json!(GIVE_UP_POLLING_AFTER_HOURS),
        );
        let summary = "Sent messages never got a final status from the provider (now `unknown`)".to_owned();
        raise_once(ctx, AlertKind::CallbacksMissing, "provider", summary, counts).await;
    }
    Ok(())
}
