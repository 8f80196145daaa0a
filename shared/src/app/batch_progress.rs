//! A batch's progress: items counted once as they finish (from the batch call, the retry consumer
//! or the processor), the summary of `GET /v1/batches/{id}`, and completion exactly once with
//! `batch.completed` and the failure-rate alert. Shared by `send_batch` and `attempt`, so neither
//! imports the other.
//!
//! The alert is the batch's one page (issue 9 item 5): its rate counts only items that were
//! accepted (sent to, or held), so input rejected at validation never pages; it carries the
//! failures by error code; and the items' own failures raise no alert of their own
//! (`attempt::message_failed`).

use super::alerts::{publish, raise_once};
use super::{AppError, Ctx};
use crate::domain::{timestamp, Message};
use crate::ports::{AlertKind, BatchState, DomainEvent, ItemOutcome};
use serde_json::{json, Map, Value};

/// Batches with more than this share of their accepted items failed raise an alert.
pub const BATCH_ALERT_RATE: f64 = 0.5;
/// Most distinct error codes a batch's alert lists (Twilio answers a batch with a handful).
const MAX_BREAKDOWN_CODES: i64 = 20;
/// How long batch records are kept.
pub(crate) const BATCH_TTL_DAYS: i64 = 30;

/// Called when an item of a batch reaches its outcome (from the batch call, the retry consumer
/// or the processor): counted once per message by the store, then completion is checked.
pub(crate) async fn batch_item_finished(ctx: Ctx<'_>, m: &Message, outcome: ItemOutcome) {
    let Some(batch) = &m.batch_id else { return };
    // One write counts the item (once) and returns the tallies: only the item that finishes the
    // batch goes on to completion.
    match ctx.batches.record_item(batch, &m.id, outcome, ctx.clock.now()).await {
        Ok(Some(state)) if state.is_complete() => complete(ctx, &state).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(batch = %batch, error.message = %e, "batch item not counted"),
    }
}

/// An item of a batch ended `failed`: its error code is counted on the batch first (so the batch's
/// alert, taken by whichever item finishes the batch, sees every code), then the item.
pub(crate) async fn batch_item_failed(ctx: Ctx<'_>, m: &Message) {
    let Some(batch) = &m.batch_id else { return };
    record_failure_code(ctx, batch, m.error.as_ref().map_or(0, |e| e.code)).await;
    batch_item_finished(ctx, m, ItemOutcome::Failed).await;
}

/// Counter of one error code's failures in a batch.
fn code_key(batch: &str, code: u64) -> String {
    format!("batch_failed\u{1f}{batch}\u{1f}{code}")
}
/// Counter of the distinct codes seen in a batch (the slots below are numbered by it).
fn codes_key(batch: &str) -> String {
    format!("batch_failed_codes\u{1f}{batch}")
}
/// Document naming the code of slot `n`.
fn code_slot_key(batch: &str, n: i64) -> String {
    format!("batch_failed_code\u{1f}{batch}\u{1f}{n}")
}

/// Count one failure with `code` in `batch`. The first failure of a code (its counter reads 1:
/// atomic, so exactly one caller) takes the next slot and names the code there; the breakdown is
/// read back slot by slot, never by a scan. Best effort: a store failure costs the breakdown an
/// entry, never the item's count.
async fn record_failure_code(ctx: Ctx<'_>, batch: &str, code: u32) {
    let now = ctx.clock.now();
    let expires = Some(now + chrono::Duration::days(BATCH_TTL_DAYS));
    let registered = async {
        if ctx
            .counters
            .add(&code_key(batch, u64::from(code)), 1, expires, now)
            .await?
            != 1
        {
            return Ok(());
        }
        let slot = ctx.counters.add(&codes_key(batch), 1, expires, now).await?;
        ctx.counters
            .put_doc(&code_slot_key(batch, slot), &json!({ "code": code }), expires)
            .await
    };
    if let Err(e) = registered.await {
        tracing::warn!(batch, code, error.message = %e, "batch failure code not counted");
    }
}

