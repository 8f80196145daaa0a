//! Health metrics kept as counters on write: one counter per metric per UTC hour (TTL three
//! days), so reading "the last 24 hours" is 24 counter reads, whatever the traffic (no scan).

use super::Ctx;
use crate::ports::CounterOp;
use chrono::{DateTime, Duration, Timelike, Utc};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Accepted by the provider.
    Sent,
    /// Handset delivery confirmed.
    Delivered,
    /// Carrier could not deliver.
    Undelivered,
    /// Ended failed (permanent error or attempts exhausted).
    Failed,
    /// A provider attempt that did not go through (any reason).
    AttemptFailed,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::AttemptFailed => "attempt_failed",
        }
    }
}

fn bucket_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

fn key(metric: Metric, hour: DateTime<Utc>) -> String {
    format!("metric\u{1f}{}\u{1f}{}", metric.name(), hour.format("%Y-%m-%dT%H"))
}

/// The counter change that counts one `metric` at `now`, for one write with other changes
/// (`CounterStore::add_many`).
pub fn increment(metric: Metric, now: DateTime<Utc>) -> CounterOp {
    let hour = bucket_start(now);
    CounterOp::Add {
        key: key(metric, hour),
        by: 1,
        expires_at: Some(hour + Duration::days(3)),
    }
}

/// Count one occurrence now. A failure is logged: metrics must never fail the work they count.
pub async fn count(ctx: Ctx<'_>, metric: Metric) {
    let now = ctx.clock.now();
    let hour = bucket_start(now);
    if let Err(e) = ctx
        .counters
        .add(&key(metric, hour), 1, Some(hour + Duration::days(3)), now)
        .await
    {
        tracing::warn!(metric = metric.name(), error.message = %e, "metric not counted");
    }
}

/// The counts of `metric` over the last `hours` hours: the current hour's bucket plus the
/// previous full ones. For `hours = 1` the previous bucket is weighted by the part of it still
/// inside the window (an estimate; exact when all events fall in the current hour).
///
/// # Errors
/// Store failures.
pub async fn over_last_hours(ctx: Ctx<'_>, metric: Metric, hours: i64) -> Result<f64, crate::ports::StoreError> {
    let now = ctx.clock.now();
    let current = bucket_start(now);
    let keys: Vec<String> = (0..=hours).map(|i| key(metric, current - Duration::hours(i))).collect();
    let values = ctx.counters.values(&keys, now).await?;
    let elapsed = f64::from(u32::try_from((now - current).num_seconds()).unwrap_or(0)) / 3600.0;
    let mut total = 0.0;
    for (i, v) in values.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let v = *v as f64;
        total += if i == 0 {
            v
        } else if i64::try_from(i).unwrap_or(i64::MAX) == hours {
            v * (1.0 - elapsed)
        } else {
            v
        };
    }
    Ok(total)
}

/// The counts of each of `metrics` in each of the last `hours` UTC hours, oldest first, with the
/// start of each hour (the last is the current hour, still running): one counter read of
/// `metrics.len() × hours` keys, whatever the traffic (no scan). The console's 24-hour chart.
///
/// # Errors
/// Store failures.
pub async fn per_hour(
    ctx: Ctx<'_>,
    metrics: &[Metric],
    hours: i64,
) -> Result<(Vec<DateTime<Utc>>, Vec<Vec<i64>>), crate::ports::StoreError> {
    let now = ctx.clock.now();
    let current = bucket_start(now);
    let starts: Vec<DateTime<Utc>> = (0..hours).rev().map(|i| current - Duration::hours(i)).collect();
    let keys: Vec<String> = metrics
        .iter()
        .flat_map(|m| starts.iter().map(move |h| key(*m, *h)))
        .collect();
    let values = ctx.counters.values(&keys, now).await?;
    let per_metric = values.chunks(starts.len().max(1)).map(<[i64]>::to_vec).collect();
    Ok((starts, per_metric))
}
