//! Retries, reconciliation, idempotency, consent and limits, and the operations API, through
//! smsrelay-local over HTTP (SQLite store and queue) against a Twilio-shaped server. Backoff and
//! reconciliation run on the manual clock (`ClockedApp::drive`): no real sleep for time to pass.

use crate::harness::ClockedApp;
use crate::helpers::{AppOptions, TestApp, API_KEY, TWILIO_TOKEN};
use crate::twilio_mock::{creates, error_json, message_json, on_create, on_list};
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::MockServer;

/// The retry settings of these tests: reconcile at once, back off 50–200 ms.
fn retry_env() -> Vec<(&'static str, String)> {
    vec![
        ("SMSRELAY_RECONCILE_AFTER", "0s".to_owned()),
        ("SMSRELAY_RETRY_BASE", "50ms".to_owned()),
        ("SMSRELAY_RETRY_CAP", "200ms".to_owned()),
    ]
}

/// Against `twilio` on real time, with the queue worker on (for tests of concurrency, not time).
async fn app_against(twilio: &MockServer) -> TestApp {
    TestApp::with(AppOptions {
        twilio_base: Some(twilio.uri()),
        env: retry_env(),
        queue_poll: Some(Duration::from_millis(20)),
        ..AppOptions::default()
    })
    .await
}

/// Against `twilio` on the manual clock; the queue and the processor run when `drive` says so.
async fn clocked_against(twilio: &MockServer) -> ClockedApp {
    ClockedApp::with(AppOptions {
        twilio_base: Some(twilio.uri()),
        env: retry_env(),
        ..AppOptions::default()
    })
    .await
}

/// Until `pred` holds for the message: advance past the longest backoff (the retry cap), run the
/// retry queue and the processor.
async fn drive(app: &ClockedApp, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    app.drive(id, Duration::from_millis(200), pred).await
}

