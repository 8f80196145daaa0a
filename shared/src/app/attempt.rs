//! One provider attempt for a message, and what happens after it: the shared core of the first
//! send (API), queue retries, operator retries and the processor.
//!
//! Exactly one provider call per attempt: an attempt is *claimed* by a conditional write that
//! moves the message to `sending` (only one of several racing consumers wins it), and an attempt
//! whose outcome is unknown (timeout, 5xx, crash) stays `sending` until reconciliation has asked
//! the provider, never resent blindly.

use super::alerts::{publish, raise_once};
use super::batch_progress::{batch_item_failed, batch_item_finished};
use super::metrics::{count, with_increment, Metric};
use super::pacing::{Pacer, Slot, ATTEMPT_HORIZON};
use super::{modify_message, AppError, Ctx};
use crate::domain::retry_policy::{backoff, means_opted_out};
use crate::domain::{Message, MessageError, MessageId, MessageStatus, ProviderSid, RescheduleReason};
use crate::ports::{AlertKind, CounterOp, DomainEvent, ItemOutcome, Moment, SendCheck};
use crate::ports::{JobPayload, OutboundSms, ProviderAccepted, ProviderError, Sender, StoreError, MAX_DELAY};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What an attempt ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The provider accepted it.
    Sent,
    /// A permanent error, or the last attempt failed: listed for an operator.
    Failed,
    /// A temporary error; another attempt follows after this delay.
    Retrying(Duration),
    /// The provider may or may not have it: left `sending` for reconciliation.
    Unconfirmed,
    /// Recipient opted out: not sent.
    Suppressed,
    /// Nothing to do (not queued any more, or another consumer claimed it).
    Skipped,
}

/// What must happen after the record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    Enqueue(Duration),
    OptOut,
}

/// The StatusCallback URL for a message: our id rides in the query string, so the first callback
/// links the provider sid even if we never recorded it.
pub fn status_callback_url(base: &str, id: &MessageId) -> String {
    format!("{base}/webhooks/twilio/status?message_id={id}")
}

/// Start an attempt on `message`: count it, record `sending` with its start time and the
/// reconciliation deadline as its due time.
pub fn begin_attempt(message: &mut Message, now: DateTime<Utc>, reconcile_after: Duration) {
    message.attempts += 1;
    message.attempt_started_at = Some(now);
    if let Some(old) = message.provider_sid.take() {
        message.previous_sids.push(old);
    }
    message.due_at = Some(now + chrono::Duration::from_std(reconcile_after).unwrap_or(chrono::Duration::minutes(2)));
    if message.status.transition(MessageStatus::Sending).is_ok() {
        message.advance(MessageStatus::Sending, None, now);
    } else {
        message.reset_to(MessageStatus::Sending, now);
    }
}

/// Claim the next attempt of a `queued` message. Returns the claimed record (now `sending`), or
/// `None` when it is not queued any more or another consumer won the claim. An opted-out
/// recipient ends the message `suppressed` instead.
///
/// # Errors
/// Store failures.
pub async fn claim_attempt(ctx: Ctx<'_>, id: &MessageId) -> Result<Claim, StoreError> {
    claim(ctx, id, false).await
}

/// [`claim_attempt`] for a scheduled message whose send slot the caller has just taken.
///
/// # Errors
/// Store failures.
pub async fn claim_fired(ctx: Ctx<'_>, id: &MessageId) -> Result<Claim, StoreError> {
    claim(ctx, id, true).await
}

