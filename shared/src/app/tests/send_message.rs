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

/// A 21610 says the recipient opted out at the carrier. When the opt-out cannot be recorded (a
/// store fault), the refusal is not recorded as the message's outcome either: a message
/// `failed` with 21610 always has its opt-out. The attempt stays `sending` for reconciliation,
/// and the next attempt, refused again, records both. (The seeded simulation found messages
/// left failed with 21610 and the number never opted out.)
#[tokio::test]
async fn a_21610_whose_opt_out_cannot_be_recorded_leaves_the_attempt_for_reconciliation() {
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::{ConsentChannel, ConsentStatus, PhoneNumber};
    use crate::ports::{ConsentStore as _, JobQueue as _, MessageStore as _};
    use crate::testing::CountingStore;
    use std::sync::Arc;

    const PHONE: &str = "+14155550177";
    let env = Env::new(&[]);
    let store = CountingStore::new(Arc::new(SqliteStore::open_in_memory().expect("sqlite")));
    let ctx = crate::app::Ctx {
        messages: &store,
        consent: &store,
        counters: &store,
        batches: &store,
        ..env.ctx()
    };
    let refused = || ProviderError::Rejected {
        code: 21610,
        message: "Attempt to send to unsubscribed recipient".to_owned(),
    };
    let phone = PhoneNumber::parse_e164(PHONE).expect("phone");

    env.provider.fail_next(refused());
    store.fail_next("opt_out", 1);
    let req: crate::app::send::SendRequest =
        serde_json::from_value(json!({"to": PHONE, "body": "hi"})).expect("request shape");
    let cmd = req
        .validate(env.config.default_region, &env.config.default_sender, env.now())
        .expect("valid request");
    let out = crate::app::send::send_message(ctx, cmd).await.expect("accepted");
    assert!(out.warning.is_some(), "the caller is told the outcome is not recorded");
    let id = out.message.id.clone();
    let stored = store.get_message(&id).await.expect("read").expect("stored");
    assert_eq!(
        stored.status,
        MessageStatus::Sending,
        "not failed without its opt-out: {:?}",
        stored.events
    );
    assert!(stored.due_at.is_some(), "due for reconciliation");
    assert!(store.consent_history(&phone).await.expect("history").is_empty());

    // Reconciliation finds nothing at the provider and queues the next attempt; refused again,
    // it records the opt-out, then the failure.
    env.advance(env.config.reconcile_after + Duration::from_secs(1));
    env.on_clock(crate::app::process_due::process_due(ctx, &store, &store, BUDGET))
        .await
        .expect("tick");
    let stored = store.get_message(&id).await.expect("read").expect("stored");
    assert_eq!(stored.status, MessageStatus::Queued, "{:?}", stored.events);
    env.advance_to(stored.due_at.expect("a retry is due"));
    env.provider.fail_next(refused());
    let jobs = env.queue.receive(10, Duration::from_secs(30)).await.expect("receive");
    assert_eq!(jobs.len(), 1);
    env.on_clock(crate::app::retry::handle_job(
        ctx,
        env.conversation_ports(),
        &jobs[0].payload,
    ))
    .await
    .expect("job");
    let stored = store.get_message(&id).await.expect("read").expect("stored");
    assert_eq!(
        (stored.status, stored.error.as_ref().map(|e| e.code)),
        (MessageStatus::Failed, Some(21610))
    );
    let history = store.consent_history(&phone).await.expect("history");
    assert!(
        history
            .iter()
            .any(|e| e.status == ConsentStatus::OptedOut && e.channel == ConsentChannel::ProviderError),
        "{history:?}"
    );
}
