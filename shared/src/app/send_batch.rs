//! `POST /v1/batches` and `GET /v1/batches/{id}`: up to 1,000 messages in one call, a result
//! per item, bounded concurrency under the sender's messages-per-second limit, a time budget
//! (what does not start in time is `queued` and finishes through the retry queue). The batch's
//! tallies, completion and failure-rate alert live in `batch_progress`, which the attempts of
//! items finished later share.

use super::attempt::{begin_attempt, enqueue_attempt, run_attempt_at, status_callback_url};
use super::batch_progress::{batch_item_finished, check_completion, BATCH_TTL_DAYS};
pub use super::batch_progress::{batch_summary, BATCH_ALERT_RATE};
use super::metrics::MetricBuffer;
use super::pacing::Pacer;
use super::send::SendRequest;
use super::{AppError, Ctx};
use crate::domain::{Message, MessageId, MessageStatus};
use crate::ports::{BatchRecord, ItemOutcome, Moment, SendCheck, Sender};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The `error.code` of a result whose provider attempt failed (the provider's number is `provider_code`).
pub const PROVIDER_ERROR_CODE: &str = "provider_error";
/// Most messages in one batch (more → 413).
pub const MAX_BATCH: usize = 1000;
/// Items in flight at once within one batch. The pacer, not this, sets the rate; this only has to
/// cover an item's whole time (store calls, its slot, the provider, the tally) at the sender's MPS,
/// so one batch alone can fill the schedule while another writes its records: at 16, two batches on
/// DynamoDB Local ramped up over seconds and reached 88 of 100 messages/s, at 48 they reached 93
/// (tests/benches/batch.rs).
const CONCURRENCY: usize = 48;

/// The body of `POST /v1/batches`.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    /// The messages.
    pub messages: Option<Vec<Value>>,
    /// Sender for every message that names none.
    pub from: Option<String>,
}

/// A new batch id: `bat_` + ULID.
fn batch_id(now: DateTime<Utc>) -> String {
    let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    format!(
        "bat_{}",
        ulid::Ulid::from_parts(ms, crate::domain::entropy::random::<u128>())
    )
}