async fn claim(ctx: Ctx<'_>, id: &MessageId, slot_taken: bool) -> Result<Claim, StoreError> {
    let Some(current) = ctx.messages.get_message(id).await? else {
        return Ok(Claim::Skipped);
    };
    if current.status != MessageStatus::Queued {
        return Ok(Claim::Skipped);
    }
    let now = ctx.clock.now();
    // The message's own quiet hours hold every attempt, not only the first firing (a retry's
    // backoff, reconciliation or a fault after firing can bring it due inside the window).
    if let Some(next) = current.quiet_hours.as_ref().map(|q| q.next_allowed(now)) {
        if next > now {
            let version = current.version;
            modify_message(ctx.messages, id, |m| {
                if m.status != MessageStatus::Queued || m.version != version {
                    return false;
                }
                m.reschedule(next, RescheduleReason::QuietHours, now);
                true
            })
            .await?;
            tracing::info!(message_id = %id, until = %next, "attempt inside the message's quiet hours: moved");
            return Ok(Claim::Skipped);
        }
    }
    // The sender's next slot on its shared schedule, before anything is written: a claim is never
    // written for a send that has no slot (it would sit `sending` until reconciliation), nor an
    // hourly slot taken for an attempt deferred (a slot of the sender's rate may go unused; that
    // only sends slower).
    let Some(slot) = Pacer::new(ctx.config.sender_mps)
        .reserve(ctx, &current.from, ctx.clock.monotonic() + ATTEMPT_HORIZON)
        .await?
    else {
        tracing::debug!(message_id = %id, "sender's schedule is booked past the horizon; attempt deferred");
        return Ok(Claim::Busy);
    };
    // A message never attempted may never have had its send slot: a batch takes it per item
    // just before the item's first attempt, a scheduled message when it fires, and a fault or a
    // crash there leaves it queued. The hourly cap counts it now (at worst a second slot for one
    // message). An immediate send is stored only after its slot and with its first attempt; a
    // message once held `rate_limited` is back only by an operator's retry, which goes past the
    // cap (docs/api.md).
    let held_before = current.events.iter().any(|e| e.status == MessageStatus::RateLimited);
    let check = if current.attempts == 0 && !slot_taken && !held_before {
        let window = chrono::Duration::hours(1);
        ctx.consent
            .check_send(&current.to, now, window, ctx.config.rate_limit_per_hour)
            .await?
    } else {
        match ctx.consent.opt_out_of(&current.to).await? {
            Some(o) => SendCheck::OptedOut(o),
            None => SendCheck::Granted,
        }
    };
    if matches!(check, SendCheck::Limited) {
        let mut held = false;
        modify_message(ctx.messages, id, |m| {
            held = m.status == MessageStatus::Queued;
            if held {
                m.reset_to(MessageStatus::RateLimited, now);
                m.failed_listed = true;
                m.due_at = None;
            }
            held
        })
        .await?;
        if held {
            batch_item_finished(ctx, &current, ItemOutcome::RateLimited).await;
        }
        return Ok(Claim::Skipped);
    }
    if matches!(check, SendCheck::OptedOut(_)) {
        modify_message(ctx.messages, id, |m| {
            if m.status != MessageStatus::Queued {
                return false;
            }
            m.due_at = None;
            m.failed_listed = false;
            m.advance(MessageStatus::Suppressed, None, now)
        })
        .await?;
        batch_item_finished(ctx, &current, ItemOutcome::Suppressed).await;
        return Ok(Claim::Suppressed);
    }
    let mut won = false;
    let claimed = modify_message(ctx.messages, id, |m| {
        won = m.status == MessageStatus::Queued;
        if won {
            begin_attempt(m, now, ctx.config.reconcile_after);
        }
        won
    })
    .await?;
    Ok(match claimed {
        Some(m) if won => Claim::Claimed(Claimed {
            message: Box::new(m),
            slot,
        }),
        _ => Claim::Skipped,
    })
}

/// Result of [`claim_attempt`].
#[derive(Debug)]
pub enum Claim {
    /// This caller owns the attempt ([`run_claimed`] makes it).
    Claimed(Claimed),
    /// The recipient opted out; the message is now `suppressed`.
    Suppressed,
    /// The sender's schedule has no slot within [`ATTEMPT_HORIZON`]: nothing was written; try
    /// again later (the message is still `queued` and due).
    Busy,
    /// Nothing to do.
    Skipped,
}

/// A claimed attempt and its send slot on the sender's schedule.
#[derive(Debug)]
pub struct Claimed {
    /// The message, `sending`.
    pub message: Box<Message>,
    slot: Slot,
}

