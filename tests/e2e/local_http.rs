//! smsrelay-local over real HTTP: SQLite store, Twilio simulator posting signed callbacks to itself.

use crate::helpers::{TestApp, API_KEY};
use serde_json::{json, Value};
use smsrelay::config::SIMULATOR_AUTH_TOKEN;
use std::time::Duration;

fn statuses(m: &Value) -> Vec<String> {
    m["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn a_message_reaches_delivered_in_the_simulator_within_a_second() {
    let app = TestApp::new().await;
    let m = app.send("+14155550100", "Your technician is on the way").await;
    assert_eq!(m["status"], "sent");
    assert!(m["provider_sid"].as_str().expect("sid").starts_with("SM"));
    assert_eq!(m["segments"], 1);
    assert_eq!(m["encoding"], "GSM-7");
    let id = m["id"].as_str().expect("id");
    let done = app
        .wait_for(id, Duration::from_secs(1), |m| m["status"] == "delivered")
        .await;
    assert_eq!(statuses(&done), ["queued", "sending", "sent", "delivered"]);
    assert_eq!(done["attempts"], 1);
    assert_eq!(app.sim().sent_count(), 1);
    // Events are published right after the status write: give the last one a moment.
    let start = std::time::Instant::now();
    while app.events.events().len() < 2 && start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kinds: Vec<String> = app.events.events().iter().map(|e| e.detail_type.clone()).collect();
    assert_eq!(kinds, ["message.sent", "message.delivered"], "domain events");
    assert!(
        app.events
            .events()
            .iter()
            .all(|e| !e.detail.to_string().contains("14155550100")),
        "no numbers in events"
    );
    app.stop().await;
}

#[tokio::test]
async fn national_format_numbers_are_normalised_to_e164() {
    let app = TestApp::new().await;
    let m = app.send("(415) 555-0177", "hi").await;
    assert_eq!(m["to"], "+14155550177");
    app.stop().await;
}

#[tokio::test]
async fn a_permanent_provider_error_ends_failed_with_its_code_after_one_attempt() {
    let app = TestApp::new().await;
    let m = app.send("+15005550001", "hello").await;
    assert_eq!(m["status"], "failed");
    assert_eq!(m["error"]["code"], 21211);
    assert_eq!(m["attempts"], 1);
    let again = app.message(m["id"].as_str().expect("id")).await;
    assert_eq!(again["status"], "failed");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_documented_4xx_and_reaches_neither_store_nor_provider() {
    let app = TestApp::new().await;
    let url = format!("{}/v1/messages", app.url);
    let long_body = "a".repeat(1601);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str, Option<&str>)> = vec![
        (
            "non-JSON",
            app.http.post(&url).bearer_auth(API_KEY).body("to=+14155550100"),
            400,
            "invalid_json",
            None,
        ),
        (
            "missing to",
            app.post_json("/v1/messages", &json!({"body": "hi"})),
            400,
            "missing_field",
            Some("to"),
        ),
        (
            "missing body",
            app.post_json("/v1/messages", &json!({"to": "+14155550100"})),
            400,
            "missing_field",
            Some("body"),
        ),
        (
            "to = 12345",
            app.post_json("/v1/messages", &json!({"to": "12345", "body": "hi"})),
            400,
            "invalid_phone",
            Some("to"),
        ),
        (
            "1,601 chars",
            app.post_json("/v1/messages", &json!({"to": "+14155550100", "body": long_body})),
            400,
            "invalid_body",
            Some("body"),
        ),
        (
            "empty body",
            app.post_json("/v1/messages", &json!({"to": "+14155550100", "body": "  "})),
            400,
            "invalid_body",
            Some("body"),
        ),
        (
            "wrong type",
            app.post_json("/v1/messages", &json!({"to": 14155550100u64, "body": "hi"})),
            400,
            "invalid_json",
            None,
        ),
        (
            "bad send_at",
            app.post_json(
                "/v1/messages",
                &json!({"to": "+14155550100", "body": "hi", "send_at": "tomorrow"}),
            ),
            400,
            "invalid_send_at",
            Some("send_at"),
        ),
        (
            "300 kB",
            app.post_json(
                "/v1/messages",
                &json!({"to": "+14155550100", "body": "x".repeat(300_000)}),
            ),
            413,
            "payload_too_large",
            None,
        ),
        (
            "no API key",
            app.http.post(&url).json(&json!({"to": "+14155550100", "body": "hi"})),
            401,
            "unauthorized",
            None,
        ),
        (
            "wrong API key",
            app.http
                .post(&url)
                .bearer_auth("nope")
                .json(&json!({"to": "+14155550100", "body": "hi"})),
            401,
            "unauthorized",
            None,
        ),
    ];
    for (name, req, status, code, field) in cases {
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let body: Value = resp.json().await.expect("error body is JSON");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        if let Some(f) = field {
            assert_eq!(body["error"]["field"], f, "{name}");
        }
        assert!(
            !body.to_string().contains("14155550100"),
            "{name}: error must not echo the number"
        );
    }
    assert_eq!(app.store.total_calls(), 0, "nothing may reach the store");
    assert_eq!(app.sim().request_count(), 0, "nothing may reach the provider");
    app.stop().await;
}

/// The store's call count once the writes that follow a status change (counters, events) are
/// done: unchanged for 200 ms.
async fn settled_store_calls(app: &TestApp) -> usize {
    let mut last = app.store.total_calls();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = app.store.total_calls();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn a_bad_or_missing_signature_gets_403_and_changes_nothing() {
    let app = TestApp::new().await;
    let m = app.send("+15005550006", "hi").await;
    let id = m["id"].as_str().expect("id").to_owned();
    let sid = m["provider_sid"].as_str().expect("sid").to_owned();
    let delivered = app
        .wait_for(&id, Duration::from_secs(2), |m| m["status"] == "delivered")
        .await;
    let calls_before = settled_store_calls(&app).await;

    let params = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "failed"),
        ("ErrorCode", "30003"),
    ];
    let wrong_token = app.post_status(Some(&id), &params, "not-the-token").await;
    assert_eq!(wrong_token.status(), 403);
    let missing = app
        .http
        .post(format!("{}/webhooks/twilio/status?message_id={id}", app.url))
        .form(&params)
        .send()
        .await
        .expect("post");
    assert_eq!(missing.status(), 403);
    assert_eq!(
        app.store.total_calls(),
        calls_before,
        "a refused webhook must not touch the store"
    );
    assert_eq!(app.message(&id).await["events"], delivered["events"]);
    app.stop().await;
}

