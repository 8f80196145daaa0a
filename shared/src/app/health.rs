//! Health (`GET /health`, `GET /v1/health`). Every figure comes from counters kept on write, the
//! queue's own attributes, the processor's heartbeat (`heartbeat`), or a bounded read of the due
//! index — never from a scan of messages.
//!
//! Health never fails for a dependency it reports on: a queue that cannot be read makes the
//! answer `degraded`, with its figures `null` and `queue_unavailable` among the alerts. Sent
//! messages still unconfirmed past the poll window (`SMSRELAY_STATUS_POLL_AFTER` plus one
//! processor interval: by then a poll should have confirmed them) degrade it too, and raise one
//! `callbacks_missing` alert per cooldown (`alerts::raise_once`).

use super::alerts::raise_once;
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
/// The alert-list name of a queue whose attributes could not be read.
pub const QUEUE_UNAVAILABLE: &str = "queue_unavailable";
/// Alert subject of unconfirmed messages piling up.
const UNCONFIRMED_SUBJECT: &str = "unconfirmed";

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
/// Store failures (a queue failure reads as `degraded`).
pub async fn quick_status(ctx: Ctx<'_>) -> Result<&'static str, AppError> {
    let dead = match ctx.queue.stats().await {
        Ok(queue) => queue.dead > 0,
        Err(e) => {
            tracing::warn!(alert = QUEUE_UNAVAILABLE, error.message = %e, "health: queue attributes unreadable");
            true
        }
    };
    let late = is_late(ctx, last_run(ctx).await?, ctx.clock.now());
    Ok(if dead || late { "degraded" } else { "ok" })
}

/// A count as a JSON integer: counters are read as `f64` (the last hour weights the previous
/// bucket), but a count of messages is shown whole (`3`, not `3.0`); rates stay fractions.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(count: f64) -> u64 {
    // `as` saturates: negative or NaN become 0.
    count.round() as u64
}

/// Sent messages without a final status: older than five minutes (the documented figure), and
/// past the poll window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unconfirmed {
    over_5m: usize,
    past_poll_window: usize,
}

/// Count unconfirmed messages from the due index; raise `callbacks_missing` once per cooldown
/// when some are past the poll window.
async fn check_unconfirmed(ctx: Ctx<'_>, queries: &dyn MessageQueries) -> Result<Unconfirmed, AppError> {
    let now = ctx.clock.now();
    let window = ctx.config.status_poll_after + ctx.config.processor_interval;
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(10));
    let five_minutes = now - chrono::Duration::minutes(UNCONFIRMED_AFTER_MINUTES);
    let poll_cutoff = now - window;
    let mut counted = Unconfirmed {
        over_5m: 0,
        past_poll_window: 0,
    };
    for m in queries
        .list_due(now + chrono::Duration::days(1), UNCONFIRMED_SCAN_LIMIT)
        .await?
        .iter()
        .filter(|m| m.status == MessageStatus::Sent)
    {
        let Some(sent_at) = m.events.last().map(|e| e.at) else {
            continue;
        };
        if sent_at < five_minutes {
            counted.over_5m += 1;
        }
        if sent_at < poll_cutoff {
            counted.past_poll_window += 1;
        }
    }
    if counted.past_poll_window > 0 {
        let mut counts = Map::new();
        counts.insert("unconfirmed".to_owned(), json!(counted.past_poll_window));
        counts.insert("poll_window_seconds".to_owned(), json!(window.num_seconds()));
        let summary = format!(
            "{} sent messages have no final status {} s after sending, though they were due for a status poll",
            counted.past_poll_window,
            window.num_seconds()
        );
        raise_once(ctx, AlertKind::CallbacksMissing, UNCONFIRMED_SUBJECT, summary, counts).await;
    }
    Ok(counted)
}

/// Compute `/v1/health` (unconfirmed messages are read from the due index through `queries`).
///
/// # Errors
/// Store failures (a queue failure reads as `degraded`, with its figures `null`).
pub async fn health(ctx: Ctx<'_>, queries: &dyn MessageQueries) -> Result<Health, AppError> {
    let now = ctx.clock.now();
    let queue = match ctx.queue.stats().await {
        Ok(stats) => Some(stats),
        Err(e) => {
            tracing::warn!(alert = QUEUE_UNAVAILABLE, error.message = %e, error.cause_chain = ?e, "health: queue attributes unreadable");
            None
        }
    };
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
    let unconfirmed = check_unconfirmed(ctx, queries).await?;

    let mut alerts = Vec::new();
    match &queue {
        None => alerts.push(QUEUE_UNAVAILABLE),
        Some(q) if q.dead > 0 => alerts.push(AlertKind::DeadLetter.as_str()),
        Some(_) => {}
    }
    if late {
        alerts.push(AlertKind::ProcessorNotRunning.as_str());
    }
    if failure_rate_1h > FAILURE_RATE_THRESHOLD && attempts_1h >= 5.0 {
        alerts.push("failure_rate_high");
    }
    if unconfirmed.past_poll_window > 0 {
        alerts.push(AlertKind::CallbacksMissing.as_str());
    }
    let rounded = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut metrics = Map::new();
    metrics.insert("pending_retries".into(), json!(queue.as_ref().map(|q| q.pending)));
    metrics.insert("dead_letters".into(), json!(queue.as_ref().map(|q| q.dead)));
    metrics.insert("failed_last_24h".into(), json!(whole(failed_24h)));
    metrics.insert("sent_last_hour".into(), json!(whole(sent_1h)));
    metrics.insert("failure_rate_last_hour".into(), json!(rounded(failure_rate_1h)));
    metrics.insert("delivery_rate_24h".into(), json!(delivery_rate.map(rounded)));
    metrics.insert("processor_last_run_at".into(), json!(last.as_ref().map(timestamp)));
    metrics.insert(
        "processor_lag_seconds".into(),
        json!(last.map(|t| (now - t).num_seconds())),
    );
    metrics.insert("unconfirmed_over_5m".into(), json!(unconfirmed.over_5m));
    metrics.insert(
        "unconfirmed_past_poll_window".into(),
        json!(unconfirmed.past_poll_window),
    );
    Ok(Health {
        status: if alerts.is_empty() { "ok" } else { "degraded" },
        metrics,
        alerts,
    })
}
