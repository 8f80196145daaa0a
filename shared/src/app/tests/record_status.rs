//! `record_status` on the manual clock: a retryable delivery failure starts a fresh attempt that
//! runs only after its backoff, and the old attempt's late callbacks change nothing.

use super::Env;
use crate::app::record_status::{record_status, StatusCallback, StatusOutcome};
use crate::domain::MessageStatus;
use serde_json::json;
use std::time::Duration;

fn callback(
    id: &crate::domain::MessageId,
    sid: &crate::domain::ProviderSid,
    status: &str,
    code: Option<u32>,
) -> StatusCallback {
    StatusCallback {
        message_id: Some(id.clone()),
        sid: sid.clone(),
        status: status.to_owned(),
        error_code: code,
        error_message: None,
    }
}

#[tokio::test]
async fn an_undelivered_30003_is_resent_only_after_its_backoff_and_the_old_sid_is_then_ignored() {
    let env = Env::new(&[("SMSRELAY_RETRY_BASE", "30s"), ("SMSRELAY_RETRY_CAP", "30s")]);
    let out = env.send(json!({"to": "+14155550102", "body": "hi"})).await;
    let id = out.message.id.clone();
    let first_sid = out.message.provider_sid.clone().expect("sent");

    env.advance(Duration::from_secs(5));
    let outcome = record_status(env.ctx(), callback(&id, &first_sid, "undelivered", Some(30003)))
        .await
        .expect("recorded");
    assert_eq!(outcome, StatusOutcome::Resending);
    let queued = env.message(&id).await;
    assert_eq!(queued.status, MessageStatus::Queued);
    let due = queued.due_at.expect("due");
    assert!(due > env.now());
    assert_eq!(env.drain_queue().await, 0, "not before the backoff");
    assert_eq!(env.provider.call_count(), 1);

    env.advance_to(due);
    assert_eq!(env.drain_queue().await, 1);
    let resent = env.message(&id).await;
    assert_eq!((resent.status, resent.attempts), (MessageStatus::Sent, 2));
    assert_ne!(resent.provider_sid.as_ref(), Some(&first_sid));

    let late = record_status(env.ctx(), callback(&id, &first_sid, "delivered", None))
        .await
        .expect("recorded");
    assert_eq!(late, StatusOutcome::Ignored);
    assert_eq!(env.message(&id).await.status, MessageStatus::Sent);
    assert_eq!(env.provider.call_count(), 2);
}

#[tokio::test]
async fn a_delivery_receipt_is_recorded_at_the_clocks_time() {
    let env = Env::new(&[]);
    let out = env.send(json!({"to": "+14155550103", "body": "hi"})).await;
    let sid = out.message.provider_sid.clone().expect("sent");
    env.advance(Duration::from_secs(90));
    let outcome = record_status(env.ctx(), callback(&out.message.id, &sid, "delivered", None))
        .await
        .expect("recorded");
    assert_eq!(outcome, StatusOutcome::Advanced(MessageStatus::Delivered));
    let m = env.message(&out.message.id).await;
    let last = m.events.last().expect("event");
    assert_eq!((last.status, last.at), (MessageStatus::Delivered, env.now()));
    assert_eq!(m.due_at, None, "nothing more to poll");
}

/// The first delivery of an `undelivered` 30003 recorded the failure, then the process crashed
/// (or the store failed) before the fresh attempt was queued, and we answered no 2xx. The
/// provider delivers the callback again: it queues the fresh attempt then, once. (Found by the
/// seeded simulation: messages left `undelivered` with a retryable code and attempts left.)
#[tokio::test]
async fn a_redelivered_retryable_failure_queues_the_fresh_attempt_its_first_delivery_did_not() {
    let env = Env::new(&[("SMSRELAY_RETRY_BASE", "30s"), ("SMSRELAY_RETRY_CAP", "30s")]);
    let out = env.send(json!({"to": "+14155550103", "body": "hi"})).await;
    let id = out.message.id.clone();
    let sid = out.message.provider_sid.clone().expect("sent");
    env.advance(Duration::from_secs(5));
    let now = env.now();
    // What the first delivery's status write left: undelivered, no retry queued.
    crate::app::modify_message(&env.store, &id, |m| {
        m.advance(MessageStatus::Undelivered, Some(30003), now);
        m.due_at = None;
        true
    })
    .await
    .expect("write");

    let again = record_status(env.ctx(), callback(&id, &sid, "undelivered", Some(30003)))
        .await
        .expect("recorded");
    assert_eq!(again, StatusOutcome::Resending);
    let queued = env.message(&id).await;
    assert_eq!(queued.status, MessageStatus::Queued);
    env.advance_to(queued.due_at.expect("due"));
    assert_eq!(env.drain_queue().await, 1);
    assert_eq!(env.provider.call_count(), 2);

    // Once requeued, a third delivery of the same callback changes nothing.
    let third = record_status(env.ctx(), callback(&id, &sid, "undelivered", Some(30003)))
        .await
        .expect("recorded");
    assert_eq!(third, StatusOutcome::Ignored);
    assert_eq!(env.drain_queue().await, 0);
    assert_eq!(env.provider.call_count(), 2);
}