#[tokio::test]
async fn duplicate_and_out_of_order_callbacks_change_nothing() {
    let app = TestApp::new().await;
    let m = app.send("+14155550123", "hi").await;
    let id = m["id"].as_str().expect("id").to_owned();
    let sid = m["provider_sid"].as_str().expect("sid").to_owned();
    let done = app
        .wait_for(&id, Duration::from_secs(2), |m| m["status"] == "delivered")
        .await;

    for status in ["sent", "queued", "delivered", "undelivered"] {
        let resp = app
            .post_status(
                Some(&id),
                &[("MessageSid", &sid), ("MessageStatus", status)],
                SIMULATOR_AUTH_TOKEN,
            )
            .await;
        assert_eq!(resp.status(), 200, "{status}");
    }
    let after = app.message(&id).await;
    assert_eq!(after["status"], "delivered");
    assert_eq!(
        after["events"], done["events"],
        "no event appended by late or repeated callbacks"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_callback_links_the_sid_even_when_only_our_id_is_known() {
    // The status callback URL carries our id; a callback naming a sid we never recorded is linked to it.
    let app = TestApp::new().await;
    let m = app.send("+15005550001", "hello").await; // failed at once, no sid recorded
    let id = m["id"].as_str().expect("id");
    assert!(m["provider_sid"].is_null());
    let resp = app
        .post_status(
            Some(id),
            &[
                ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                ("MessageStatus", "delivered"),
            ],
            SIMULATOR_AUTH_TOKEN,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let after = app.message(id).await;
    assert_eq!(after["provider_sid"], "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(after["status"], "delivered");
    app.stop().await;
}

#[tokio::test]
async fn a_callback_for_an_unknown_sid_is_acknowledged_and_recorded() {
    let app = TestApp::new().await;
    let resp = app
        .post_status(
            None,
            &[
                ("MessageSid", "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
                ("MessageStatus", "delivered"),
            ],
            SIMULATOR_AUTH_TOKEN,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.store.calls("record_webhook"), 1);
    app.stop().await;
}

#[tokio::test]
async fn messages_are_listed_by_recipient_newest_first() {
    let app = TestApp::new().await;
    let a = app.send("+14155550111", "one").await;
    let b = app.send("+14155550111", "two").await;
    app.send("+14155550112", "other").await;
    let resp = app
        .get("/v1/messages?to=%2B14155550111&limit=1")
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.expect("json");
    assert_eq!(page["data"][0]["id"], b["id"]);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let next: Value = app
        .get(&format!("/v1/messages?to=%2B14155550111&limit=1&cursor={cursor}"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(next["data"][0]["id"], a["id"]);
    assert_eq!(next["has_more"], false);
    app.stop().await;
}

#[tokio::test]
async fn unknown_messages_and_routes_are_404_and_health_needs_no_key() {
    let app = TestApp::new().await;
    assert_eq!(
        app.get("/v1/messages/msg_01JD0000000000000000000000")
            .send()
            .await
            .expect("get")
            .status(),
        404
    );
    assert_eq!(
        app.get("/v1/messages/not-an-id").send().await.expect("get").status(),
        404
    );
    assert_eq!(app.get("/v1/nothing-here").send().await.expect("get").status(), 404);
    let health = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.expect("json")["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn a_store_fault_before_the_send_is_a_503_and_nothing_is_sent() {
    let app = TestApp::new().await;
    app.store.fail_next("create_message", 1);
    let resp = app
        .post_json("/v1/messages", &json!({"to": "+14155550100", "body": "hi"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(app.sim().sent_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_store_fault_after_the_provider_accepted_is_a_warning_and_the_callback_completes_the_record() {
    let app = TestApp::new().await;
    app.store.fail_next("update_message_and_link", 1);
    let m = app.send("+14155550100", "hi").await;
    assert!(m["warning"].is_string(), "{m}");
    assert_eq!(app.sim().sent_count(), 1);
    let id = m["id"].as_str().expect("id");
    let done = app
        .wait_for(id, Duration::from_secs(2), |m| m["status"] == "delivered")
        .await;
    assert_eq!(
        done["provider_sid"], m["provider_sid"],
        "the callback linked the sid through our id"
    );
    assert_eq!(app.sim().sent_count(), 1, "never resent");
    app.stop().await;
}

/// Issue #8's hot-path figure, kept from regressing: what one message costs the store from
/// `POST /v1/messages` to `delivered`, its two signed callbacks included (reads of the message are
/// left out: the test's own polling reads it too). Today six writes: the consent and hourly
/// slot check, the create (with the claim), the provider's answer with the sid's index, the
/// sender's failure-streak reset, and one update per callback; the metrics are gathered and
/// written once a second for all messages.
#[tokio::test]
async fn one_message_costs_a_known_number_of_store_writes_from_accept_to_delivered() {
    let app = TestApp::new().await;
    let n = 5;
    let mut ids = Vec::new();
    for i in 0..n {
        let m = app.send(&format!("+1415555{:04}", 100 + i), "hi").await;
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        app.wait_for(id, Duration::from_secs(5), |m| m["status"] == "delivered")
            .await;
    }
    settled_store_calls(&app).await;
    let mut by_method = app.store.calls_by_method();
    by_method.retain(|(m, _)| *m != "get_message");
    // The sent and delivered metrics are gathered in memory and written once a second for
    // every message of that second: a few flushes for the whole run, not one per message. What
    // is left of add_many per message is the sender's failure-streak reset.
    let add_many = by_method.iter().find(|(m, _)| *m == "add_many").map_or(0, |(_, c)| *c);
    assert!((n..=n + 4).contains(&add_many), "{by_method:?}");
    let writes: Vec<(&str, usize)> = by_method
        .into_iter()
        .filter(|(m, _)| *m != "add_many")
        .map(|(m, c)| (m, if c % n == 0 { c / n } else { usize::MAX }))
        .collect();
    assert_eq!(
        writes,
        [
            ("check_send", 1),
            ("create_message", 1),
            // The two callbacks (sent, delivered) each move the message: that write is their
            // record, so they leave no separate receipt.
            ("update_message", 2),
            // The provider's answer and the sid's index: one call (one transaction).
            ("update_message_and_link", 1)
        ],
        "{:?}",
        app.store.calls_by_method()
    );
    // Six writes a message (with its streak reset), and no count lost by gathering them.
    let health = app.get_json("/v1/health").await;
    assert_eq!(health["metrics"]["sent_last_hour"], n, "{health}");
    assert_eq!(health["metrics"]["delivery_rate_24h"], 1.0, "{health}");
    app.stop().await;
}
