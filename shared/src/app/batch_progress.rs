//! A batch's progress as its items finish: per-outcome tallies kept as atomic counters, each
//! item counted once (a store claim), completion detected exactly once, and one alert when the
//! failure rate is above the threshold. Shared by `send_batch` (the batch call) and `attempt`
//! (items finished later by the retry queue or the processor), so neither imports the other.

use super::alerts::{publish, raise_once};
use super::{AppError, Ctx};
use crate::domain::{timestamp, Message};
use crate::ports::{AlertKind, DomainEvent};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Batches whose failure rate is above this raise an alert.
pub const BATCH_ALERT_RATE: f64 = 0.5;
/// How long batch documents and counters are kept.
pub(crate) const BATCH_TTL_DAYS: i64 = 30;

/// How a batch item ended, as its batch counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemEnd {
    /// Accepted by the provider.
    Sent,
    /// Ended failed.
    Failed,
    /// Not sent: the recipient opted out.
    Suppressed,
    /// Held: the recipient's hourly limit.
    RateLimited,
}

/// Per-item outcome counters of a batch, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    Sent,
    Failed,
    Suppressed,
    RateLimited,
    Finished,
    /// Items in the batch (set once at creation), so an item can tell it was the last.
    Total,
}

impl Tally {
    fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
            Self::RateLimited => "rate_limited",
            Self::Finished => "finished",
            Self::Total => "total",
        }
    }
}

pub(crate) fn counter_key(batch: &str, t: Tally) -> String {
    format!("batch\u{1f}{batch}\u{1f}{}", t.name())
}

pub(crate) fn doc_key(batch: &str) -> String {
    format!("batch\u{1f}{batch}")
}

/// Add to a batch tally; the new value, or `None` if the counter could not be updated (logged).
pub(crate) async fn add_tally(ctx: Ctx<'_>, batch: &str, t: Tally, by: i64) -> Option<i64> {
    let expires = ctx.clock.now() + chrono::Duration::days(BATCH_TTL_DAYS);
    match ctx.store.add(&counter_key(batch, t), by, Some(expires)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(batch, error.message = %e, "batch counter not updated");
            None
        }
    }
}

/// Called when an item of a batch reaches its outcome (from the batch call, the retry consumer
/// or the processor): counted once per message (a claim), then completion is checked. Nothing
/// happens for a message outside a batch.
pub(crate) async fn batch_item_finished(ctx: Ctx<'_>, m: &Message, end: ItemEnd) {
    let Some(batch) = &m.batch_id else { return };
    let tally = match end {
        ItemEnd::Sent => Tally::Sent,
        ItemEnd::Failed => Tally::Failed,
        ItemEnd::Suppressed => Tally::Suppressed,
        ItemEnd::RateLimited => Tally::RateLimited,
    };
    let now = ctx.clock.now();
    let key = format!("batch_item\u{1f}{}", m.id);
    match ctx
        .store
        .claim(&key, now, now + chrono::Duration::days(BATCH_TTL_DAYS))
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(batch = %batch, error.message = %e, "batch item not counted");
            return;
        }
    }
    add_tally(ctx, batch, tally, 1).await;
    // Only the item that finishes the batch checks completion (one counter read per item, not
    // the whole summary).
    let Some(finished) = add_tally(ctx, batch, Tally::Finished, 1).await else {
        return;
    };
    match ctx.store.values(&[counter_key(batch, Tally::Total)]).await {
        Ok(total) if total.first().is_some_and(|t| finished >= *t) => check_completion(ctx, batch).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(batch = %batch, error.message = %e, "batch completion not checked"),
    }
}

/// The stored creation time in the API's one format ([`timestamp`]); batch documents written
/// before that format was used are rewritten on the way out.
fn created_at(stored: &Value) -> Value {
    match stored.as_str().map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => json!(timestamp(&t.with_timezone(&Utc))),
        _ => stored.clone(),
    }
}

/// Counts of a batch, or `None` if unknown.
///
/// # Errors
/// Store failures.
pub async fn batch_summary(ctx: Ctx<'_>, batch: &str) -> Result<Option<Value>, AppError> {
    let Some(doc) = ctx.store.get_doc(&doc_key(batch)).await? else {
        return Ok(None);
    };
    let tallies = [
        Tally::Sent,
        Tally::Failed,
        Tally::Suppressed,
        Tally::RateLimited,
        Tally::Finished,
    ];
    let keys: Vec<String> = tallies.iter().map(|t| counter_key(batch, *t)).collect();
    let v = ctx.store.values(&keys).await?;
    let (sent, failed, suppressed, rate_limited, finished) = (v[0], v[1], v[2], v[3], v[4]);
    let total = doc["total"].as_i64().unwrap_or(0);
    let rejected = doc["rejected"].as_i64().unwrap_or(0);
    let queued = (total - finished).max(0);
    #[allow(clippy::cast_precision_loss)]
    let failure_rate = if total > 0 {
        (failed + rejected) as f64 / total as f64
    } else {
        0.0
    };
    let alerted = ctx
        .store
        .get_doc(&format!("batch_alerted\u{1f}{batch}"))
        .await?
        .is_some();
    Ok(Some(json!({
        "batch_id": batch, "total": total, "sent": sent, "queued": queued, "failed": failed, "rejected": rejected,
        "suppressed": suppressed, "rate_limited": rate_limited,
        "state": if finished >= total { "completed" } else { "in_progress" },
        "failure_rate": (failure_rate * 1000.0).round() / 1000.0,
        "alerted": alerted,
        "created_at": created_at(&doc["created_at"]),
    })))
}

/// When every item finished: publish `batch.completed` and alert on a high failure rate, exactly
/// once (the first caller to see the batch complete takes a claim).
pub(crate) async fn check_completion(ctx: Ctx<'_>, batch: &str) {
    let summary = match batch_summary(ctx, batch).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(batch, error.message = %e, "batch completion not checked");
            return;
        }
    };
    if summary["state"] != "completed" {
        return;
    }
    let now = ctx.clock.now();
    match ctx
        .store
        .claim(
            &format!("batch_completed\u{1f}{batch}"),
            now,
            now + chrono::Duration::days(BATCH_TTL_DAYS),
        )
        .await
    {
        Ok(true) => {}
        _ => return,
    }
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
            let marker = json!({"at": now.to_rfc3339()});
            if let Err(e) = ctx
                .store
                .put_doc(
                    &format!("batch_alerted\u{1f}{batch}"),
                    &marker,
                    Some(now + chrono::Duration::days(BATCH_TTL_DAYS)),
                )
                .await
            {
                tracing::warn!(batch, error.message = %e, "batch alert marker not stored");
            }
        }
    }
}