/// Make a claimed attempt: the provider call leaves at its slot (a fresh one if the claim write
/// made it late), so the retry consumer and the processor keep the sender's rate with batches.
///
/// # Errors
/// As [`run_attempt`], and store failures while taking a fresh slot.
pub async fn run_claimed(
    ctx: Ctx<'_>,
    claimed: Claimed,
) -> Result<(Message, AttemptOutcome, Option<String>), AppError> {
    let Claimed { message, slot } = claimed;
    let slot = Pacer::new(ctx.config.sender_mps)
        .on_time(ctx, &message.from, slot, slot.at + ATTEMPT_HORIZON)
        .await?;
    run_attempt_at(ctx, *message, Some(slot)).await
}

/// Make the provider call for a claimed message (status `sending`, version as stored) and record
/// its outcome. A failure to record after the provider answered is returned as a warning, not
/// an error: the message is not lost (the callback or reconciliation completes it) and must not be
/// resent.
///
/// # Errors
/// None in practice; the signature leaves room for future checks.
pub async fn run_attempt(
    ctx: Ctx<'_>,
    claimed: Message,
) -> Result<(Message, AttemptOutcome, Option<String>), AppError> {
    run_attempt_at(ctx, claimed, None).await
}

/// [`run_attempt`], but the provider call leaves no earlier than `send_at` (a batch's pacing
/// slot on `ctx.clock`'s monotonic time): waiting here, after the claim was written, keeps store
/// latency out of the spacing the provider sees.
///
/// # Errors
/// As [`run_attempt`].
pub async fn run_attempt_at(
    ctx: Ctx<'_>,
    claimed: Message,
    send_at: Option<Moment>,
) -> Result<(Message, AttemptOutcome, Option<String>), AppError> {
    let id = claimed.id.clone();
    let from = Sender::parse(&claimed.from).unwrap_or_else(|_| ctx.config.default_sender.clone());
    let sms = OutboundSms {
        to: claimed.to.clone(),
        from,
        body: claimed.body.clone(),
        status_callback: claimed
            .status_callback
            .clone()
            .unwrap_or_else(|| status_callback_url(ctx.callback_base, &id)),
    };
    if let Some(at) = send_at {
        ctx.clock.sleep_until(at).await;
    }
    let result = ctx.provider.send(&sms).await;
    let now = ctx.clock.now();
    let sid = result.as_ref().ok().map(|accepted| &accepted.sid);
    let unit: f64 = crate::domain::entropy::random();

    let mut fast = claimed.clone();
    let (mut outcome, mut after) = apply_result(&mut fast, &result, now, ctx, unit);
    fast.version = claimed.version + 1;
    // A 21610's opt-out is recorded before the outcome: when it cannot be, neither is the
    // outcome, and the attempt stays `sending` for reconciliation (nothing was sent; the next
    // attempt asks again). Recorded after it, a store fault or a crash in between left the
    // message `failed` with 21610 and the number never opted out (found by tests/sim).
    let opted_out = match after {
        After::OptOut => record_provider_opt_out(ctx, &claimed, now).await,
        After::Nothing | After::Enqueue(_) => Ok(()),
    };
    let opt_out_lost = opted_out.is_err();
    let written = match opted_out {
        Err(e) => Err(e),
        // The outcome and the sid's index in one store call when the provider took it.
        Ok(()) => match fast_write(ctx, &fast, sid).await {
            Ok(()) => Ok(Some(fast.clone())),
            // A status callback raced us (it can arrive before the create response): index the
            // sid on its own, then merge onto the newer record.
            Err(StoreError::ConditionFailed) => {
                if let Some(sid) = sid {
                    if let Err(e) = ctx.messages.link_provider_sid(sid, &id).await {
                        tracing::warn!(message_id = %id, error.message = %e, "could not index provider sid; the callback URL still carries the id");
                    }
                }
                modify_message(ctx.messages, &id, |m| {
                    if m.attempts != claimed.attempts {
                        return false; // a later attempt owns the record now
                    }
                    let before = m.clone();
                    (outcome, after) = apply_result(m, &result, now, ctx, unit);
                    *m != before
                })
                .await
            }
            Err(e) => Err(e),
        },
    };
    let stored = match written {
        Ok(Some(m)) => m,
        Ok(None) | Err(_) => {
            tracing::error!(message_id = %id, "provider answered but the outcome could not be recorded; left for the callback / reconciliation");
            let warning = if opt_out_lost {
                "the provider refused the recipient as opted out (21610) and the opt-out is not recorded yet; the attempt is reconciled and asked again".to_owned()
            } else {
                "the provider answered but the outcome is not recorded yet; it will not be resent".to_owned()
            };
            return Ok((fast, outcome, Some(warning)));
        }
    };
    match after {
        After::Nothing => {}
        After::Enqueue(delay) => enqueue_attempt(ctx, &id, now, delay).await,
        // Recorded before the outcome was written.
        After::OptOut => {}
    }
    log_outcome(&stored, outcome);
    let sender_side = result.as_ref().err().is_some_and(ProviderError::is_sender_side);
    after_outcome(ctx, &stored, outcome, sender_side).await;
    Ok((stored, outcome, None))
}

