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
