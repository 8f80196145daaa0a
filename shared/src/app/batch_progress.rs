//! A batch's progress: items counted once as they finish (from the batch call, the retry consumer
//! or the processor), the summary of `GET /v1/batches/{id}`, and completion exactly once with
//! `batch.completed` and the failure-rate alert. Shared by `send_batch` and `attempt`, so neither
//! imports the other.

use super::alerts::{publish, raise_once};
use super::{AppError, Ctx};
use crate::domain::{timestamp, Message};
use crate::ports::{AlertKind, BatchState, DomainEvent, ItemOutcome};
use serde_json::{json, Map, Value};

/// Batches whose failure rate is above this raise an alert.
pub const BATCH_ALERT_RATE: f64 = 0.5;
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
    let rate = summary["failure_rate"].as_f64().unwrap_or(0.0);
    if rate > BATCH_ALERT_RATE {
        let mut counts = Map::new();
        for k in ["total", "sent", "failed", "rejected", "failure_rate"] {
            counts.insert(k.to_owned(), summary[k].clone());
        }
        let pct = (rate * 100.0).round();
        let summary_text = format!("Batch {batch} completed with {pct}% of its messages failed");
        if raise_once(ctx, AlertKind::BatchFailureRate, batch, summary_text, counts).await {
            if let Err(e) = ctx.batches.mark_alerted(batch).await {
                tracing::warn!(batch, error.message = %e, "batch alert marker not stored");
            }
        }
    }
}