#[tokio::test]
async fn two_500s_then_success_is_delivered_with_exactly_three_create_requests() {
    let twilio = MockServer::start().await;
    on_create(
        &twilio,
        500,
        error_json(20500, "Internal Server Error", 500),
        Some(2),
        1,
    )
    .await;
    on_create(
        &twilio,
        201,
        message_json("SM11111111111111111111111111111111", "+14155550100", "hi", "queued"),
        None,
        2,
    )
    .await;
    on_list(&twilio, vec![]).await; // reconciliation: Twilio never got the 500'd attempts
    let app = clocked_against(&twilio).await;

    let m = app.send(&json!({"to": "+14155550100", "body": "hi"})).await;
    assert_eq!(
        m["status"], "sending",
        "a 5xx is ambiguous: reconciled before any resend"
    );
    let id = m["id"].as_str().expect("id").to_owned();
    let sent = drive(&app, &id, |m| m["status"] == "sent").await;
    assert_eq!(sent["attempts"], 3);
    assert_eq!(sent["provider_sid"], "SM11111111111111111111111111111111");

    let resp = app
        .post_status(
            Some(&id),
            &[
                ("MessageSid", "SM11111111111111111111111111111111"),
                ("MessageStatus", "delivered"),
            ],
            TWILIO_TOKEN,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.message(&id).await["status"], "delivered");
    assert_eq!(creates(&twilio).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn a_message_that_keeps_failing_ends_failed_and_listed_and_an_operator_retry_sends_it() {
    let twilio = MockServer::start().await;
    on_create(&twilio, 429, error_json(20429, "Too Many Requests", 429), Some(3), 1).await;
    let app = clocked_against(&twilio).await;

    let m = app.send(&json!({"to": "+14155550100", "body": "hi"})).await;
    assert_eq!(
        m["status"], "queued",
        "a 429 was never processed: queued for a retry at once"
    );
    let id = m["id"].as_str().expect("id").to_owned();
    let failed = drive(&app, &id, |m| m["status"] == "failed").await;
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["error"]["code"], 20429);
    assert_eq!(creates(&twilio).await, 3);

    let list: Value = app
        .get("/v1/failed-messages")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"][0]["id"], id.as_str());

    on_create(
        &twilio,
        201,
        message_json("SM22222222222222222222222222222222", "+14155550100", "hi", "queued"),
        None,
        2,
    )
    .await;
    let resp = app
        .http
        .post(format!("{}/v1/failed-messages/{id}/retry", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("retry");
    assert_eq!(resp.status(), 202);
    let retried: Value = resp.json().await.expect("json");
    assert_eq!(retried["status"], "queued");
    let sent = drive(&app, &id, |m| m["status"] == "sent").await;
    assert_eq!(sent["attempts"], 1, "a fresh attempt budget");
    assert_eq!(creates(&twilio).await, 4);
    let list: Value = app
        .get("/v1/failed-messages")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"], json!([]), "no longer listed");
    app.stop().await;
}

#[tokio::test]
async fn a_retryable_delivery_failure_starts_a_fresh_attempt_and_the_old_sid_is_ignored() {
    let twilio = MockServer::start().await;
    on_create(
        &twilio,
        201,
        message_json("SM33333333333333333333333333333333", "+14155550100", "hi", "queued"),
        Some(1),
        1,
    )
    .await;
    on_create(
        &twilio,
        201,
        message_json("SM44444444444444444444444444444444", "+14155550100", "hi", "queued"),
        None,
        2,
    )
    .await;
    let app = clocked_against(&twilio).await;
    let m = app.send(&json!({"to": "+14155550100", "body": "hi"})).await;
    let id = m["id"].as_str().expect("id").to_owned();
    let old = [
        ("MessageSid", "SM33333333333333333333333333333333"),
        ("ErrorCode", "30003"),
    ];
    let resp = app
        .post_status(
            Some(&id),
            &[old[0], ("MessageStatus", "undelivered"), old[1]],
            TWILIO_TOKEN,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resent = drive(&app, &id, |m| m["status"] == "sent" && m["attempts"] == 2).await;
    assert_eq!(resent["provider_sid"], "SM44444444444444444444444444444444");
    // A late report about the first attempt changes nothing.
    app.post_status(Some(&id), &[old[0], ("MessageStatus", "delivered")], TWILIO_TOKEN)
        .await;
    assert_eq!(app.message(&id).await["status"], "sent");
    assert_eq!(creates(&twilio).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn six_sends_to_one_number_inside_an_hour_send_five_and_hold_the_sixth() {
    let app = TestApp::new().await;
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for i in 0..6 {
        last = app.send("+14155550160", &format!("reminder {i}")).await;
        statuses.push(last["status"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(statuses, ["sent", "sent", "sent", "sent", "sent", "rate_limited"]);
    assert_eq!(app.sim().request_count(), 5);
    let list: Value = app
        .get("/v1/failed-messages")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"][0]["id"], last["id"]);
    assert_eq!(list["data"][0]["status"], "rate_limited");
    // An operator retry goes past the hourly limit.
    let id = last["id"].as_str().expect("id");
    let resp = app
        .http
        .post(format!("{}/v1/failed-messages/{id}/retry", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("retry");
    assert_eq!(resp.status(), 202);
    app.wait_for(id, Duration::from_secs(3), |m| m["status"] == "delivered")
        .await;
    assert_eq!(app.sim().request_count(), 6);
    app.stop().await;
}

#[tokio::test]
async fn after_a_21610_the_next_send_is_suppressed_without_a_provider_request() {
    let app = TestApp::new().await;
    let first = app.send("+15005550004", "hi").await;
    assert_eq!(first["status"], "failed");
    assert_eq!(first["error"]["code"], 21610);
    let requests = app.sim().request_count();
    let second = app.send("+15005550004", "hi again").await;
    assert_eq!(second["status"], "suppressed");
    assert_eq!(
        app.sim().request_count(),
        requests,
        "no provider request for an opted-out number"
    );
    // Nor may an operator retry send to it.
    let id = first["id"].as_str().expect("id");
    let resp = app
        .http
        .post(format!("{}/v1/failed-messages/{id}/retry", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("retry");
    assert_eq!(resp.status(), 422);
    assert_eq!(app.sim().request_count(), requests);
    // The refusal is the evidence: an entry of channel provider_error in the consent history.
    let consent: serde_json::Value = app
        .http
        .get(format!("{}/v1/consent/+15005550004", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("consent")
        .json()
        .await
        .expect("json");
    assert_eq!(consent["status"], "opted_out");
    let history = consent["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{consent}");
    assert_eq!(history[0]["channel"], "provider_error");
    assert_eq!(history[0]["status"], "opted_out");
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_refuses_a_different_body_and_blocks_while_in_flight() {
    let twilio = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(message_json(
                    "SM55555555555555555555555555555555",
                    "+14155550100",
                    "hi",
                    "queued",
                ))
                .set_delay(Duration::from_millis(700)),
        )
        .mount(&twilio)
        .await;
    let app = app_against(&twilio).await;
    let body = json!({"to": "+14155550100", "body": "hi"});
    let post = |b: &Value| {
        app.post_json("/v1/messages", b)
            .header("Idempotency-Key", "order-42-reminder")
            .send()
    };

    let (first, during) = tokio::join!(post(&body), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        post(&body).await
    });
    let first = first.expect("first");
    let during = during.expect("during");
    assert_eq!(during.status(), 409);
    assert_eq!(
        during.json::<Value>().await.expect("json")["error"]["code"],
        "request_in_progress"
    );
    assert_eq!(first.status(), 202);
    let first_body = first.text().await.expect("body");

    let replay = post(&body).await.expect("replay");
    assert_eq!(replay.status(), 202);
    assert_eq!(
        replay.headers().get("idempotent-replayed").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replay.text().await.expect("body"), first_body, "byte for byte");

    let other = post(&json!({"to": "+14155550100", "body": "something else"}))
        .await
        .expect("other");
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.expect("json")["error"]["code"],
        "idempotency_key_reused"
    );
    assert_eq!(creates(&twilio).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_queued_message_can_be_canceled_but_a_sent_one_cannot() {
    let twilio = MockServer::start().await;
    on_create(&twilio, 429, error_json(20429, "Too Many Requests", 429), None, 1).await;
    let app = ClockedApp::with(AppOptions {
        twilio_base: Some(twilio.uri()),
        env: vec![
            ("SMSRELAY_RETRY_BASE", "1h".to_owned()),
            ("SMSRELAY_RETRY_CAP", "1h".to_owned()),
        ],
        ..AppOptions::default()
    })
    .await;
    let m = app.send(&json!({"to": "+14155550100", "body": "hi"})).await;
    assert_eq!(m["status"], "queued");
    let id = m["id"].as_str().expect("id");
    let resp = app
        .http
        .post(format!("{}/v1/messages/{id}/cancel", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json")["status"], "canceled");
    // The queued retry comes due an hour later, finds it canceled and sends nothing.
    app.advance(Duration::from_secs(3600));
    app.drain_queue().await;
    app.run_processor().await;
    assert_eq!(creates(&twilio).await, 1);

    let sim = TestApp::new().await;
    let sent = sim.send("+14155550100", "hi").await;
    let sid = sent["id"].as_str().expect("id");
    let resp = sim
        .http
        .post(format!("{}/v1/messages/{sid}/cancel", sim.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"]["code"],
        "already_sent"
    );
    sim.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn removing_a_failed_message_takes_it_off_the_list_but_keeps_the_record() {
    let app = TestApp::new().await;
    let m = app.send("+15005550001", "hi").await;
    let id = m["id"].as_str().expect("id");
    let resp = app
        .http
        .delete(format!("{}/v1/failed-messages/{id}", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let list: Value = app
        .get("/v1/failed-messages")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"], json!([]));
    assert_eq!(app.message(id).await["status"], "failed");
    let again = app
        .http
        .delete(format!("{}/v1/failed-messages/{id}", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), 404);
    app.stop().await;
}
