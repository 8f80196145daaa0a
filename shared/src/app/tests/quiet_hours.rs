//! Quiet hours on the manual clock (issue 9 item 6): a `send_at` without `quiet_hours` is sent at
//! its time at any hour, whatever the default window says; the message's own `quiet_hours` move a
//! past, a future or no `send_at` alike, and every move is visible (`original_send_at`, a
//! `rescheduled` entry, `updated_at`).

use super::Env;
use crate::adapters::system_clock::SystemClock;
use crate::domain::{Message, MessageStatus, RescheduleReason, Rescheduled};
use crate::ports::Clock as _;
use chrono::{DateTime, TimeZone as _, Timelike as _, Utc};
use chrono_tz::America::New_York;
use serde_json::json;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(20);

/// The default window, as the configuration documents it (`Env` switches it off otherwise).
const DEFAULT_WINDOW: [(&str, &str); 2] = [
    ("SMSRELAY_QUIET_HOURS", "21:00-08:00"),
    ("SMSRELAY_DEFAULT_TIMEZONE", "America/New_York"),
];

/// The first `hour`:00 New York time at least a minute after the real time (the manual clock
/// never starts in the real past).
fn next_new_york(hour: u32) -> DateTime<Utc> {
    let earliest = SystemClock.now() + chrono::Duration::minutes(1);
    let today = earliest.with_timezone(&New_York).date_naive();
    (0..3)
        .filter_map(|d| {
            let day = today + chrono::Days::new(d);
            New_York.from_local_datetime(&day.and_hms_opt(hour, 0, 0)?).single()
        })
        .map(|t| t.with_timezone(&Utc))
        .find(|t| *t >= earliest)
        .expect("an hour:00 within three days")
}