/// The failures of `batch` by error code: `{"21211": 6, "30007": 1}`.
async fn failure_breakdown(ctx: Ctx<'_>, batch: &str) -> Map<String, Value> {
    let now = ctx.clock.now();
    let slots = match ctx.counters.values(&[codes_key(batch)], now).await {
        Ok(v) => v.first().copied().unwrap_or(0).min(MAX_BREAKDOWN_CODES),
        Err(e) => {
            tracing::warn!(batch, error.message = %e, "batch failure breakdown not read");
            0
        }
    };
    let mut codes = Vec::new();
    for slot in 1..=slots {
        if let Ok(Some(doc)) = ctx.counters.get_doc(&code_slot_key(batch, slot), now).await {
            codes.extend(doc["code"].as_u64());
        }
    }
    let keys: Vec<String> = codes.iter().map(|c| code_key(batch, *c)).collect();
    let counts = ctx.counters.values(&keys, now).await.unwrap_or_default();
    codes
        .iter()
        .zip(counts)
        .map(|(code, n)| (code.to_string(), json!(n)))
        .collect()
}

/// The summary of a batch (docs/api.md `GET /v1/batches/{id}`).
fn summary(state: &BatchState) -> Value {
    let (r, p) = (&state.record, &state.progress);
    let (total, rejected) = (i64::from(r.total), i64::from(r.rejected));
    let queued = (total - i64::from(p.finished)).max(0);
    #[allow(clippy::cast_precision_loss)]
    let failure_rate = if total > 0 {
        (i64::from(p.failed) + rejected) as f64 / total as f64
    } else {
        0.0
    };
    json!({
        "batch_id": r.id, "total": total, "sent": p.sent, "queued": queued, "failed": p.failed, "rejected": rejected,
        "suppressed": p.suppressed, "rate_limited": p.rate_limited,
        "state": if state.is_complete() { "completed" } else { "in_progress" },
        "failure_rate": (failure_rate * 1000.0).round() / 1000.0,
        "alerted": state.alerted,
        "created_at": timestamp(&r.created_at),
    })
}

/// Counts of a batch, or `None` if unknown.
///
/// # Errors
/// Store failures.
pub async fn batch_summary(ctx: Ctx<'_>, batch: &str) -> Result<Option<Value>, AppError> {
    Ok(ctx
        .batches
        .get_batch(batch, ctx.clock.now())
        .await?
        .as_ref()
        .map(summary))
}

/// Read the batch and complete it if every item finished.
pub(crate) async fn check_completion(ctx: Ctx<'_>, batch: &str) {
    match ctx.batches.get_batch(batch, ctx.clock.now()).await {
        Ok(Some(state)) if state.is_complete() => complete(ctx, &state).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(batch, error.message = %e, "batch completion not checked"),
    }
}

/// A batch whose items all finished: publish `batch.completed` and alert on a high failure rate,
/// exactly once (the first caller takes the completion in the store).
async fn complete(ctx: Ctx<'_>, state: &BatchState) {
    let batch = state.record.id.as_str();
    match ctx.batches.claim_completion(batch).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(batch, error.message = %e, "batch completion not claimed");
            return;
        }
    }
    let now = ctx.clock.now();
    let summary = summary(state);
    publish(
        ctx,
        vec![DomainEvent {
            detail_type: "batch.completed".into(),
            detail: summary.clone(),
            at: now,
        }],
    )
    .await;
    // The page counts what was sent: failed of the accepted items. Rejected input never
    // reached the provider (the caller has it in the batch's answer), so a batch of only
    // rejected items raises nothing.
    let (accepted, failed) = (state.record.accepted, state.progress.failed);
    if accepted == 0 {
        return;
    }
    let rate = f64::from(failed) / f64::from(accepted);
    if rate > BATCH_ALERT_RATE {
        let by_code = failure_breakdown(ctx, batch).await;
        let mut counts = Map::new();
        for k in ["total", "sent", "failed", "rejected", "failure_rate"] {
            counts.insert(k.to_owned(), summary[k].clone());
        }
        counts.insert("accepted".to_owned(), json!(accepted));
        counts.insert("send_failure_rate".to_owned(), json!((rate * 1000.0).round() / 1000.0));
        let codes = by_code
            .iter()
            .map(|(code, n)| format!("{code} × {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        counts.insert("failed_by_code".to_owned(), Value::Object(by_code));
        let pct = (rate * 100.0).round();
        let mut summary_text = format!("Batch {batch}: {failed} of its {accepted} accepted messages failed ({pct}%)");
        if !codes.is_empty() {
            summary_text.push_str(&format!("; by error code: {codes}"));
        }
        if state.record.rejected > 0 {
            summary_text.push_str(&format!(
                "; {} more were rejected before sending",
                state.record.rejected
            ));
        }
        if raise_once(ctx, AlertKind::BatchFailureRate, batch, summary_text, counts).await {
            if let Err(e) = ctx.batches.mark_alerted(batch).await {
                tracing::warn!(batch, error.message = %e, "batch alert marker not stored");
            }
        }
    }
}
