//! `send_batch` on the manual clock: sends of one sender wait for their pacing slots on the
//! clock, and what cannot start within the budget is left to the retry queue.

use super::Env;
use crate::app::send_batch::{send_batch, BatchRequest};
use crate::ports::Clock;
use serde_json::{json, Value};
use std::time::Duration;

pub(super) fn batch(n: usize) -> BatchRequest {
    BatchRequest {
        messages: Some(
            (0..n)
                .map(|i| json!({"to": format!("+1415555030{i}"), "body": "paced"}))
                .collect(),
        ),
        from: None,
    }
}

/// Run `send_batch`, moving the clock to each pacing slot only once an item waits for it.
pub(super) async fn run_paced(env: &Env, req: BatchRequest, budget: Duration) -> Value {
    env.on_clock(send_batch(env.ctx(), req, budget)).await.expect("batch")
}

/// The pacer's gap at `mps` messages per second (1 % headroom).
pub(super) fn gap(mps: f64) -> Duration {
    Duration::from_secs_f64(1.0 / (mps * 0.99))
}

#[tokio::test]
async fn sends_of_one_sender_leave_one_pacing_gap_apart_on_the_clock() {
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "2")]);
    let start = env.clock.monotonic();
    let out = run_paced(&env, batch(3), Duration::from_secs(20)).await;
    assert_eq!(out["sent"], 3, "{out}");
    let offsets: Vec<Duration> = env
        .provider
        .calls()
        .iter()
        .map(|c| c.at.saturating_since(start))
        .collect();
    assert_eq!(
        offsets,
        [Duration::ZERO, gap(2.0), gap(2.0) * 2],
        "each call waited for its slot"
    );
}

#[tokio::test]
async fn without_the_clock_moving_only_the_first_slot_is_sent() {
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "2")]);
    let call = send_batch(env.ctx(), batch(3), Duration::from_secs(20));
    tokio::pin!(call);
    // Two items wait for later slots; until the clock moves, nothing else reaches the provider.
    tokio::select! {
        _ = &mut call => panic!("the batch finished without the clock moving"),
        () = env.clock.wait_for_sleepers(2) => {}
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(env.provider.call_count(), 1);
    assert_eq!(env.clock.sleepers(), 2);
}

#[tokio::test]
async fn items_whose_slot_lies_past_the_budget_are_queued_and_the_retry_queue_sends_them() {
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "2")]);
    // Slots at 0, ~0.505 s, ~1.01 s: the third lies past a one-second budget.
    let out = run_paced(&env, batch(3), Duration::from_secs(1)).await;
    assert_eq!(
        (out["sent"].as_u64(), out["queued"].as_u64()),
        (Some(2), Some(1)),
        "{out}"
    );
    assert_eq!(env.provider.call_count(), 2);
    assert_eq!(env.drain_queue().await, 1, "enqueued at once for the retry queue");
    assert_eq!(env.provider.call_count(), 3);
}
