//! Scheduled messages and the processor, through smsrelay-local over HTTP (SQLite, simulator).

use crate::helpers::{AppOptions, TestApp};
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde_json::{json, Value};
use std::time::Duration;

fn at(offset_ms: i64) -> String {
    (Utc::now() + chrono::Duration::milliseconds(offset_ms)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn schedule(app: &TestApp, body: Value) -> Value {
    let resp = app.post_json("/v1/messages", &body).send().await.expect("send");
    assert_eq!(resp.status(), 202);
    resp.json().await.expect("json")
}

fn parse(t: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t.as_str().expect("time"))
        .expect("rfc3339")
        .with_timezone(&Utc)
}

async fn sleep_until(t: DateTime<Utc>) {
    while Utc::now() < t {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_message_scheduled_three_seconds_ahead_is_sent_by_the_first_tick_after_it_is_due_and_not_before() {
    let app = TestApp::new().await;
    let m = schedule(
        &app,
        json!({"to": "+14155550100", "body": "reminder", "send_at": at(3000)}),
    )
    .await;
    assert_eq!(m["status"], "scheduled");
    let id = m["id"].as_str().expect("id");
    let report = app.run_processor().await;
    assert_eq!(report["due_sent"], 0);
    assert_eq!(app.message(id).await["status"], "scheduled");
    assert_eq!(app.sim().request_count(), 0, "not before it is due");

    sleep_until(parse(&m["send_at"])).await;
    let report = app.run_processor().await;
    assert_eq!(report["due_sent"], 1, "{report}");
    app.wait_for(id, Duration::from_secs(2), |m| m["status"] == "delivered")
        .await;
    assert_eq!(app.sim().request_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_message_survives_a_restart_and_is_sent_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("local.db");
    let first = TestApp::on(&db, AppOptions::default()).await;
    let m = schedule(
        &first,
        json!({"to": "+14155550100", "body": "survives", "send_at": at(1500)}),
    )
    .await;
    let id = m["id"].as_str().expect("id").to_owned();
    first.stop().await;

    sleep_until(parse(&m["send_at"])).await;
    let second = TestApp::on(
        &db,
        AppOptions {
            tick: Some(Duration::from_millis(100)),
            ..AppOptions::default()
        },
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

/// A zone where it is night (21:00–08:00) right now, from a spread of offsets.
fn night_zone() -> &'static str {
    let zones = [
        "Pacific/Kiritimati",
        "Asia/Tokyo",
        "Asia/Kolkata",
        "Europe/Moscow",
        "Europe/London",
        "America/Sao_Paulo",
        "America/New_York",
        "America/Los_Angeles",
        "Pacific/Honolulu",
    ];
    zones
        .into_iter()
        .find(|z| {
            let tz: chrono_tz::Tz = z.parse().expect("zone");
            let h = Utc::now().with_timezone(&tz).hour();
            // Not within a minute of the window's edges, so the test cannot race the clock.
            !(7..22).contains(&h) && Utc::now().with_timezone(&tz).minute() < 59
        })
        .expect("some zone is at night")
}

#[tokio::test]
async fn a_scheduled_message_in_the_recipients_quiet_hours_is_moved_to_the_end_of_the_window() {
    let app = TestApp::new().await;
    let zone = night_zone();
    let quiet = json!({"start": "21:00", "end": "08:00", "timezone": zone});
    let m = schedule(
        &app,
        json!({"to": "+14155550100", "body": "good morning", "send_at": at(300), "quiet_hours": quiet}),
    )
    .await;
    let id = m["id"].as_str().expect("id");
    sleep_until(parse(&m["send_at"])).await;
    let report = app.run_processor().await;
    assert_eq!(report["rescheduled"], 1, "{report}");
    let after = app.message(id).await;
    assert_eq!(after["status"], "scheduled", "moved, never dropped");
    let tz: chrono_tz::Tz = zone.parse().expect("zone");
    let local = parse(&after["send_at"]).with_timezone(&tz);
    assert_eq!(
        (local.hour(), local.minute()),
        (8, 0),
        "the window's end, local time: {local}"
    );
    assert!(parse(&after["send_at"]) > Utc::now());
    assert!(parse(&after["send_at"]) - Utc::now() < chrono::Duration::hours(11));
    assert_eq!(app.sim().request_count(), 0);

    // An immediate send that brings the same quiet hours is held the same way.
    let now = schedule(
        &app,
        json!({"to": "+14155550101", "body": "now?", "quiet_hours": quiet}),
    )
    .await;
    assert_eq!(now["status"], "scheduled");
    assert_eq!(now["send_at"], after["send_at"]);
    app.stop().await;
}

#[tokio::test]
async fn two_processor_runs_at_the_same_moment_send_each_due_message_once() {
    let app = TestApp::new().await;
    let mut last = Value::Null;
    for i in 0..5 {
        last = schedule(
            &app,
            json!({"to": format!("+1415555020{i}"), "body": "due", "send_at": at(500)}),
        )
        .await;
    }
    sleep_until(parse(&last["send_at"])).await;
    let (a, b) = tokio::join!(app.run_processor(), app.run_processor());
    let sent = a["due_sent"].as_u64().unwrap_or(0) + b["due_sent"].as_u64().unwrap_or(0);
    assert_eq!(sent, 5, "{a} {b}");
    assert_eq!(app.sim().request_count(), 5);
    app.stop().await;
}

#[tokio::test]
async fn canceling_by_ref_cancels_the_linked_scheduled_messages_only() {
    let app = TestApp::new().await;
    let r1 = json!({"type": "calendar_event", "id": "evt_1"});
    let a = schedule(
        &app,
        json!({"to": "+14155550300", "body": "a", "send_at": at(400), "ref": r1}),
    )
    .await;
    schedule(
        &app,
        json!({"to": "+14155550301", "body": "b", "send_at": at(400), "ref": r1}),
    )
    .await;
    let c = schedule(&app, json!({"to": "+14155550302", "body": "c", "send_at": at(400), "ref": {"type": "calendar_event", "id": "evt_2"}})).await;
    let resp = app
        .post_json("/v1/messages/cancel", &json!({"ref": r1}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"canceled": 2}));
    sleep_until(parse(&c["send_at"])).await;
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
    let app = TestApp::with(AppOptions {
        env: vec![("SMSRELAY_DAILY_LIMIT", "2".to_owned())],
        queue_poll: Some(Duration::from_millis(20)),
        ..AppOptions::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = schedule(
            &app,
            json!({"to": "+14155550400", "body": format!("r{i}"), "send_at": at(300)}),
        )
        .await;
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    sleep_until(Utc::now() + chrono::Duration::milliseconds(350)).await;
    app.run_processor().await;
    let mut statuses = Vec::new();
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
        statuses.push(m["status"].as_str().unwrap_or("").to_owned());
    }
    statuses.sort();
    assert_eq!(statuses, ["canceled", "sent", "sent"]);
    assert_eq!(app.sim().request_count(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_processor_that_has_not_run_for_two_intervals_is_reported_and_alerted_once() {
    let app = TestApp::with(AppOptions {
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

    tokio::time::sleep(Duration::from_millis(1200)).await;
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
