//! `send_message` on the manual clock: a future `send_at` waits for the clock, and a temporary
//! failure is retried only once the clock reaches its backoff.

use super::Env;
use crate::domain::MessageStatus;
use crate::ports::ProviderError;
use serde_json::json;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_message_two_hours_ahead_is_scheduled_and_sent_by_the_first_tick_after_the_clock_reaches_it() {
    let env = Env::new(&[]);
    let send_at = env.now() + chrono::Duration::hours(2);
    let out = env
        .send(json!({"to": "+14155550100", "body": "see you", "send_at": send_at.to_rfc3339()}))
        .await;
    assert_eq!(out.message.status, MessageStatus::Scheduled);
    assert_eq!(out.message.due_at, Some(send_at));

    env.advance(Duration::from_secs(7199));
    let report = env.tick(BUDGET).await.expect("tick");
    assert_eq!((report.due_sent, env.provider.call_count()), (0, 0), "a second early");

    env.advance(Duration::from_secs(1));
    let report = env.tick(BUDGET).await.expect("tick");
    assert_eq!((report.due_sent, env.provider.call_count()), (1, 1));
    let m = env.message(&out.message.id).await;
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!(
        m.events.last().map(|e| e.at),
        Some(env.now()),
        "recorded at the clock's time"
    );
}

#[tokio::test]
async fn a_rate_limited_first_attempt_is_retried_only_when_the_clock_reaches_its_backoff() {
    let env = Env::new(&[("SMSRELAY_RETRY_BASE", "10s"), ("SMSRELAY_RETRY_CAP", "10s")]);
    env.provider.fail_next(ProviderError::RateLimited { retry_after: None });
    let out = env.send(json!({"to": "+14155550101", "body": "hi"})).await;
    assert_eq!(out.message.status, MessageStatus::Queued);
    let due = out.message.due_at.expect("a retry is due");
    assert!(due > env.now(), "backed off, not retried at once");

    assert_eq!(env.drain_queue().await, 0, "the retry job is not visible yet");
    env.advance_to(due - chrono::Duration::milliseconds(1));
    assert_eq!(env.drain_queue().await, 0, "one millisecond early");
    assert_eq!(env.provider.call_count(), 1);

    env.advance(Duration::from_millis(1));
    assert_eq!(env.drain_queue().await, 1);
    assert_eq!(env.provider.call_count(), 2);
    let m = env.message(&out.message.id).await;
    assert_eq!((m.status, m.attempts), (MessageStatus::Sent, 2));
}
