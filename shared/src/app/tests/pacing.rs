//! One send rate per sender across batches, the retry consumer and the processor (issue #12):
//! their attempts take slots on the same schedule in the store, on the manual clock.

use super::send_batch::{batch, gap, run_paced};
use super::Env;
use crate::domain::{MessageId, MessageStatus};
use crate::ports::{Clock, CounterStore, JobQueue};
use serde_json::json;
use std::time::Duration;

fn offsets(env: &Env, start: crate::ports::Moment) -> Vec<Duration> {
    env.provider
        .calls()
        .iter()
        .map(|c| c.at.saturating_since(start))
        .collect()
}

#[tokio::test]
async fn the_retry_consumer_sends_a_batch_leftover_at_the_next_slot_of_the_batchs_schedule() {
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "2")]);
    let start = env.clock.monotonic();
    // Slots 0 and ~0.505 s fit a one-second budget; the third item is left to the retry queue.
    let out = run_paced(&env, batch(3), Duration::from_secs(1)).await;
    assert_eq!(
        (out["sent"].as_u64(), out["queued"].as_u64()),
        (Some(2), Some(1)),
        "{out}"
    );
    assert_eq!(env.drain_queue().await, 1);
    // Not at once after the batch (~0.505 s): at the schedule's next slot, one gap later.
    assert_eq!(offsets(&env, start), [Duration::ZERO, gap(2.0), gap(2.0) * 2]);
}

#[tokio::test]
async fn a_processor_tick_spaces_due_sends_of_one_sender_one_gap_apart() {
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "4")]);
    let send_at = env.now() + chrono::Duration::minutes(1);
    for i in 0..3 {
        env.send(json!({"to": format!("+1415555032{i}"), "body": "due", "send_at": send_at.to_rfc3339()}))
            .await;
    }
    env.advance(Duration::from_secs(60));
    let start = env.clock.monotonic();
    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!(report.due_sent, 3, "{report:?}");
    assert_eq!(offsets(&env, start), [Duration::ZERO, gap(4.0), gap(4.0) * 2]);
}

/// Book `sender`'s schedule `ahead` into the future, as a long batch in another process would.
async fn book(env: &Env, sender: &str, ahead: Duration) {
    let now = env.now();
    let slot = env
        .store
        .reserve_slot(
            &format!("send-rate:{sender}"),
            now,
            ahead,
            now + chrono::Duration::seconds(1),
        )
        .await
        .expect("reserve");
    assert_eq!(slot, Some(now), "the booking itself takes the slot now");
}

#[tokio::test]
async fn a_schedule_booked_past_the_horizon_defers_the_retry_job_without_claiming_or_sending() {
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "2")]);
    // A zero budget leaves the one item queued, with its job on the retry queue.
    let out = run_paced(&env, batch(1), Duration::ZERO).await;
    assert_eq!(out["queued"], 1, "{out}");
    let id = MessageId::parse(out["results"][0]["message_id"].as_str().expect("id")).expect("id");
    let sender = env.message(&id).await.from;
    book(&env, &sender, Duration::from_secs(30)).await;

    assert_eq!(env.drain_queue().await, 1, "the job ran and was chained");
    assert_eq!(env.provider.call_count(), 0, "no slot within the horizon: no send");
    let m = env.message(&id).await;
    assert_eq!((m.status, m.attempts), (MessageStatus::Queued, 0), "nothing claimed");
    assert_eq!(
        env.queue.stats().await.expect("stats").pending,
        1,
        "chained on the queue"
    );

    // Once the booked time has passed, the chained job sends it (once).
    env.advance(Duration::from_secs(30));
    assert_eq!(env.drain_queue().await, 1);
    assert_eq!(env.provider.call_count(), 1);
    assert_eq!(env.message(&id).await.status, MessageStatus::Sent);
}

#[tokio::test]
async fn a_schedule_booked_past_the_horizon_leaves_a_due_message_due_for_the_next_tick() {
    let env = Env::new(&[]);
    let send_at = env.now() + chrono::Duration::minutes(1);
    let out = env
        .send(json!({"to": "+14155550330", "body": "due", "send_at": send_at.to_rfc3339()}))
        .await;
    let id = out.message.id.clone();
    env.advance(Duration::from_secs(60));
    book(&env, &out.message.from, Duration::from_secs(60)).await;

    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!((report.due_sent, report.rescheduled), (0, 1), "{report:?}");
    assert_eq!(env.provider.call_count(), 0);
    let m = env.message(&id).await;
    assert_eq!(m.status, MessageStatus::Queued);
    assert!(m.due_at.is_some(), "still due: the next tick takes it");

    env.advance(Duration::from_secs(60));
    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!(report.due_sent, 1, "{report:?}");
    assert_eq!(env.provider.call_count(), 1);
}

/// A claim that takes 20 ms to write makes a "now" slot late. The first time the slot is given
/// up for a fresh one, reserved the observed 20 ms ahead; from then on the pacer reserves that
/// far ahead and the next claims meet their slots: no more slots are thrown away (before the
/// lead, each of these sends wasted one, and two batch workers on DynamoDB Local lost a quarter
/// of the sender's rate that way).
#[tokio::test]
async fn after_one_late_slot_the_pacer_reserves_ahead_by_the_claims_latency_and_wastes_no_more() {
    use crate::app::pacing::Pacer;
    let env = Env::new(&[("SMSRELAY_SENDER_MPS", "100")]);
    let pacer = Pacer::new(100);
    let claim_latency = Duration::from_millis(20);
    let mut kept = Vec::new();
    for _ in 0..4 {
        // Far apart, so the schedule has no backlog and every slot starts at "now" (or the lead).
        env.advance(Duration::from_secs(1));
        let deadline = env.clock.monotonic() + Duration::from_secs(5);
        let slot = pacer
            .reserve(env.ctx(), "+15005550006", deadline)
            .await
            .expect("reserve")
            .expect("a slot");
        env.advance(claim_latency);
        let at = pacer
            .on_time(env.ctx(), "+15005550006", slot, deadline)
            .await
            .expect("on time");
        kept.push(at == slot.at);
        assert!(
            env.clock.monotonic().saturating_since(at) <= Duration::from_millis(5),
            "the send never leaves on a slot more than half a gap old"
        );
    }
    assert_eq!(kept, [false, true, true, true], "only the first slot was given up");
}
