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

/// The counter key and expiry of `metric`'s hour at `now`.
fn hour_counter(metric: Metric, now: DateTime<Utc>) -> (String, Option<DateTime<Utc>>) {
    let hour = bucket_start(now);
    (key(metric, hour), Some(hour + Duration::days(3)))
}

/// The counter change that counts one `metric` at `now`, for one write with other changes
/// (`CounterStore::add_many`).
pub fn increment(metric: Metric, now: DateTime<Utc>) -> CounterOp {
    let (key, expires_at) = hour_counter(metric, now);
    CounterOp::Add { key, by: 1, expires_at }
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
    /// Gather `by` on the counter `key`.
    fn gather(&self, key: String, by: i64, expires_at: Option<DateTime<Utc>>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = pending.entry(key).or_insert((0, expires_at));
        entry.0 += by;
        entry.1 = entry.1.max(expires_at);
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
            .iter()
            .map(|(key, &(by, expires_at))| CounterOp::Add {
                key: key.clone(),
                by,
                expires_at,
            })
            .collect();
        counters.add_many(&ops, now).await.map(drop).inspect_err(|_| {
            for (key, (by, expires_at)) in taken {
                self.gather(key, by, expires_at);
            }
        })
    }
}

/// The counter writes of an attempt: `others`, with one `metric` at `now` in front of them
/// unless the buffer (if there is one) gathers it.
pub(crate) fn with_increment(
    ctx: Ctx<'_>,
    metric: Metric,
    now: DateTime<Utc>,
    others: Vec<CounterOp>,
) -> Vec<CounterOp> {
    match ctx.metrics {
        Some(buffer) => {
            let (key, expires_at) = hour_counter(metric, now);
            buffer.gather(key, 1, expires_at);
            others
        }
        None => std::iter::once(increment(metric, now)).chain(others).collect(),
    }
}

/// Flush the buffer (if any) before a metric read, so the read is exact.
async fn before_read(ctx: Ctx<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    match ctx.metrics {
        Some(buffer) => buffer.flush(ctx.counters, now).await,
        None => Ok(()),
    }
}

/// Count one occurrence now: into the buffer when there is one, else at once. A failure is
/// logged: metrics must never fail the work they count.
pub async fn count(ctx: Ctx<'_>, metric: Metric) {
    let now = ctx.clock.now();
    let (key, expires_at) = hour_counter(metric, now);
    let written = match ctx.metrics {
        Some(buffer) => {
            buffer.gather(key, 1, expires_at);
            Ok(())
        }
        None => ctx.counters.add(&key, 1, expires_at, now).await.map(drop),
    };
    if let Err(e) = written {
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