/// Write an attempt's outcome, with its sid's index when the provider gave one (one store call).
async fn fast_write(ctx: Ctx<'_>, fast: &Message, sid: Option<&ProviderSid>) -> Result<(), StoreError> {
    match sid {
        Some(sid) => ctx.messages.update_message_and_link(fast, sid).await,
        None => ctx.messages.update_message(fast).await,
    }
}

/// Record the opt-out a 21610 refusal of `claimed` means, with the refusal as its evidence.
async fn record_provider_opt_out(ctx: Ctx<'_>, claimed: &Message, now: DateTime<Utc>) -> Result<(), StoreError> {
    let evidence = crate::domain::ConsentEvidence {
        status: crate::domain::ConsentStatus::OptedOut,
        at: now,
        keyword: None,
        channel: crate::domain::ConsentChannel::ProviderError,
        // Twilio's 400 carries no sid; the refused message is ours.
        message_sid: claimed.provider_sid.as_ref().map(|s| s.as_str().to_owned()),
    };
    super::consent::record_consent(ctx.consent, &claimed.to, &evidence)
        .await
        .map(|_| ())
        .inspect_err(|e| tracing::error!(message_id = %claimed.id, error.message = %e, "could not record provider opt-out; the attempt is left for reconciliation"))
}

/// Consecutive failed attempts for one sender that raise an alert.
pub const CONSECUTIVE_FAILURES_ALERT: i64 = 5;

/// Metrics, domain events and alerts that follow an attempt (never fail the attempt). The
/// attempt's counters are one store write: the metric, and the sender's failure streak — reset
/// by a success (one write, never a read-then-subtract, so never negative), counted up only by
/// a sender- or system-side failure (`ProviderError::is_sender_side`; an invalid or opted-out
/// recipient is not the sender's fault).
async fn after_outcome(ctx: Ctx<'_>, m: &Message, outcome: AttemptOutcome, sender_side: bool) {
    count_in_batch(ctx, m, outcome).await;
    let streak_key = format!("consecutive_failures\u{1f}{}", m.from);
    let now = ctx.clock.now();
    match outcome {
        AttemptOutcome::Sent => {
            let ops = with_increment(ctx, Metric::Sent, now, vec![CounterOp::Reset { key: streak_key }]);
            if let Err(e) = ctx.counters.add_many(&ops, now).await {
                tracing::warn!(error.message = %e, "sent metric and failure streak not updated");
            }
            publish(ctx, vec![message_event("message.sent", m, now)]).await;
        }
        AttemptOutcome::Failed | AttemptOutcome::Retrying(_) | AttemptOutcome::Unconfirmed => {
            let streak = sender_side.then_some(CounterOp::Add {
                key: streak_key,
                by: 1,
                expires_at: None,
            });
            let ops = with_increment(ctx, Metric::AttemptFailed, now, streak.into_iter().collect());
            // The streak's new value is the last one written (the metric may be buffered).
            let streak_at = ops.len().checked_sub(1).filter(|_| sender_side);
            let counted = if ops.is_empty() {
                Ok(Vec::new())
            } else {
                ctx.counters.add_many(&ops, now).await
            };
            if outcome == AttemptOutcome::Failed {
                message_failed(ctx, m).await;
            }
            match counted {
                Ok(values) => {
                    if let Some(&streak) = streak_at
                        .and_then(|i| values.get(i))
                        .filter(|s| **s >= CONSECUTIVE_FAILURES_ALERT)
                    {
                        let mut counts = serde_json::Map::new();
                        counts.insert("consecutive_failures".to_owned(), serde_json::json!(streak));
                        let summary = format!("{streak} sends in a row failed for one sender");
                        raise_once(ctx, AlertKind::ConsecutiveSendFailures, &m.from, summary, counts).await;
                    }
                }
                Err(e) => tracing::debug!(error.message = %e, "attempt metric and failure streak not counted"),
            }
        }
        AttemptOutcome::Suppressed | AttemptOutcome::Skipped => {}
    }
}

