//! Hostile and careless input found in issue 9 (item 9): each gets the documented 400 naming its
//! field, with a message that reads right, and nothing reaches the store or the provider.

use crate::helpers::TestApp;
use chrono::Utc;
use serde_json::{json, Value};

/// A `send_at` tomorrow at 12:00 with second 60 (a leap second chrono would otherwise read).
fn second_sixty_tomorrow() -> String {
    (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT12:00:60Z")
        .to_string()
}

#[tokio::test]
async fn issue_9_inputs_get_a_400_naming_the_field_and_reach_neither_store_nor_provider() {
    let app = TestApp::new().await;
    let msg = |extra: Value| {
        let mut m = json!({"to": "+14155550100", "body": "hi"});
        if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        m
    };
    let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
        (
            "leading minus",
            "/v1/messages",
            msg(json!({"to": "-14155550100"})),
            "invalid_phone",
            "to",
        ),
        (
            "leading dot",
            "/v1/messages",
            msg(json!({"to": ".4155550100"})),
            "invalid_phone",
            "to",
        ),
        (
            "one-digit hour",
            "/v1/messages",
            msg(json!({"quiet_hours": {"start": "8:00", "end": "21:00", "timezone": "America/New_York"}})),
            "invalid_quiet_hours",
            "quiet_hours",
        ),
        (
            "NUL in body",
            "/v1/messages",
            msg(json!({"body": "a\u{0}b"})),
            "invalid_body",
            "body",
        ),
        (
            "ESC in body",
            "/v1/messages",
            msg(json!({"body": "\u{1b}[2J hi"})),
            "invalid_body",
            "body",
        ),
        (
            "zero-width body",
            "/v1/messages",
            msg(json!({"body": "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF} "})),
            "invalid_body",
            "body",
        ),
        (
            "second 60",
            "/v1/messages",
            msg(json!({"send_at": second_sixty_tomorrow()})),
            "invalid_send_at",
            "send_at",
        ),
        (
            "257-character ref id",
            "/v1/messages",
            msg(json!({"ref": {"type": "job", "id": "x".repeat(257)}})),
            "invalid_ref",
            "ref",
        ),
        (
            "257-character ref type",
            "/v1/messages",
            msg(json!({"ref": {"type": "x".repeat(257), "id": "j1"}})),
            "invalid_ref",
            "ref",
        ),
        (
            "200,000-character ref id at cancel",
            "/v1/messages/cancel",
            json!({"ref": {"type": "calendar_event", "id": "x".repeat(200_000)}}),
            "invalid_ref",
            "ref",
        ),
        (
            "control character in a ref at cancel",
            "/v1/messages/cancel",
            json!({"ref": {"type": "calendar_event", "id": "evt\u{1f}1"}}),
            "invalid_ref",
            "ref",
        ),
    ];
    for (name, path, body, code, field) in cases {
        let resp = app.post_json(path, &body).send().await.expect("request");
        assert_eq!(resp.status().as_u16(), 400, "{name}");
        let body: Value = resp.json().await.expect("error body is JSON");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert_eq!(body["error"]["field"], field, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("`{field}`"))),
            "{name}: {body}"
        );
        assert!(
            !body.to_string().contains("14155550100"),
            "{name}: error must not echo the number"
        );
    }
    assert_eq!(app.store.total_calls(), 0, "nothing may reach the store");
    assert_eq!(app.sim().request_count(), 0, "nothing may reach the provider");
    app.stop().await;
}

#[tokio::test]
async fn the_body_length_error_reads_as_one_sentence() {
    let app = TestApp::new().await;
    let resp = app
        .post_json("/v1/messages", &json!({"to": "+14155550100", "body": "a".repeat(1601)}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["message"], "`body` is 1601 characters; the limit is 1600");
    app.stop().await;
}

#[tokio::test]
async fn a_ref_of_256_characters_is_accepted_by_send_and_by_cancel_alike() {
    let app = TestApp::new().await;
    let reference = json!({"type": "t".repeat(256), "id": "i".repeat(256)});
    let send_at = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let resp = app
        .post_json(
            "/v1/messages",
            &json!({"to": "+14155550100", "body": "hi", "send_at": send_at, "ref": reference}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 202);
    let resp = app
        .post_json("/v1/messages/cancel", &json!({"ref": reference}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"canceled": 1}));
    app.stop().await;
}

#[tokio::test]
async fn a_batch_rejects_the_same_items_with_the_same_codes() {
    let app = TestApp::new().await;
    let resp = app
        .post_json(
            "/v1/batches",
            &json!({"messages": [
                {"to": "-14155550100", "body": "hi"},
                {"to": "+14155550100", "body": "a\u{0}b"},
                {"to": "+14155550100", "body": "\u{200B}"},
                {"to": "+14155550100", "body": "hi", "send_at": second_sixty_tomorrow()},
                {"to": "+14155550100", "body": "hi", "ref": {"type": "job", "id": "x".repeat(257)}}
            ]}),
        )
        .send()
        .await
        .expect("batch");
    assert_eq!(resp.status().as_u16(), 200);
    let b: Value = resp.json().await.expect("json");
    let codes: Vec<&str> = b["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_phone",
            "invalid_body",
            "invalid_body",
            "invalid_send_at",
            "invalid_ref"
        ],
        "{b}"
    );
    assert_eq!(b["rejected"], 5);
    assert_eq!(app.sim().request_count(), 0, "nothing may reach the provider");
    app.stop().await;
}
