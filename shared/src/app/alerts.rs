//! Raising alerts once (docs/design.md invariant 8): each (kind, subject) is deduplicated for a
//! cooldown with a store claim, so a hundred failing messages make one alert, and two Lambdas
//! noticing the same thing make one alert. Correlation is the callers': an incident has one
//! subject that pages (a batch's items are carried by the batch's alert, not alerted one by one).
//! A delivery failure is logged, never returned: an alert must not fail the request or job that
//! noticed the problem.

use super::Ctx;
use crate::ports::{Alert, AlertKind, DomainEvent};
use serde_json::{Map, Value};

/// How long an alert of one kind and subject stays quiet after it was raised.
pub const ALERT_COOLDOWN_MINUTES: i64 = 15;

/// Raise `kind` about `subject` unless it was raised within the cooldown. Returns whether it
/// was raised now.
pub async fn raise_once(
    ctx: Ctx<'_>,
    kind: AlertKind,
    subject: &str,
    summary: String,
    counts: Map<String, Value>,
) -> bool {
    let now = ctx.clock.now();
    let key = format!("alert\u{1f}{}\u{1f}{subject}", kind.as_str());
    let until = now + chrono::Duration::minutes(ALERT_COOLDOWN_MINUTES);
    match ctx.counters.claim(&key, now, until).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!(alert = kind.as_str(), error.message = %e, "alert dedupe unavailable; raising anyway");
        }
    }
    let alert = Alert {
        kind,
        subject: subject.to_owned(),
        summary,
        counts,
        raised_at: now,
    };
    // Not logged here: the log is one of the channels (`LogAlerter`, always in the fan-out), so
    // an alert is one log line, in one format.
    if let Err(e) = ctx.alerter.raise(&alert).await {
        tracing::error!(alert = kind.as_str(), error.message = %e, error.cause_chain = ?e, "alert could not be delivered");
    }
    true
}

/// Publish domain events; a failure is logged (events are notifications, the record is the truth).
pub async fn publish(ctx: Ctx<'_>, events: Vec<DomainEvent>) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = ctx.events.publish(&events).await {
        tracing::warn!(failed = e.failed.len(), error.message = %e, "domain events not all published");
    }
}
