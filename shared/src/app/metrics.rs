//! Health metrics kept as counters on write: one counter per metric per UTC hour (TTL three
//! days), so reading "the last 24 hours" is 24 counter reads, whatever the traffic (no scan).

use super::Ctx;
use crate::ports::{CounterOp, CounterStore, StoreError};
use chrono::{DateTime, Duration, Timelike, Utc};
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

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

/// Metric increments gathered in memory and written as one `add_many`, so a busy process pays
/// one counter write per flush instead of one per delivered or failed message (smsrelay-local
/// flushes every second and at shutdown). A metric read flushes first, so what a reader sees
/// is exact; what a crash loses is at most the increments since the last flush, never state
/// (metrics decide nothing). Lambda functions write each increment at once (no buffer), as a
/// frozen or recycled sandbox would keep its buffer forever.
#[derive(Debug, Default)]
pub struct MetricBuffer {
    pending: Mutex<BTreeMap<String, Pending>>,
}

/// A gathered counter: the sum of its increments and the latest expiry asked for.
type Pending = (i64, Option<DateTime<Utc>>);

impl MetricBuffer {
    /// Gather `op` (an `Add`; anything else is not a metric increment and is refused).
    fn push(&self, op: CounterOp) -> Result<(), CounterOp> {
        let CounterOp::Add { key, by, expires_at } = op else {
            return Err(op);
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(key).or_insert((0, expires_at));
        entry.0 += by;
        entry.1 = entry.1.max(expires_at);
        Ok(())
    }

    /// Write what is gathered as one `add_many`; on failure it is gathered again for the next
    /// flush (nothing is counted twice: SQLite's `add_many` is one transaction).
    ///
    /// # Errors
    /// The store's failure (the increments stay buffered).
    pub async fn flush(&self, counters: &dyn CounterStore, now: DateTime<Utc>) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            return Ok(());
        }
        let ops: Vec<CounterOp> = taken
            .into_iter()
            .map(|(key, (by, expires_at))| CounterOp::Add { key, by, expires_at })
            .collect();
        match counters.add_many(&ops, now).await {
            Ok(_) => Ok(()),
            Err(e) => {
                for op in ops {
                    let _gathered = self.push(op);
                }
                Err(e)
            }
        }
    }
}

/// Count `op` (a metric increment): into the buffer when there is one, else at once.
async fn record(ctx: Ctx<'_>, op: CounterOp, now: DateTime<Utc>) -> Result<(), StoreError> {
    let op = match ctx.metrics {
        Some(buffer) => match buffer.push(op) {
            Ok(()) => return Ok(()),
            Err(op) => op,
        },
        None => op,
    };
    match op {
        CounterOp::Add { key, by, expires_at } => ctx.counters.add(&key, by, expires_at, now).await.map(drop),
        other => ctx.counters.add_many(std::slice::from_ref(&other), now).await.map(drop),
    }
}

/// The counter writes of an attempt: `others`, with the metric `increment` in front of them
/// unless the buffer (if there is one) took it.
pub(crate) fn with_increment(ctx: Ctx<'_>, increment: CounterOp, others: Vec<CounterOp>) -> Vec<CounterOp> {
    let refused = match ctx.metrics {
        Some(buffer) => buffer.push(increment).err(),
        None => Some(increment),
    };
    refused.into_iter().chain(others).collect()
}

/// Flush the buffer (if any) before a metric read, so the read is exact.
async fn before_read(ctx: Ctx<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    match ctx.metrics {
        Some(buffer) => buffer.flush(ctx.counters, now).await,
        None => Ok(()),
    }
}

/// Count one occurrence now. A failure is logged: metrics must never fail the work they count.
pub async fn count(ctx: Ctx<'_>, metric: Metric) {
    let now = ctx.clock.now();
    if let Err(e) = record(ctx, increment(metric, now), now).await {
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
    before_read(ctx, now).await?;
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
    before_read(ctx, now).await?;
    let values = ctx.counters.values(&keys, now).await?;
    let per_metric = values.chunks(starts.len().max(1)).map(<[i64]>::to_vec).collect();
    Ok((starts, per_metric))
}