/// Accept a batch. Returns the response body (docs/api.md). `budget` and the pacing run on
/// `ctx.clock`'s monotonic time, so tests drive both with the manual clock.
///
/// # Errors
/// `PayloadTooLarge` over 1,000 messages; `Validation` when `messages` is missing; store failures
/// before anything was accepted.
pub async fn send_batch(ctx: Ctx<'_>, req: BatchRequest, budget: Duration) -> Result<Value, AppError> {
    let started = ctx.clock.monotonic();
    let deadline = started + budget;
    let items = req
        .messages
        .ok_or_else(|| AppError::invalid("missing_field", "messages", "`messages` is required"))?;
    if items.len() > MAX_BATCH {
        return Err(AppError::PayloadTooLarge(format!(
            "a batch holds at most {MAX_BATCH} messages"
        )));
    }
    if items.is_empty() {
        return Err(AppError::invalid(
            "invalid_batch",
            "messages",
            "`messages` must not be empty",
        ));
    }
    let default_sender = match &req.from {
        Some(f) => Sender::parse(f)
            .map_err(|e| AppError::invalid("invalid_phone", "from", format!("`from` is not a valid sender: {e}")))?,
        None => ctx.config.default_sender.clone(),
    };
    let now = ctx.clock.now();
    let id = batch_id(now);
    let mut results: Vec<Value> = vec![Value::Null; items.len()];
    let mut accepted: Vec<(usize, Message)> = Vec::new();
    for (index, raw) in items.into_iter().enumerate() {
        let parsed = serde_json::from_value::<SendRequest>(raw).map_err(|_| AppError::Validation {
            code: "invalid_json",
            message: "item does not match the message shape".to_owned(),
            field: None,
        });
        match parsed.and_then(|r| r.validate(ctx.config.default_region, &default_sender, now)) {
            Ok(cmd) => {
                let mid = MessageId::generate(now);
                let mut m = Message::new(
                    mid.clone(),
                    cmd.to,
                    cmd.from.as_str().to_owned(),
                    cmd.body,
                    MessageStatus::Queued,
                    cmd.reference,
                    cmd.metadata,
                    now,
                );
                m.status_callback = Some(status_callback_url(ctx.callback_base, &mid));
                m.batch_id = Some(id.clone());
                m.due_at = Some(now + chrono::Duration::minutes(1)); // safety net if the process dies mid-batch
                accepted.push((index, m));
            }
            Err(AppError::Validation { code, message, field }) => {
                let mut err = json!({"code": code, "message": message});
                if let (Some(f), Some(o)) = (field, err.as_object_mut()) {
                    o.insert("field".into(), json!(f));
                }
                results[index] = json!({"index": index, "status": "rejected", "error": err});
            }
            Err(other) => return Err(other),
        }
    }
    let total = results.len();
    let rejected = total - accepted.len();
    let count32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    // The record first: an item that finishes (here, or later through the queue) counts on it.
    ctx.batches
        .create_batch(&BatchRecord {
            id: id.clone(),
            total: count32(total),
            accepted: count32(accepted.len()),
            rejected: count32(rejected),
            created_at: now,
            expires_at: now + chrono::Duration::days(BATCH_TTL_DAYS),
        })
        .await?;
    // Records in bulk, before any send (a send never happens without its record).
    let created = ctx
        .messages
        .create_messages(&accepted.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>())
        .await?;
    let mut to_send = Vec::new();
    for ((index, m), r) in accepted.into_iter().zip(created) {
        match r {
            Ok(()) => to_send.push((index, m)),
            Err(e) => {
                tracing::warn!(error.message = %e, "batch item record not written");
                results[index] = json!({"index": index, "status": "rejected", "error": {"code": "temporarily_unavailable", "message": "the record could not be written; nothing was sent"}});
            }
        }
    }
    let pacer = Pacer::new(ctx.config.sender_mps);
    // The items' metric increments (sent, attempt failed) are written once, after the last
    // item, instead of once each: the hourly metric is one item every send would write (a hot
    // key on DynamoDB). A process with its own buffer (smsrelay-local) keeps using it.
    let call_metrics = MetricBuffer::default();
    let ctx = Ctx {
        metrics: ctx.metrics.or(Some(&call_metrics)),
        ..ctx
    };
    let outcomes: Vec<(usize, Value)> = stream::iter(to_send)
        .map(|(index, m)| {
            let pacer = &pacer;
            async move { (index, send_item(ctx, m, pacer, deadline).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    if let Err(e) = call_metrics.flush(ctx.counters, ctx.clock.now()).await {
        tracing::warn!(batch = %id, error.message = %e, "batch metrics not counted");
    }
    for (index, mut v) in outcomes {
        if let Some(o) = v.as_object_mut() {
            o.insert("index".into(), json!(index));
        }
        results[index] = v;
    }
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    let (sent, queued, failed) = (count("sent"), count("queued") + count("sending"), count("failed"));
    // Validation rejects were counted as finished at creation; items whose record could not be
    // written finish now.
    let unwritten = count("rejected") - rejected;
    let rejected = count("rejected");
    if unwritten > 0 {
        if let Err(e) = ctx.batches.add_finished(&id, count32(unwritten)).await {
            tracing::warn!(batch = %id, error.message = %e, "batch counter not updated");
        }
    }
    check_completion(ctx, &id).await;
    Ok(json!({
        "batch_id": id, "total": total, "sent": sent, "queued": queued, "failed": failed, "rejected": rejected,
        "suppressed": count("suppressed"), "rate_limited": count("rate_limited"),
        "duration_ms": u64::try_from(ctx.clock.elapsed_since(started).as_millis()).unwrap_or(u64::MAX),
        "results": results,
    }))
}

async fn send_item(ctx: Ctx<'_>, mut m: Message, pacer: &Pacer, deadline: Moment) -> Value {
    let index_view = |m: &Message, warning: Option<String>| {
        let mut v = json!({"message_id": m.id.as_str(), "status": m.status.as_str()});
        if let Some(o) = v.as_object_mut() {
            if let Some(sid) = &m.provider_sid {
                o.insert("provider_sid".into(), json!(sid.as_str()));
            }
            if let Some(e) = &m.error {
                // `code` is a string in every result (as for rejected items); Twilio's number
                // goes in `provider_code`.
                o.insert(
                    "error".into(),
                    json!({"code": PROVIDER_ERROR_CODE, "provider_code": e.code, "message": e.message}),
                );
            }
            if let Some(w) = warning {
                o.insert("warning".into(), json!(w));
            }
        }
        v
    };
    let now = ctx.clock.now();
    let outcome: Result<(Message, Option<String>), AppError> = async {
        let limit = ctx.config.rate_limit_per_hour;
        let held = match ctx
            .consent
            .check_send(&m.to, now, chrono::Duration::hours(1), limit)
            .await?
        {
            SendCheck::Granted => None,
            SendCheck::OptedOut(_) => Some(MessageStatus::Suppressed),
            SendCheck::Limited => Some(MessageStatus::RateLimited),
        };
        if let Some(status) = held {
            return finish_without_send(ctx, &m, status).await.map(|m| (m, None));
        }
        let Some(slot) = pacer.reserve(ctx, &m.from, deadline).await? else {
            // Out of time: the retry queue finishes it.
            enqueue_attempt(ctx, &m.id, ctx.clock.now(), Duration::ZERO).await;
            return Ok((m.clone(), None));
        };
        let started = ctx.clock.now();
        let mut claimed = m.clone();
        begin_attempt(&mut claimed, started, ctx.config.reconcile_after);
        claimed.version = m.version + 1;
        ctx.messages.update_message(&claimed).await?;
        let slot = pacer.on_time(ctx, &m.from, slot, deadline).await?;
        let (stored, _outcome, warning) = run_attempt_at(ctx, claimed, Some(slot)).await?;
        Ok((stored, warning))
    }
    .await;
    match outcome {
        Ok((stored, warning)) => {
            m = stored;
            index_view(&m, warning)
        }
        Err(e) => {
            // The record exists as `queued` with a due time: the processor sends it later.
            tracing::warn!(message_id = %m.id, error.message = %e, "batch item left queued");
            enqueue_attempt(ctx, &m.id, ctx.clock.now(), Duration::ZERO).await;
            index_view(&m, None)
        }
    }
}

async fn finish_without_send(ctx: Ctx<'_>, m: &Message, status: MessageStatus) -> Result<Message, AppError> {
    let now = ctx.clock.now();
    let mut next = m.clone();
    next.reset_to(status, now);
    next.due_at = None;
    next.failed_listed = status == MessageStatus::RateLimited;
    next.version = m.version + 1;
    ctx.messages.update_message(&next).await?;
    batch_item_finished(
        ctx,
        &next,
        if status == MessageStatus::Suppressed {
            ItemOutcome::Suppressed
        } else {
            ItemOutcome::RateLimited
        },
    )
    .await;
    Ok(next)
}
