//! `process_due` on the manual clock: the budget is clock time (a slow provider exhausts it
//! without a real wait), and an unconfirmed attempt is reconciled only once it is due.

use super::Env;
use crate::domain::MessageStatus;
use crate::ports::ProviderError;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_tick_stops_at_its_budget_and_the_next_tick_sends_the_rest() {
    let env = Env::new(&[]);
    let send_at = env.now() + chrono::Duration::minutes(1);
    for i in 0..5 {
        env.send(json!({"to": format!("+1415555020{i}"), "body": "due", "send_at": send_at.to_rfc3339()}))
            .await;
    }
    env.advance(Duration::from_secs(60));
    // Each provider call takes one second of clock time; the budget is 2.5 s.
    env.provider.set_latency(Duration::from_secs(1));
    let report = env.tick(Duration::from_millis(2500)).await.expect("tick");
    assert_eq!(report.due_sent, 3, "{report:?}");
    assert!(report.remaining, "{report:?}");
    assert_eq!(report.duration_ms, 3000, "measured on the clock");
    assert_eq!(report.ended_no_response, 0);

    env.provider.set_latency(Duration::ZERO);
    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!((report.due_sent, report.remaining), (2, false), "{report:?}");
    assert_eq!(env.provider.call_count(), 5, "each exactly once");
}

#[tokio::test]
async fn an_unconfirmed_attempt_is_reconciled_only_after_reconcile_after() {
    let env = Env::new(&[
        ("SMSRELAY_RECONCILE_AFTER", "2m"),
        ("SMSRELAY_RETRY_BASE", "1s"),
        ("SMSRELAY_RETRY_CAP", "1s"),
    ]);
    env.provider.fail_next(ProviderError::Transient {
        code: None,
        reason: "timeout".to_owned(),
        maybe_sent: true,
    });
    let out = env.send(json!({"to": "+14155550104", "body": "hi"})).await;
    assert_eq!(
        out.message.status,
        MessageStatus::Sending,
        "ambiguous: never resent blindly"
    );

    env.advance(Duration::from_secs(119));
    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!(report.reconciled, 0, "not due yet: {report:?}");
    assert_eq!(env.message(&out.message.id).await.status, MessageStatus::Sending);

    env.advance(Duration::from_secs(1));
    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!(report.reconciled, 1, "{report:?}");
    // The provider never had it: another attempt follows its backoff, then sends.
    let requeued = env.message(&out.message.id).await;
    assert_eq!(requeued.status, MessageStatus::Queued);
    env.advance_to(requeued.due_at.expect("due"));
    assert_eq!(env.drain_queue().await, 1);
    assert_eq!(env.message(&out.message.id).await.status, MessageStatus::Sent);
    assert_eq!(env.provider.call_count(), 2);
}

/// The callbacks of a sent message never reached us; the status poll learns it was
/// `undelivered` with a retryable code. That starts the fresh attempt a callback would have
/// (found by the seeded simulation: such messages were left undelivered with attempts left).
#[tokio::test]
async fn a_retryable_failure_learned_by_the_status_poll_starts_a_fresh_attempt() {
    let env = Env::new(&[("SMSRELAY_RETRY_BASE", "1s"), ("SMSRELAY_RETRY_CAP", "1s")]);
    let out = env.send(json!({"to": "+14155550105", "body": "hi"})).await;
    let sid = out.message.provider_sid.clone().expect("sent");
    env.provider.set_status(&sid, "undelivered", Some(30003));

    env.advance_to(out.message.due_at.expect("a status poll is due"));
    let report = env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!(report.polled, 1, "{report:?}");
    let requeued = env.message(&out.message.id).await;
    assert_eq!(requeued.status, MessageStatus::Queued, "{:?}", requeued.events);
    env.advance_to(requeued.due_at.expect("due"));
    assert_eq!(env.drain_queue().await, 1);
    let resent = env.message(&out.message.id).await;
    assert_eq!((resent.status, resent.attempts), (MessageStatus::Sent, 2));
    assert_eq!(env.provider.call_count(), 2);
}

/// The poll (or a callback) recorded a retryable failure and was cut short before the fresh
/// attempt was queued: the message stays due, and the next tick queues it.
#[tokio::test]
async fn a_retryable_failure_whose_requeue_was_cut_short_is_queued_by_the_next_tick() {
    let env = Env::new(&[("SMSRELAY_RETRY_BASE", "1s"), ("SMSRELAY_RETRY_CAP", "1s")]);
    let out = env.send(json!({"to": "+14155550106", "body": "hi"})).await;
    let id = out.message.id.clone();
    env.advance(Duration::from_secs(5));
    let now = env.now();
    // What a status write that stopped before its requeue leaves.
    crate::app::modify_message(&env.store, &id, |m| {
        m.advance(MessageStatus::Undelivered, Some(30003), now);
        m.error = Some(crate::domain::MessageError {
            code: 30003,
            message: "unreachable".to_owned(),
        });
        m.due_at = Some(now);
        true
    })
    .await
    .expect("write");

    env.tick(Duration::from_secs(20)).await.expect("tick");
    let requeued = env.message(&id).await;
    assert_eq!(requeued.status, MessageStatus::Queued, "{:?}", requeued.events);
    env.advance_to(requeued.due_at.expect("due"));
    assert_eq!(env.drain_queue().await, 1);
    assert_eq!(env.provider.call_count(), 2);
    // And a tick after that finds nothing more to do for it.
    env.tick(Duration::from_secs(20)).await.expect("tick");
    assert_eq!(env.provider.call_count(), 2);
}
