//! The processor's heartbeat: every tick records when it ran, and anyone (the next tick, health)
//! can tell whether the processor is late. Shared by `process_due` (writes it) and `health`
//! (reads it), so neither imports the other.

use super::alerts::raise_once;
use super::{AppError, Ctx};
use crate::ports::AlertKind;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Document key of the processor heartbeat.
pub const HEARTBEAT_KEY: &str = "processor_heartbeat";

/// Record that a processor tick ran (called at the end of every tick).
///
/// # Errors
/// Store failures.
pub async fn record_heartbeat(ctx: Ctx<'_>, report: &(impl Serialize + Sync)) -> Result<(), AppError> {
    let now = ctx.clock.now();
    let doc = json!({"at": now.to_rfc3339(), "report": report});
    ctx.counters.put_doc(HEARTBEAT_KEY, &doc, None).await?;
    Ok(())
}

/// When the processor last ran, if ever.
///
/// # Errors
/// Store failures.
pub async fn last_run(ctx: Ctx<'_>) -> Result<Option<DateTime<Utc>>, AppError> {
    let doc = ctx.counters.get_doc(HEARTBEAT_KEY, ctx.clock.now()).await?;
    Ok(doc
        .and_then(|d| d.get("at").and_then(Value::as_str).map(str::to_owned))
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// A processor whose last run is more than two intervals before `now` is late (one that never
/// ran is not: a fresh deployment has no heartbeat yet).
pub(crate) fn is_late(ctx: Ctx<'_>, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let allowed =
        chrono::Duration::from_std(ctx.config.processor_interval * 2).unwrap_or(chrono::Duration::minutes(10));
    last.is_some_and(|t| now - t > allowed)
}

/// Whether the processor is late (last run more than two intervals ago); raises the alert once.
///
/// # Errors
/// Store failures.
pub async fn check_processor(ctx: Ctx<'_>) -> Result<(Option<DateTime<Utc>>, bool), AppError> {
    let now = ctx.clock.now();
    let last = last_run(ctx).await?;
    let late = is_late(ctx, last, now);
    if late {
        let lag = last.map_or(0, |t| (now - t).num_seconds());
        let mut counts = Map::new();
        counts.insert("lag_seconds".to_owned(), json!(lag));
        counts.insert(
            "interval_seconds".to_owned(),
            json!(ctx.config.processor_interval.as_secs()),
        );
        raise_once(
            ctx,
            AlertKind::ProcessorNotRunning,
            "processor",
            format!("The processor has not run for {lag} s"),
            counts,
        )
        .await;
    }
    Ok((last, late))
}