/// Count an attempt's ending in the message's batch, if it has one and the ending is final
/// (a failure is counted by [`message_failed`], with its error code).
async fn count_in_batch(ctx: Ctx<'_>, m: &Message, outcome: AttemptOutcome) {
    let end = match outcome {
        AttemptOutcome::Sent => ItemOutcome::Sent,
        AttemptOutcome::Suppressed => ItemOutcome::Suppressed,
        AttemptOutcome::Failed
        | AttemptOutcome::Retrying(_)
        | AttemptOutcome::Unconfirmed
        | AttemptOutcome::Skipped => return,
    };
    batch_item_finished(ctx, m, end).await;
}

/// A message ended `failed` (a permanent provider error, or its last attempt failed) and is
/// listed for an operator: count it, publish it, and raise `messages_failed` once per cooldown
/// (not once per message). Nothing was dead-lettered, and the alert says so. A batch item raises
/// no alert of its own: its batch's failure-rate alert is the one page for it, with the
/// breakdown by error code (`batch_progress`).
pub(crate) async fn message_failed(ctx: Ctx<'_>, m: &Message) {
    batch_item_failed(ctx, m).await;
    count(ctx, Metric::Failed).await;
    publish(ctx, vec![message_event("message.failed", m, ctx.clock.now())]).await;
    if m.batch_id.is_some() {
        return;
    }
    let mut counts = serde_json::Map::new();
    counts.insert("attempts".to_owned(), serde_json::json!(m.attempts));
    let mut summary = "Messages ended failed and wait in the failed list".to_owned();
    if let Some(e) = &m.error {
        counts.insert("last_error_code".to_owned(), serde_json::json!(e.code));
        let attempts = if m.attempts == 1 { "attempt" } else { "attempts" };
        summary = format!("{summary} (latest: error {} after {} {attempts})", e.code, m.attempts);
    }
    raise_once(ctx, AlertKind::MessagesFailed, "failed_messages", summary, counts).await;
}

/// A domain event about a message: ids, status and codes only (no number, no body).
pub fn message_event(detail_type: &str, m: &Message, at: DateTime<Utc>) -> DomainEvent {
    DomainEvent {
        detail_type: detail_type.to_owned(),
        detail: serde_json::json!({
            "message_id": m.id.as_str(),
            "status": m.status.as_str(),
            "provider_sid": m.provider_sid.as_ref().map(|s| s.as_str()),
            "attempts": m.attempts,
            "error_code": m.error.as_ref().map(|e| e.code),
            "ref": m.reference,
        }),
        at,
    }
}

/// Put the next attempt of `id` on the retry queue. A failure is logged only: the message is
/// `queued` with `due_at` set, so the processor's due sweep sends it anyway.
pub async fn enqueue_attempt(ctx: Ctx<'_>, id: &MessageId, now: DateTime<Utc>, delay: Duration) {
    let payload = JobPayload::send_attempt(id.clone(), now + chrono::Duration::from_std(delay).unwrap_or_default());
    if let Err(e) = ctx.queue.enqueue(&payload, delay.min(MAX_DELAY)).await {
        tracing::warn!(message_id = %id, error.message = %e, error.cause_chain = ?e, "could not enqueue retry; the due sweep will pick it up");
    }
}

fn log_outcome(m: &Message, outcome: AttemptOutcome) {
    tracing::info!(message_id = %m.id, to = %m.to.masked(), attempt = m.attempts, ?outcome, status = %m.status, "attempt recorded");
}