fn ny_quiet() -> serde_json::Value {
    json!({"start": "21:00", "end": "08:00", "timezone": "America/New_York"})
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn deferrals(m: &Message) -> Vec<(DateTime<Utc>, Rescheduled)> {
    m.events
        .iter()
        .filter_map(|e| e.rescheduled.map(|r| (e.at, r)))
        .collect()
}

fn new_york_hm(t: DateTime<Utc>) -> (u32, u32) {
    let local = t.with_timezone(&New_York);
    (local.hour(), local.minute())
}

#[tokio::test]
async fn a_message_five_seconds_ahead_at_two_in_new_york_is_sent_five_seconds_later_despite_the_default_window() {
    // Given 02:00 in New York, inside the configured default window
    let env = Env::at(next_new_york(2), &DEFAULT_WINDOW);
    let window = env
        .config
        .default_quiet_hours
        .clone()
        .expect("the default window is on");
    assert!(window.contains(env.now()), "the test runs inside the default window");
    let send_at = env.now() + chrono::Duration::seconds(5);

    // When a reminder is scheduled five seconds ahead, without quiet_hours
    let out = env
        .send(json!({"to": "+14155550100", "body": "your appointment", "send_at": rfc3339(send_at)}))
        .await;

    // Then it waits for exactly its time, unmoved
    assert_eq!(out.message.status, MessageStatus::Scheduled);
    assert_eq!(
        (out.message.send_at, out.message.due_at),
        (Some(send_at), Some(send_at))
    );
    assert_eq!(out.message.original_send_at, None);
    env.advance(Duration::from_millis(4999));
    let report = env.tick(BUDGET).await.expect("tick");
    assert_eq!(
        (report.due_sent, report.rescheduled, env.provider.call_count()),
        (0, 0, 0)
    );

    env.advance(Duration::from_millis(1));
    let report = env.tick(BUDGET).await.expect("tick");
    assert_eq!(
        (report.due_sent, report.rescheduled, env.provider.call_count()),
        (1, 0, 1),
        "sent 5 s later"
    );
    let m = env.message(&out.message.id).await;
    assert_eq!(m.status, MessageStatus::Sent);
    assert_eq!((m.send_at, m.original_send_at), (Some(send_at), None));
    assert!(deferrals(&m).is_empty(), "{:?}", m.events);
}

#[tokio::test]
async fn a_past_send_at_without_quiet_hours_is_sent_at_once_inside_the_default_window() {
    let env = Env::at(next_new_york(2), &DEFAULT_WINDOW);
    let past = env.now() - chrono::Duration::minutes(10);
    let out = env
        .send(json!({"to": "+14155550101", "body": "late", "send_at": rfc3339(past)}))
        .await;
    assert_eq!(out.message.status, MessageStatus::Sent);
    assert_eq!(env.provider.call_count(), 1);
    assert!(deferrals(&out.message).is_empty());
}

#[tokio::test]
async fn a_future_send_at_inside_the_messages_quiet_hours_is_moved_at_acceptance_visibly() {
    let env = Env::at(next_new_york(2), &DEFAULT_WINDOW);
    let asked = env.now() + chrono::Duration::seconds(5);
    let out = env
        .send(
            json!({"to": "+14155550102", "body": "good morning", "send_at": rfc3339(asked), "quiet_hours": ny_quiet()}),
        )
        .await;

    // The answer already shows the new time, the caller's time and the reason.
    let m = &out.message;
    assert_eq!(m.status, MessageStatus::Scheduled);
    let moved = m.send_at.expect("send_at");
    assert_eq!(new_york_hm(moved), (8, 0), "the window's end, New York time");
    assert!(moved > asked && moved - env.now() < chrono::Duration::hours(7));
    assert_eq!((m.due_at, m.original_send_at), (Some(moved), Some(asked)));
    assert_eq!(
        deferrals(m),
        vec![(
            env.now(),
            Rescheduled {
                reason: RescheduleReason::QuietHours,
                send_at: moved
            }
        )]
    );

    // Nothing goes at the caller's time; it goes at the window's end.
    env.advance(Duration::from_secs(5));
    assert_eq!(env.tick(BUDGET).await.expect("tick").due_sent, 0);
    env.advance_to(moved);
    assert_eq!(env.tick(BUDGET).await.expect("tick").due_sent, 1);
    assert_eq!(env.provider.call_count(), 1);
    let sent = env.message(&m.id).await;
    assert_eq!((sent.status, sent.original_send_at), (MessageStatus::Sent, Some(asked)));
}

#[tokio::test]
async fn a_past_send_at_and_no_send_at_are_held_by_the_messages_quiet_hours_alike() {
    let env = Env::at(next_new_york(2), &[]);
    let past = env.now() - chrono::Duration::minutes(10);
    let with_past = env
        .send(json!({"to": "+14155550103", "body": "a", "send_at": rfc3339(past), "quiet_hours": ny_quiet()}))
        .await
        .message;
    let immediate = env
        .send(json!({"to": "+14155550104", "body": "b", "quiet_hours": ny_quiet()}))
        .await
        .message;
    assert_eq!(env.provider.call_count(), 0, "neither is sent inside the window");
    for (m, callers_time) in [(&with_past, past), (&immediate, env.now())] {
        assert_eq!(m.status, MessageStatus::Scheduled);
        assert_eq!(new_york_hm(m.send_at.expect("send_at")), (8, 0));
        assert_eq!(m.original_send_at, Some(callers_time));
        assert_eq!(deferrals(m).len(), 1);
    }
}

#[tokio::test]
async fn a_message_that_fires_late_into_its_quiet_hours_is_moved_with_a_rescheduled_entry() {
    // Given 20:59:50 New York time, a message due at 20:59:55 (outside the window) with quiet hours
    let env = Env::at(next_new_york(21) - chrono::Duration::seconds(10), &[]);
    let asked = env.now() + chrono::Duration::seconds(5);
    let out = env
        .send(json!({"to": "+14155550105", "body": "evening", "send_at": rfc3339(asked), "quiet_hours": ny_quiet()}))
        .await;
    assert_eq!(
        out.message.send_at,
        Some(asked),
        "not moved at acceptance: outside the window"
    );
    assert!(deferrals(&out.message).is_empty());

    // When the processor only gets to it at 21:00:05
    env.advance(Duration::from_secs(15));
    let report = env.tick(BUDGET).await.expect("tick");

    // Then it is moved to 08:00, visibly, and not sent
    assert_eq!(
        (report.due_sent, report.rescheduled, env.provider.call_count()),
        (0, 1, 0)
    );
    let m = env.message(&out.message.id).await;
    let moved = m.send_at.expect("send_at");
    assert_eq!(new_york_hm(moved), (8, 0));
    assert_eq!(
        (m.status, m.due_at, m.original_send_at),
        (MessageStatus::Scheduled, Some(moved), Some(asked))
    );
    assert_eq!(m.updated_at, env.now(), "updated_at moves");
    assert!(m.updated_at > m.created_at);
    assert_eq!(
        deferrals(&m),
        vec![(
            env.now(),
            Rescheduled {
                reason: RescheduleReason::QuietHours,
                send_at: moved
            }
        )]
    );
}

/// Found by the simulation (issue 13): the window was checked only when a scheduled message
/// fired, so an attempt that came due later (a 429's backoff, a fault between firing and the
/// claim, reconciliation) was sent inside the message's own quiet hours.
#[tokio::test]
async fn a_retry_that_comes_due_inside_the_messages_quiet_hours_waits_for_the_window_to_end() {
    // Given a message scheduled for 20:59 in New York with its own 21:00-08:00 window
    let env = Env::at(
        next_new_york(20),
        &[("SMSRELAY_RETRY_BASE", "5m"), ("SMSRELAY_RETRY_CAP", "5m")],
    );
    let send_at = env.now() + chrono::Duration::minutes(59);
    let out = env
        .send(json!({"to": "+14155550100", "body": "reminder", "send_at": rfc3339(send_at), "quiet_hours": ny_quiet()}))
        .await;
    env.advance_to(send_at);
    // When it fires outside the window, the provider answers 429, and the retry comes due at 21:0x
    env.provider
        .fail_next(crate::ports::ProviderError::RateLimited { retry_after: None });
    env.tick(BUDGET).await.expect("tick");
    let retrying = env.message(&out.message.id).await;
    assert_eq!(retrying.status, MessageStatus::Queued, "{retrying:?}");
    env.advance(Duration::from_secs(600));
    assert!(new_york_hm(env.now()).0 == 21, "inside the window now");
    env.drain_queue().await;
    env.tick(BUDGET).await.expect("tick");
    // Then nothing more reaches the provider inside the window; the retry is moved to 08:00
    assert_eq!(env.provider.call_count(), 1, "only the 429'd attempt");
    let held = env.message(&out.message.id).await;
    assert_eq!(held.status, MessageStatus::Queued);
    let due = held.due_at.expect("due again");
    assert_eq!(new_york_hm(due), (8, 0), "moved to the end of the window");
    assert_eq!(
        deferrals(&held).last().map(|(_, r)| r.reason),
        Some(RescheduleReason::QuietHours)
    );
    // And at 08:00 it is sent
    env.advance_to(due);
    env.drain_queue().await;
    env.tick(BUDGET).await.expect("tick");
    assert_eq!(env.message(&out.message.id).await.status, MessageStatus::Sent);
    assert_eq!(env.provider.call_count(), 2);
}
