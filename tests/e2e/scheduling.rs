//! Scheduled messages and the processor, through smsrelay-local over HTTP (SQLite, simulator), on
//! the manual clock: "later" is `advance`, never a sleep.

use crate::harness::{clock_at_real_time, ClockedApp};
use crate::helpers::AppOptions;
use chrono::{DateTime, TimeZone as _, Timelike, Utc};
use serde_json::{json, Value};
use smsrelay::testing::ManualClock;
use std::sync::Arc;
use std::time::Duration;

fn parse(t: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t.as_str().expect("time"))
        .expect("rfc3339")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_message_scheduled_three_seconds_ahead_is_sent_by_the_first_tick_after_it_is_due_and_not_before() {
    let app = ClockedApp::new().await;
    let m = app
        .send(&json!({"to": "+14155550100", "body": "reminder", "send_at": app.at(Duration::from_secs(3))}))
        .await;
    assert_eq!(m["status"], "scheduled");
    let id = m["id"].as_str().expect("id");
    let report = app.run_processor().await;
    assert_eq!(report["due_sent"], 0);
    assert_eq!(app.message(id).await["status"], "scheduled");
    assert_eq!(app.sim().request_count(), 0, "not before it is due");

    app.advance(Duration::from_millis(2999));
    let report = app.run_processor().await;
    assert_eq!(report["due_sent"], 0, "one millisecond early: {report}");
    assert_eq!(app.sim().request_count(), 0, "not before it is due");

    app.advance(Duration::from_millis(1));
    let report = app.run_processor().await;
    assert_eq!(report["due_sent"], 1, "{report}");
    app.wait_for(id, Duration::from_secs(2), |m| m["status"] == "delivered")
        .await;
    assert_eq!(app.sim().request_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_message_scheduled_two_hours_ahead_is_sent_after_the_clock_moves_two_hours_with_no_real_sleep() {
    let app = ClockedApp::new().await;
    let started = std::time::Instant::now();
    let m = app
        .send(&json!({"to": "+14155550110", "body": "see you at 3", "send_at": app.at(Duration::from_secs(7200))}))
        .await;
    let id = m["id"].as_str().expect("id");
    assert_eq!(m["status"], "scheduled");

    app.advance(Duration::from_secs(3600));
    assert_eq!(app.run_processor().await["due_sent"], 0, "one hour in: not yet");
    app.advance(Duration::from_secs(3600));
    let report = app.run_processor().await;
    assert_eq!(report["due_sent"], 1, "{report}");
    let sent = app.message(id).await;
    assert!(matches!(sent["status"].as_str(), Some("sent" | "delivered")), "{sent}");
    assert_eq!(app.sim().request_count(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "two hours of app time took {:?} of real time",
        started.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_message_survives_a_restart_and_is_sent_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("local.db");
    let clock = clock_at_real_time();
    let first = ClockedApp::on(&db, AppOptions::default(), clock.clone()).await;
    let m = first
        .send(&json!({"to": "+14155550100", "body": "survives", "send_at": first.at(Duration::from_millis(1500))}))
        .await;
    let id = m["id"].as_str().expect("id").to_owned();
    first.stop().await;

    clock.advance(Duration::from_millis(1500));
    let second = ClockedApp::on(
        &db,
        AppOptions {
            tick: Some(Duration::from_millis(100)),
            ..AppOptions::default()
        },
        clock,
    )
    .await;
    // `sent`: the callbacks go to the URL recorded at acceptance (the first process's port).
    second
        .wait_for(&id, Duration::from_secs(5), |m| m["status"] == "sent")
        .await;
    // More ticks change nothing.
    second.run_processor().await;
    second.run_processor().await;
    assert_eq!(second.sim().request_count(), 1, "exactly once");
    second.stop().await;
}

/// The first `hour`:00 local time in `zone` at least a minute after the real time (the manual
/// clock may not start in the real past; see `harness`; the minute leaves room to start a little
/// before it).
fn next_local(zone: chrono_tz::Tz, hour: u32) -> DateTime<Utc> {
    let earliest = Utc::now() + chrono::Duration::minutes(1);
    let today = earliest.with_timezone(&zone).date_naive();
    (0..3)
        .filter_map(|d| {
            let day = today + chrono::Days::new(d);
            zone.from_local_datetime(&day.and_hms_opt(hour, 0, 0)?).single()
        })
        .map(|t| t.with_timezone(&Utc))
        .find(|t| *t >= earliest)
        .expect("an hour:00 within three days")
}

/// The `rescheduled` entries of a message's history.
fn deferrals(m: &Value) -> Vec<Value> {
    m["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["event"] == "rescheduled").cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_reminder_five_seconds_ahead_at_two_in_new_york_is_sent_five_seconds_later_under_the_default_window() {
    // Given 02:00 New York time and the default quiet hours as documented (on)
    let ny = chrono_tz::America::New_York;
    let app = ClockedApp::with_clock(
        AppOptions {
            env: vec![
                ("SMSRELAY_QUIET_HOURS", "21:00-08:00".to_owned()),
                ("SMSRELAY_DEFAULT_TIMEZONE", "America/New_York".to_owned()),
            ],
            ..AppOptions::default()
        },
        Arc::new(ManualClock::new(next_local(ny, 2))),
    )
    .await;
    // When a reminder is scheduled 5 s ahead without quiet_hours
    let asked = app.at(Duration::from_secs(5));
    let m = app
        .send(&json!({"to": "+14155550100", "body": "your appointment", "send_at": asked}))
        .await;
    // Then it keeps its time and is sent 5 s later, not at 08:00
    assert_eq!(
        (m["status"].as_str(), m["send_at"].as_str()),
        (Some("scheduled"), Some(asked.as_str()))
    );
    assert_eq!(m["original_send_at"], Value::Null);
    let id = m["id"].as_str().expect("id");
    app.advance(Duration::from_millis(4999));
    assert_eq!(app.run_processor().await["due_sent"], 0);
    app.advance(Duration::from_millis(1));
    let report = app.run_processor().await;
    assert_eq!(
        (report["due_sent"].as_u64(), report["rescheduled"].as_u64()),
        (Some(1), Some(0)),
        "{report}"
    );
    assert_eq!(app.sim().request_count(), 1);
    let sent = app.message(id).await;
    assert_eq!(sent["send_at"], asked.as_str());
    assert!(deferrals(&sent).is_empty(), "{sent}");

    // And a send_at in the past is sent at once, inside the same window
    let past = app
        .send(&json!({"to": "+14155550101", "body": "late", "send_at": app.at(Duration::ZERO)}))
        .await;
    assert!(matches!(past["status"].as_str(), Some("sent" | "delivered")), "{past}");
    assert_eq!(app.sim().request_count(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_message_in_the_recipients_quiet_hours_is_moved_to_the_end_of_the_window() {
    // 02:00 local in a half-hour zone (Kolkata, which made the real-time version flaky) and in a
    // whole-hour one: the clock says where in the night we are, not the machine.
    for zone in ["Asia/Kolkata", "America/New_York"] {
        let tz: chrono_tz::Tz = zone.parse().expect("zone");
        let app = ClockedApp::with_clock(AppOptions::default(), Arc::new(ManualClock::new(next_local(tz, 2)))).await;
        let quiet = json!({"start": "21:00", "end": "08:00", "timezone": zone});
        let asked = app.at(Duration::from_millis(300));
        let m = app
            .send(&json!({"to": "+14155550100", "body": "good morning", "send_at": asked, "quiet_hours": quiet}))
            .await;
        // The 202 already shows the move: the new send_at, the caller's time, the reason.
        assert_eq!(m["status"], "scheduled", "moved, never dropped");
        let local = parse(&m["send_at"]).with_timezone(&tz);
        assert_eq!(
            (local.hour(), local.minute()),
            (8, 0),
            "the window's end, local time: {local}"
        );
        assert!(parse(&m["send_at"]) > app.now());
        assert!(parse(&m["send_at"]) - app.now() < chrono::Duration::hours(11));
        assert_eq!(m["original_send_at"], asked.as_str(), "{zone}: {m}");
        assert_eq!(
            deferrals(&m),
            [
                json!({"status": "scheduled", "at": m["created_at"], "event": "rescheduled",
                    "reason": "quiet_hours", "send_at": m["send_at"]})
            ],
            "{zone}"
        );
        let id = m["id"].as_str().expect("id");
        // Nothing goes at the caller's time.
        app.advance(Duration::from_millis(300));
        let report = app.run_processor().await;
        assert_eq!(report["due_sent"], 0, "{zone}: {report}");
        assert_eq!(app.message(id).await["send_at"], m["send_at"]);
        assert_eq!(app.sim().request_count(), 0);

        // An immediate send that brings the same quiet hours is held the same way.
        let now = app
            .send(&json!({"to": "+14155550101", "body": "now?", "quiet_hours": quiet}))
            .await;
        assert_eq!(now["status"], "scheduled");
        assert_eq!(now["send_at"], m["send_at"]);
        assert_eq!(now["original_send_at"], now["created_at"], "the caller's time is now");
        assert_eq!(deferrals(&now).len(), 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_scheduled_message_that_fires_into_its_quiet_hours_is_moved_visibly_when_it_fires() {
    // Given 20:59:59 in New York and a message due at 20:59:59.5, outside its quiet hours
    let ny = chrono_tz::America::New_York;
    let app = ClockedApp::with_clock(
        AppOptions::default(),
        Arc::new(ManualClock::new(next_local(ny, 21) - chrono::Duration::seconds(1))),
    )
    .await;
    let quiet = json!({"start": "21:00", "end": "08:00", "timezone": "America/New_York"});
    let asked = app.at(Duration::from_millis(500));
    let m = app
        .send(&json!({"to": "+14155550102", "body": "evening", "send_at": asked, "quiet_hours": quiet}))
        .await;
    assert_eq!(m["send_at"], asked.as_str(), "not moved at acceptance");
    assert!(deferrals(&m).is_empty());
    let id = m["id"].as_str().expect("id");

    // When the processor gets to it only at 21:00:01
    app.advance(Duration::from_secs(2));
    let report = app.run_processor().await;

    // Then it is moved to 08:00, with the caller's time, the reason and a new updated_at
    assert_eq!(
        (report["due_sent"].as_u64(), report["rescheduled"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    let after = app.message(id).await;
    let local = parse(&after["send_at"]).with_timezone(&ny);
    assert_eq!((local.hour(), local.minute()), (8, 0), "{after}");
    assert_eq!(after["status"], "scheduled");
    assert_eq!(after["original_send_at"], asked.as_str());
    assert_eq!(parse(&after["updated_at"]), app.now(), "updated_at moves");
    let moved = deferrals(&after);
    assert_eq!(moved.len(), 1, "{after}");
    assert_eq!(
        (moved[0]["reason"].as_str(), &moved[0]["send_at"]),
        (Some("quiet_hours"), &after["send_at"])
    );
    assert_eq!(parse(&moved[0]["at"]), app.now());
    assert_eq!(app.sim().request_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn two_processor_runs_at_the_same_moment_send_each_due_message_once() {
    let app = ClockedApp::new().await;
    for i in 0..5 {
        app.send(
            &json!({"to": format!("+1415555020{i}"), "body": "due", "send_at": app.at(Duration::from_millis(500))}),
        )
        .await;
    }
    app.advance(Duration::from_millis(500));
    let (a, b) = tokio::join!(app.run_processor(), app.run_processor());
    let sent = a["due_sent"].as_u64().unwrap_or(0) + b["due_sent"].as_u64().unwrap_or(0);
    assert_eq!(sent, 5, "{a} {b}");
    assert_eq!(app.sim().request_count(), 5);
    app.stop().await;
}

#[tokio::test]
async fn canceling_by_ref_cancels_the_linked_scheduled_messages_only() {
    let app = ClockedApp::new().await;
    let soon = app.at(Duration::from_millis(400));
    let r1 = json!({"type": "calendar_event", "id": "evt_1"});
    let a = app
        .send(&json!({"to": "+14155550300", "body": "a", "send_at": soon, "ref": r1}))
        .await;
    app.send(&json!({"to": "+14155550301", "body": "b", "send_at": soon, "ref": r1}))
        .await;
    let c = app.send(&json!({"to": "+14155550302", "body": "c", "send_at": soon, "ref": {"type": "calendar_event", "id": "evt_2"}})).await;
    let resp = app
        .post_json("/v1/messages/cancel", &json!({"ref": r1}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"canceled": 2}));
    app.advance(Duration::from_millis(400));
    app.run_processor().await;
    assert_eq!(app.message(a["id"].as_str().expect("id")).await["status"], "canceled");
    app.wait_for(c["id"].as_str().expect("id"), Duration::from_secs(2), |m| {
        m["status"] == "delivered"
    })
    .await;
    assert_eq!(app.sim().request_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn over_the_daily_limit_a_scheduled_message_is_canceled_with_the_reason() {
    let app = ClockedApp::with(AppOptions {
        env: vec![("SMSRELAY_DAILY_LIMIT", "2".to_owned())],
        queue_poll: Some(Duration::from_millis(20)),
        ..AppOptions::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = app
            .send(
                &json!({"to": "+14155550400", "body": format!("r{i}"), "send_at": app.at(Duration::from_millis(300))}),
            )
            .await;
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    app.advance(Duration::from_millis(350));
    app.run_processor().await;
    let mut statuses = Vec::new();
    let mut seen = Vec::new();
    for id in &ids {
        let m = app.message(id).await;
        if m["status"] == "canceled" {
            assert!(
                m["error"]["message"]
                    .as_str()
                    .is_some_and(|t| t.contains("daily limit")),
                "{m}"
            );
        }
        // A sent message is `sent` in its history even when the simulator's `delivered` callback
        // (real milliseconds later) has already moved it on by the time it is read.
        let reached_sent = m["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["status"] == "sent"));
        let status = if reached_sent && m["status"] == "delivered" {
            "sent"
        } else {
            m["status"].as_str().unwrap_or("")
        };
        statuses.push(status.to_owned());
        seen.push(m);
    }
    statuses.sort();
    assert_eq!(statuses, ["canceled", "sent", "sent"], "{seen:?}");
    assert_eq!(app.sim().request_count(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_processor_that_has_not_run_for_two_intervals_is_reported_and_alerted_once() {
    let app = ClockedApp::with(AppOptions {
        env: vec![("SMSRELAY_PROCESSOR_INTERVAL", "500ms".to_owned())],
        ..AppOptions::default()
    })
    .await;
    app.run_processor().await;
    let health: Value = app
        .get("/v1/health")
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["metrics"]["processor_last_run_at"].is_string());

    app.advance(Duration::from_millis(1200));
    for _ in 0..3 {
        let health: Value = app
            .get("/v1/health")
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("json");
        assert_eq!(health["status"], "degraded", "{health}");
        assert!(health["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a == "processor_not_running"));
        assert!(health["metrics"]["processor_lag_seconds"].as_i64().expect("lag") >= 1);
    }
    let public: Value = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(public["status"], "degraded");
    let raised = app
        .alerts
        .alerts()
        .iter()
        .filter(|a| a.kind == smsrelay::ports::AlertKind::ProcessorNotRunning)
        .count();
    assert_eq!(raised, 1, "alerted once, not once per check");
    app.stop().await;
}
