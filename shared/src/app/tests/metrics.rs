//! Metric increments gathered in memory (`MetricBuffer`, smsrelay-local) and written in one
//! counter write per flush, on the manual clock.

use super::Env;
use crate::app::metrics::{count, over_last_hours, Metric, MetricBuffer};
use crate::app::Ctx;
use crate::testing::CountingStore;
use std::sync::Arc;

/// An app, its store behind a call counter, and a metric buffer.
fn parts() -> (Env, CountingStore, MetricBuffer) {
    let env = Env::new(&[]);
    let counters = CountingStore::new(Arc::new(env.store.clone()));
    (env, counters, MetricBuffer::default())
}

/// The app's context with metrics gathered in `buffer` and counters counted by `counters`.
fn buffered<'a>(env: &'a Env, counters: &'a CountingStore, buffer: &'a MetricBuffer) -> Ctx<'a> {
    Ctx {
        counters,
        metrics: Some(buffer),
        ..env.ctx()
    }
}

#[tokio::test]
async fn gathered_increments_are_one_write_per_flush_and_a_read_sees_them_all() {
    let (env, counters, buffer) = parts();
    let ctx = buffered(&env, &counters, &buffer);
    for _ in 0..5 {
        count(ctx, Metric::Delivered).await;
    }
    count(ctx, Metric::Failed).await;
    assert_eq!(counters.total_calls(), 0, "nothing is written while gathering");
    buffer.flush(&counters, env.now()).await.expect("flush");
    assert_eq!(counters.calls_by_method(), [("add_many", 1)]);
    count(ctx, Metric::Delivered).await;
    // A read flushes first, so it is exact.
    assert_eq!(over_last_hours(ctx, Metric::Delivered, 24).await.expect("read"), 6.0);
    assert_eq!(over_last_hours(ctx, Metric::Failed, 24).await.expect("read"), 1.0);
    buffer.flush(&counters, env.now()).await.expect("an empty flush");
    assert_eq!(counters.calls("add_many"), 2, "an empty buffer writes nothing");
}

#[tokio::test]
async fn a_flush_that_fails_keeps_the_increments_for_the_next_one() {
    let (env, counters, buffer) = parts();
    let ctx = buffered(&env, &counters, &buffer);
    count(ctx, Metric::Sent).await;
    count(ctx, Metric::Sent).await;
    counters.fail_next("add_many", 1);
    assert!(buffer.flush(&counters, env.now()).await.is_err());
    count(ctx, Metric::Sent).await;
    buffer.flush(&counters, env.now()).await.expect("second flush");
    let unbuffered = Ctx { metrics: None, ..ctx };
    assert_eq!(over_last_hours(unbuffered, Metric::Sent, 1).await.expect("read"), 3.0);
}
