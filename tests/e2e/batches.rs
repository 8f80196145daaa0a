//! Batches, alerts and health through smsrelay-local over HTTP (SQLite, simulator).

use crate::helpers::TestApp;
use serde_json::{json, Value};
use smsrelay::ports::AlertKind;
use std::time::Duration;

async fn post_batch(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app.post_json("/v1/batches", body).send().await.expect("batch");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_batch_reports_a_result_per_item_in_one_call() {
    let app = TestApp::new().await;
    let (status, b) = post_batch(
        &app,
        &json!({"messages": [
            {"to": "+14155550501", "body": "one", "ref": {"type": "job", "id": "j1"}},
            {"to": "+14155550502", "body": "two"},
            {"to": "12345", "body": "bad number"},
            {"to": "+15005550001", "body": "permanently failing"},
            {"to": "+14155550503", "body": "three", "metadata": {"k": "v"}}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        (
            b["total"].as_u64(),
            b["sent"].as_u64(),
            b["failed"].as_u64(),
            b["rejected"].as_u64(),
            b["queued"].as_u64()
        ),
        (Some(5), Some(3), Some(1), Some(1), Some(0))
    );
    let r = b["results"].as_array().expect("results");
    assert_eq!(r.len(), 5);
    for (i, item) in r.iter().enumerate() {
        assert_eq!(item["index"], i, "{item}");
    }
    for i in [0, 1, 4] {
        assert_eq!(r[i]["status"], "sent");
        assert!(r[i]["provider_sid"].as_str().is_some_and(|s| s.starts_with("SM")));
        assert!(r[i]["message_id"].as_str().is_some_and(|s| s.starts_with("msg_")));
    }
    assert_eq!(r[2]["status"], "rejected");
    assert_eq!(r[2]["error"]["code"], "invalid_phone");
    assert_eq!(r[2]["error"]["field"], "to");
    assert!(r[2].get("message_id").is_none(), "a rejected item is not recorded");
    assert_eq!(r[3]["status"], "failed");
    // `code` is a string in every result; Twilio's number is `provider_code`.
    assert_eq!(r[3]["error"]["code"], "provider_error");
    assert_eq!(r[3]["error"]["provider_code"], 21211);
    assert_eq!(
        app.sim().request_count(),
        4,
        "the rejected item never reached the provider"
    );

    let id = b["batch_id"].as_str().expect("batch id");
    let summary = wait_until_completed(&app, id, |_| true).await;
    assert_eq!(summary["sent"], 3);
    assert_eq!(summary["failure_rate"], 0.4);
    assert_eq!(summary["alerted"], false);
    // The one timestamp format of the API (as `created_at` of a message).
    let created = summary["created_at"].as_str().expect("created_at");
    let parsed = chrono::DateTime::parse_from_rfc3339(created).expect("RFC 3339");
    assert_eq!(
        created,
        smsrelay::entrypoints::resources::timestamp(&parsed.with_timezone(&chrono::Utc)),
        "{summary}"
    );
    assert!(
        created.ends_with('Z') && created.len() == "2026-11-22T15:00:00.000Z".len(),
        "{created}"
    );
    let msg = app.message(r[4]["message_id"].as_str().expect("id")).await;
    assert_eq!(msg["metadata"], json!({"k": "v"}));
    app.stop().await;
}

/// The batch's summary once it is `completed` and `also` holds. A batch completes when its last
/// item is final, which the tallies may record a moment after the answer (the simulator's
/// callbacks run beside it), so this polls, for at most ten seconds.
async fn wait_until_completed(app: &TestApp, id: &str, also: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let summary: Value = app.get_json(&format!("/v1/batches/{id}")).await;
        if summary["state"] == "completed" && also(&summary) {
            return summary;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never completed: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_batch_where_most_sends_fail_raises_exactly_one_alert() {
    let app = TestApp::new().await;
    let mut messages: Vec<Value> = (0..4).map(|_| json!({"to": "+15005550001", "body": "x"})).collect();
    messages.push(json!({"to": "+14155550600", "body": "ok"}));
    let (status, b) = post_batch(&app, &json!({ "messages": messages })).await;
    assert_eq!(status, 200);
    assert_eq!(b["failed"], 4);
    let id = b["batch_id"].as_str().expect("id");
    wait_until_completed(&app, id, |s| s["alerted"] == true).await;
    let batch_alerts: Vec<_> = app
        .alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::BatchFailureRate)
        .collect();
    assert_eq!(
        batch_alerts.len(),
        1,
        "one alert for the batch, not one per message: {b}"
    );
    assert_eq!(
        app.alerts.alerts().len(),
        1,
        "and none of the items alerts on its own: {:?}",
        app.alerts.alerts()
    );
    assert_eq!(batch_alerts[0].subject, id);
    assert_eq!(batch_alerts[0].counts["failed"], 4);
    assert!(
        !serde_json::to_string(&batch_alerts[0])
            .expect("json")
            .contains("15005550001"),
        "counts, not numbers"
    );
    let summary: Value = app.get_json(&format!("/v1/batches/{id}")).await;
    assert_eq!(summary["alerted"], true);
    assert!(app.events.events().iter().any(|e| e.detail_type == "batch.completed"));
    app.stop().await;
}

#[tokio::test]
async fn oversized_batches_and_bad_shapes_are_refused_before_anything_is_stored() {
    let app = TestApp::new().await;
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"to": format!("+1415555{:04}", i % 10000), "body": "x"}))
        .collect();
    let (status, body) = post_batch(&app, &json!({ "messages": many })).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = post_batch(&app, &json!({"messages": []})).await;
    assert_eq!(status, 400);
    let (status, _) = post_batch(&app, &json!({"nothing": true})).await;
    assert_eq!(status, 400);
    assert_eq!(app.store.total_calls(), 0);
    assert_eq!(app.sim().request_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_batch_with_the_same_key_is_a_replay() {
    let app = TestApp::new().await;
    let body = json!({"messages": [{"to": "+14155550700", "body": "once"}]});
    let send = || {
        app.post_json("/v1/batches", &body)
            .header("Idempotency-Key", "batch-1")
            .send()
    };
    let first = send().await.expect("first");
    let first_body = first.text().await.expect("body");
    let again = send().await.expect("again");
    assert_eq!(
        again.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(again.text().await.expect("body"), first_body);
    assert_eq!(app.sim().request_count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn health_reports_what_happened() {
    let app = TestApp::new().await;
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(
                app.send(&format!("+1415555080{i}"), "hi").await["id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            );
        }
        v
    };
    app.send("+15005550001", "fails").await;
    for id in &ids {
        app.wait_for(id, Duration::from_secs(2), |m| m["status"] == "delivered")
            .await;
    }
    // Counters are written right after each status change: poll briefly instead of racing them.
    let start = std::time::Instant::now();
    let h: Value = loop {
        let h: Value = app
            .get("/v1/health")
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("json");
        if h["metrics"]["delivery_rate_24h"] == 0.75 || start.elapsed() > Duration::from_secs(3) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let m = &h["metrics"];
    // Counts are integers (`3`, not `3.0`); rates stay fractions.
    assert!(m["sent_last_hour"].is_u64() && m["failed_last_24h"].is_u64(), "{h}");
    assert_eq!(m["sent_last_hour"], 3, "{h}");
    assert_eq!(m["failed_last_24h"], 1);
    assert_eq!(m["delivery_rate_24h"], 0.75, "3 delivered of 4 finished");
    assert_eq!(m["pending_retries"], 0);
    assert_eq!(m["dead_letters"], 0);
    let resp = app
        .http
        .get(format!("{}/v1/health", app.url))
        .send()
        .await
        .expect("no key");
    assert_eq!(resp.status(), 401, "the detailed health needs the API key");
    app.stop().await;
}

#[tokio::test]
async fn health_counts_pending_retries_and_dead_letters_and_the_dead_letter_alert_is_raised_once() {
    use smsrelay::ports::{JobPayload, JobQueue};
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("local.db");
    let twilio = wiremock::MockServer::start().await;
    crate::twilio_mock::on_create(
        &twilio,
        429,
        crate::twilio_mock::error_json(20429, "Too Many Requests", 429),
        None,
        1,
    )
    .await;
    let app = TestApp::on(
        &db,
        crate::helpers::AppOptions {
            twilio_base: Some(twilio.uri()),
            env: vec![
                ("SMSRELAY_RETRY_BASE", "1h".to_owned()),
                ("SMSRELAY_RETRY_CAP", "1h".to_owned()),
            ],
            ..crate::helpers::AppOptions::default()
        },
    )
    .await;
    let m = app.send("+14155550990", "later").await;
    assert_eq!(m["status"], "queued");
    let h: Value = app
        .get("/v1/health")
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(h["metrics"]["pending_retries"], 1, "{h}");
    assert_eq!(h["metrics"]["dead_letters"], 0);

    // A job that keeps failing ends in the dead-letter state after the queue's max receives.
    let clock: std::sync::Arc<dyn smsrelay::ports::Clock> =
        std::sync::Arc::new(smsrelay::adapters::system_clock::SystemClock);
    let queue =
        smsrelay::adapters::sqlite::SqliteJobQueue::open(&db, smsrelay_local::MAX_RECEIVES, clock).expect("queue");
    let job = JobPayload::send_attempt(
        smsrelay::domain::MessageId::parse(m["id"].as_str().expect("id")).expect("id"),
        chrono::Utc::now(),
    );
    queue.enqueue(&job, Duration::ZERO).await.expect("enqueue");
    for _ in 0..=smsrelay_local::MAX_RECEIVES {
        queue.receive(10, Duration::ZERO).await.expect("receive");
    }
    let h: Value = app
        .get("/v1/health")
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(h["metrics"]["dead_letters"], 1, "{h}");
    assert_eq!(h["status"], "degraded");
    app.run_processor().await;
    app.run_processor().await;
    let raised = app
        .alerts
        .alerts()
        .iter()
        .filter(|a| a.kind == AlertKind::DeadLetter && a.subject == "retry_dlq")
        .count();
    assert_eq!(raised, 1, "one dead-letter alert, however many ticks see it");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_from_one_sender_is_paced_on_the_clock_not_on_real_time() {
    // Given two messages per second for the sender (slots 1/(2 × 0.99) s apart)
    let app = crate::harness::ClockedApp::with(crate::helpers::AppOptions {
        env: vec![("SMSRELAY_SENDER_MPS", "2".to_owned())],
        ..crate::helpers::AppOptions::default()
    })
    .await;
    let messages: Vec<Value> = (0..5)
        .map(|i| json!({"to": format!("+1415555091{i}"), "body": "paced"}))
        .collect();
    // When the batch is sent, the clock moving only when every item waits for its slot
    let real = std::time::Instant::now();
    let (status, b, moved) = app.post_batch(&json!({ "messages": messages })).await;
    // Then all five were sent, four gaps of app time apart, without sleeping through them
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["sent"], 5, "{b}");
    let gap = Duration::from_secs_f64(1.0 / (2.0 * 0.99));
    assert!(moved >= gap * 4 && moved < gap * 5, "the clock moved {moved:?}");
    assert!(real.elapsed() < moved, "paced on real time: {:?}", real.elapsed());
    assert_eq!(app.sim().request_count(), 5);
    app.stop().await;
}
