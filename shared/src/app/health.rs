//! Health (`GET /health`, `GET /v1/health`). Every figure comes from counters kept on write, the
//! queue's own attributes, the processor's heartbeat (`heartbeat`), or a bounded read of the due
//! index — never from a scan of messages.

use super::heartbeat::{check_processor, is_late, last_run};
use super::metrics::{over_last_hours, Metric};
use super::{AppError, Ctx};
use crate::domain::{timestamp, MessageStatus};
use crate::ports::{AlertKind, MessageQueries};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Failure rate (failed attempts / attempts, last hour) above which health is degraded.
pub const FAILURE_RATE_THRESHOLD: f64 = 0.5;
/// Sent messages still without a final status are "unconfirmed" after this long.
const UNCONFIRMED_AFTER_MINUTES: i64 = 5;
/// At most this many due items are read to count unconfirmed messages.
const UNCONFIRMED_SCAN_LIMIT: usize = 1000;

/// What `/v1/health` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Figures.
    pub metrics: Map<String, Value>,
    /// Conditions currently raised (snake_case kinds).
    pub alerts: Vec<&'static str>,
}

/// The cheap status behind the unauthenticated `GET /health`: dead letters and the processor's
/// heartbeat only (two reads), so anonymous callers cannot make it expensive.
///
/// # Errors
/// Store or queue failures.
pub async fn quick_status(ctx: Ctx<'_>) -> Result<&'static str, AppError> {
    let queue = ctx
        .queue
        .stats()
        .await
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    let late = is_late(ctx, last_run(ctx).await?, ctx.clock.now());
    Ok(if queue.dead > 0 || late { "degraded" } else { "ok" })
}

/// A count as a JSON integer: counters are read as `f64` (the last hour weights the previous
/// bucket), but a count of messages is shown whole (`3`, not `3.0`); rates stay fractions.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(count: f64) -> u64 {
    // `as` saturates: negative or NaN become 0.
    count.round() as u64
}

/// Compute `/v1/health` (unconfirmed messages are read from the due index through `queries`).
///
/// # Errors
/// Store or queue failures.
pub async fn health(ctx: Ctx<'_>, queries: &dyn MessageQueries) -> Result<Health, AppError> {
    let now = ctx.clock.now();
    let queue = ctx
        .queue
        .stats()
        .await
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    let (last, late) = check_processor(ctx).await?;
    let sent_1h = over_last_hours(ctx, Metric::Sent, 1).await?;
    let attempts_failed_1h = over_last_hours(ctx, Metric::AttemptFailed, 1).await?;
    let failed_24h = over_last_hours(ctx, Metric::Failed, 24).await?;
    let delivered_24h = over_last_hours(ctx, Metric::Delivered, 24).await?;
    let undelivered_24h = over_last_hours(ctx, Metric::Undelivered, 24).await?;
    let finals = delivered_24h + undelivered_24h + failed_24h;
    let delivery_rate = if finals > 0.0 {
        Some(delivered_24h / finals)
    } else {
        None
    };
    let attempts_1h = sent_1h + attempts_failed_1h;
    let failure_rate_1h = if attempts_1h > 0.0 {
        attempts_failed_1h / attempts_1h
    } else {
        0.0
    };
    let cutoff = now - chrono::Duration::minutes(UNCONFIRMED_AFTER_MINUTES);
    let unconfirmed = queries
        .list_due(now + chrono::Duration::days(1), UNCONFIRMED_SCAN_LIMIT)
        .await?
        .iter()
        .filter(|m| m.status == MessageStatus::Sent && m.events.last().is_some_and(|e| e.at < cutoff))
        .count();

    let mut alerts = Vec::new();
    if queue.dead > 0 {
        alerts.push(AlertKind::DeadLetter.as_str());
    }
    if late {
        alerts.push(AlertKind::ProcessorNotRunning.as_str());
    }
    if failure_rate_1h > FAILURE_RATE_THRESHOLD && attempts_1h >= 5.0 {
        alerts.push("failure_rate_high");
    }
    let rounded = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut metrics = Map::new();
    metrics.insert("pending_retries".into(), json!(queue.pending));
    metrics.insert("dead_letters".into(), json!(queue.dead));
    metrics.insert("failed_last_24h".into(), json!(whole(failed_24h)));
    metrics.insert("sent_last_hour".into(), json!(whole(sent_1h)));
    metrics.insert("failure_rate_last_hour".into(), json!(rounded(failure_rate_1h)));
    metrics.insert("delivery_rate_24h".into(), json!(delivery_rate.map(rounded)));
    metrics.insert("processor_last_run_at".into(), json!(last.as_ref().map(timestamp)));
    metrics.insert(
        "processor_lag_seconds".into(),
        json!(last.map(|t| (now - t).num_seconds())),
    );
    metrics.insert("unconfirmed_over_5m".into(), json!(unconfirmed));
    Ok(Health {
        status: if alerts.is_empty() { "ok" } else { "degraded" },
        metrics,
        alerts,
    })
}