/// Record the provider's answer on `message` and decide what follows.
fn apply_result(
    message: &mut Message,
    result: &Result<ProviderAccepted, ProviderError>,
    now: DateTime<Utc>,
    ctx: Ctx<'_>,
    unit: f64,
) -> (AttemptOutcome, After) {
    match result {
        Ok(accepted) => {
            if message.provider_sid.is_none() {
                message.provider_sid = Some(accepted.sid.clone());
            }
            if message.provider_status.is_none() {
                message.provider_status = Some(accepted.status.clone());
            }
            if let Some(n) = accepted.segments {
                message.segments = n;
            }
            message.error = None;
            if message.advance(MessageStatus::Sent, None, now) {
                message.due_at =
                    Some(now + chrono::Duration::from_std(ctx.config.status_poll_after).unwrap_or_default());
            }
            (AttemptOutcome::Sent, After::Nothing)
        }
        Err(ProviderError::Rejected { code, message: text }) => {
            message.error = Some(MessageError {
                code: *code,
                message: text.clone(),
            });
            if message.advance(MessageStatus::Failed, Some(*code), now) {
                message.failed_listed = true;
                message.due_at = None;
            }
            let after = if means_opted_out(*code) {
                After::OptOut
            } else {
                After::Nothing
            };
            (AttemptOutcome::Failed, after)
        }
        Err(
            e @ ProviderError::Transient {
                maybe_sent: true, code, ..
            },
        ) => {
            // The provider may have it: stay `sending` until reconciliation asked (due_at is the deadline).
            message.error = Some(MessageError {
                code: code.unwrap_or(0),
                message: e.to_string(),
            });
            (AttemptOutcome::Unconfirmed, After::Nothing)
        }
        Err(e) => {
            let code = match e {
                ProviderError::Transient { code, .. } => code.unwrap_or(0),
                ProviderError::RateLimited { .. } => 20429,
                _ => 0,
            };
            message.error = Some(MessageError {
                code,
                message: e.to_string(),
            });
            retry_or_fail(message, now, ctx, unit)
        }
    }
}

/// After a failed attempt: queue another if attempts remain, else fail and list it.
fn retry_or_fail(message: &mut Message, now: DateTime<Utc>, ctx: Ctx<'_>, unit: f64) -> (AttemptOutcome, After) {
    if let Some(old) = message.provider_sid.take() {
        message.previous_sids.push(old); // its late callbacks must not move the next attempt
    }
    if message.attempts < ctx.config.max_attempts {
        let delay = backoff(message.attempts, ctx.config.retry_base, ctx.config.retry_cap, unit);
        message.reset_to(MessageStatus::Queued, now);
        message.due_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
        (AttemptOutcome::Retrying(delay), After::Enqueue(delay))
    } else {
        message.reset_to(MessageStatus::Failed, now);
        message.failed_listed = true;
        message.due_at = None;
        (AttemptOutcome::Failed, After::Nothing)
    }
}

/// Decide after a failed attempt outside `run_attempt` (reconciliation found nothing, a
/// retryable delivery failure was reported) and enqueue if needed. Returns the outcome.
pub(crate) async fn requeue_or_fail(
    ctx: Ctx<'_>,
    id: &MessageId,
    expect: MessageStatus,
) -> Result<Option<AttemptOutcome>, StoreError> {
    let now = ctx.clock.now();
    let unit: f64 = crate::domain::entropy::random();
    let mut decided = None;
    let stored = modify_message(ctx.messages, id, |m| {
        if m.status != expect {
            decided = None;
            return false;
        }
        let (o, a) = retry_or_fail(m, now, ctx, unit);
        decided = Some((o, a));
        true
    })
    .await?;
    if let Some((outcome, After::Enqueue(delay))) = decided {
        enqueue_attempt(ctx, id, now, delay).await;
        return Ok(Some(outcome));
    }
    if let (Some((AttemptOutcome::Failed, _)), Some(m)) = (decided, stored) {
        message_failed(ctx, &m).await;
    }
    Ok(decided.map(|(o, _)| o))
}
