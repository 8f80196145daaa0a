//! Replies reach us (issue #10), end to end on smsrelay-local with the simulator: Twilio inbound
//! webhooks signed as Twilio signs them (STOP / START / HELP / replies / duplicates / bad
//! signatures), the simulator's own inbound texts, conversations and consent over the API, and
//! Retell's webhooks with `x-retell-signature`.

use crate::helpers::{AppOptions, TestApp};
use serde_json::{json, Value};
use smsrelay::adapters::retell::sign_retell;
use smsrelay::adapters::twilio::compute_signature;
use smsrelay::adapters::twilio::inbound::inbound_params;
use smsrelay::config::SIMULATOR_AUTH_TOKEN;

const LEAD: &str = "+14155550123";
const OURS: &str = "+15005550006";
const RETELL_KEY: &str = "retell-test-key";

/// Post an inbound text to the app as Twilio would (signed over the public URL and every param).
async fn twilio_inbound(
    app: &TestApp,
    sid: &str,
    body: &str,
    extra: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    signed_inbound(app, sid, (LEAD, OURS), body, extra, token).await
}

/// Post an inbound text `from` → `to` as Twilio would (signed with `token`, unsigned without).
pub(crate) async fn signed_inbound(
    app: &TestApp,
    sid: &str,
    (from, to): (&str, &str),
    body: &str,
    extra: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    let url = format!("{}/webhooks/twilio/inbound", app.url);
    let mut params = inbound_params(sid, "AC00000000000000000000000000000000", from, to, body);
    params.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut req = app.http.post(&url).form(&params);
    if let Some(t) = token {
        req = req.header("X-Twilio-Signature", compute_signature(t, &url, &params));
    }
    req.send().await.expect("post")
}

async fn text(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.text().await.expect("body"))
}

async fn consent(app: &TestApp) -> Value {
    let (status, body) = app
        .get_status_json(&format!("/v1/consent/{}", LEAD.replace('+', "%2B")))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn conversations(app: &TestApp) -> Value {
    let (status, body) = app
        .get_status_json(&format!("/v1/conversations?phone={}", LEAD.replace('+', "%2B")))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn stop_suppresses_the_next_send_with_evidence_and_start_lets_it_out_again() {
    let app = TestApp::new().await;
    // Given a STOP signed as Twilio signs it
    let (status, ct, body) = text(
        twilio_inbound(
            &app,
            "SMa1b2c3d4e5f60718293a4b5c6d7e8f90",
            "Stop",
            &[],
            Some(SIMULATOR_AUTH_TOKEN),
        )
        .await,
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "text/xml"));
    assert!(body.ends_with("<Response/>"), "no reply from us to a STOP: {body}");
    // Then the next send is suppressed and the provider gets no request
    let before = app.sim().request_count();
    let m = app.send(LEAD, "Your technician is on the way").await;
    assert_eq!(m["status"], "suppressed", "{m}");
    assert_eq!(app.sim().request_count(), before);
    // And the consent shows the STOP with its MessageSid
    let c = consent(&app).await;
    assert_eq!(c["status"], "opted_out", "{c}");
    assert_eq!(c["history"][0]["keyword"], "STOP");
    assert_eq!(c["history"][0]["message_sid"], "SMa1b2c3d4e5f60718293a4b5c6d7e8f90");
    assert_eq!(c["history"][0]["channel"], "sms");
    // When START arrives, the next send goes out
    let (status, _, body) = text(
        twilio_inbound(
            &app,
            "SMb1b2c3d4e5f60718293a4b5c6d7e8f91",
            "START",
            &[],
            Some(SIMULATOR_AUTH_TOKEN),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.ends_with("<Response/>"));
    let m = app.send(LEAD, "Your technician is on the way").await;
    assert_ne!(m["status"], "suppressed", "{m}");
    assert_eq!(app.sim().request_count(), before + 1);
    let c = consent(&app).await;
    assert_eq!(c["status"], "opted_in");
    assert_eq!(c["history"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn the_registry_api_opts_a_phone_out_and_in_with_evidence() {
    let app = TestApp::new().await;
    let path = format!("{}/v1/consent/{}", app.url, LEAD.replace('+', "%2B"));
    let change = |status: &'static str| {
        app.http
            .post(&path)
            .bearer_auth(crate::helpers::API_KEY)
            .json(&json!({ "status": status }))
            .send()
    };
    // An operator opts the phone out: the next send is suppressed, no provider request
    let resp = change("opted_out").await.expect("post");
    assert_eq!(resp.status(), 200);
    let before = app.sim().request_count();
    assert_eq!(app.send(LEAD, "hello").await["status"], "suppressed");
    assert_eq!(app.sim().request_count(), before);
    // A status that is neither is a 400 naming the field, and changes nothing
    let resp = change("maybe").await.expect("post");
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["field"], "status", "{err}");
    // Back in: the send goes out; the history holds both changes from the api channel
    assert_eq!(change("opted_in").await.expect("post").status(), 200);
    assert_ne!(app.send(LEAD, "hello again").await["status"], "suppressed");
    let c = consent(&app).await;
    assert_eq!(c["status"], "opted_in");
    let channels: Vec<&str> = c["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["channel"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(channels, ["api", "api"], "{c}");
    app.stop().await;
}

#[tokio::test]
async fn help_gets_the_help_text_unless_twilio_answered_it() {
    let app = TestApp::with(AppOptions {
        env: vec![(
            "SMSRELAY_HELP_TEXT",
            "Acme Roofing: reply STOP to opt out & <more>".to_owned(),
        )],
        ..AppOptions::default()
    })
    .await;
    let (status, ct, body) = text(twilio_inbound(&app, "SMc1", "help", &[], Some(SIMULATOR_AUTH_TOKEN)).await).await;
    assert_eq!((status, ct.as_str()), (200, "text/xml"));
    assert!(
        body.contains("<Message>Acme Roofing: reply STOP to opt out &amp; &lt;more&gt;</Message>"),
        "{body}"
    );
    let (_, _, body) = text(
        twilio_inbound(
            &app,
            "SMc2",
            "HELP",
            &[("OptOutType", "HELP")],
            Some(SIMULATOR_AUTH_TOKEN),
        )
        .await,
    )
    .await;
    assert!(
        body.ends_with("<Response/>"),
        "Advanced Opt-Out answered already: {body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reply_opens_a_conversation_and_the_same_sid_twice_stores_one_message() {
    let app = TestApp::new().await;
    let outbound = app.send(LEAD, "Hi Ana, still interested in an inspection?").await;
    for _ in 0..2 {
        let (status, _, body) = text(
            twilio_inbound(
                &app,
                "SM7e2f1c0a9b8d4e6f8a1b2c3d4e5f6a7b",
                "Yes! Tomorrow at 3pm works",
                &[],
                Some(SIMULATOR_AUTH_TOKEN),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            body.ends_with("<Response/>"),
            "the agent answers later, never in TwiML: {body}"
        );
    }
    let list = conversations(&app).await;
    let data = list["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(data.len(), 1, "{list}");
    let c = &data[0];
    assert_eq!(
        (c["status"].as_str(), c["business_number"].as_str()),
        (Some("open"), Some(OURS))
    );
    let inbound: Vec<&Value> = c["messages"]
        .as_array()
        .map(|m| m.iter().filter(|t| t["direction"] == "inbound").collect())
        .unwrap_or_default();
    assert_eq!(inbound.len(), 1, "one stored message for one MessageSid: {c}");
    // The outbound message sent before the reply is not part of it (it predates the
    // conversation); one sent now is, in order after the reply.
    let later = app.send(LEAD, "Great, see you at 3pm").await;
    let (status, one) = app
        .get_status_json(&format!("/v1/conversations/{}", c["id"].as_str().unwrap_or("")))
        .await;
    assert_eq!(status, 200);
    let dirs: Vec<(&str, &str)> = one["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|t| (t["direction"].as_str().unwrap_or(""), t["body"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        dirs,
        [
            ("inbound", "Yes! Tomorrow at 3pm works"),
            ("outbound", "Great, see you at 3pm")
        ],
        "{one}"
    );
    assert_ne!(outbound["id"], later["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_403_and_stores_nothing() {
    let app = TestApp::new().await;
    for token in [Some("not-the-token"), None] {
        let (status, _, body) = text(twilio_inbound(&app, "SMd1", "STOP", &[], token).await).await;
        assert_eq!(status, 403, "{body}");
    }
    let c = consent(&app).await;
    assert_eq!(
        (c["status"].as_str(), c["history"].as_array().map(Vec::len)),
        (Some("opted_in"), Some(0))
    );
    assert_eq!(conversations(&app).await["data"].as_array().map(Vec::len), Some(0));
    app.stop().await;
}

#[tokio::test]
async fn a_person_replies_through_the_pipeline_and_sets_the_outcome() {
    let app = TestApp::new().await;
    twilio_inbound(&app, "SMe1", "Can someone call me?", &[], Some(SIMULATOR_AUTH_TOKEN)).await;
    let id = conversations(&app).await["data"][0]["id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let resp = app
        .post_json(
            &format!("/v1/conversations/{id}/messages"),
            &json!({"body": "Calling you in 5 minutes"}),
        )
        .send()
        .await
        .expect("reply");
    assert_eq!(resp.status(), 202);
    let m: Value = resp.json().await.expect("json");
    assert_eq!((m["to"].as_str(), m["from"].as_str()), (Some(LEAD), Some(OURS)));
    let (_, c) = app.get_status_json(&format!("/v1/conversations/{id}")).await;
    assert_eq!(c["status"], "needs_human", "a person took over: {c}");
    let linked: Vec<&Value> = c["messages"]
        .as_array()
        .map(|t| t.iter().filter(|t| t["message_id"] == m["id"]).collect())
        .unwrap_or_default();
    assert_eq!(linked.len(), 1, "the reply is linked once: {c}");
    let resp = app
        .post_json(
            &format!("/v1/conversations/{id}/outcome"),
            &json!({"outcome": "qualified", "reason": "wants a quote"}),
        )
        .send()
        .await
        .expect("outcome");
    assert_eq!(resp.status(), 200);
    let c: Value = resp.json().await.expect("json");
    assert_eq!(
        (c["status"].as_str(), c["outcome"].as_str()),
        (Some("ended"), Some("qualified"))
    );
    let ended = app
        .get(&format!(
            "/v1/conversations?phone={}&status=ended&outcome=qualified",
            LEAD.replace('+', "%2B")
        ))
        .send()
        .await
        .expect("list");
    let ended: Value = ended.json().await.expect("json");
    assert_eq!(ended["data"].as_array().map(Vec::len), Some(1));
    // Bad input gets a 4xx naming the field
    for (path, body, field) in [
        (
            format!("/v1/conversations/{id}/outcome"),
            json!({"outcome": "booked"}),
            "outcome",
        ),
        (format!("/v1/conversations/{id}/messages"), json!({"body": ""}), "body"),
    ] {
        let resp = app.post_json(&path, &body).send().await.expect("post");
        assert_eq!(resp.status(), 400);
        let e: Value = resp.json().await.expect("json");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    let resp = app
        .post_json(&format!("/v1/conversations/{id}/messages"), &json!({"body": "hello?"}))
        .send()
        .await
        .expect("reply");
    assert_eq!(resp.status(), 409, "an ended conversation takes no reply");
    let (status, _) = app.get_status_json("/v1/conversations/conv_nope").await;
    assert_eq!(status, 404);
    let (status, e) = app.get_status_json("/v1/conversations?phone=12345").await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("phone")));
    app.stop().await;
}

#[tokio::test]
async fn the_simulator_texts_the_server_as_twilio_would() {
    let app = TestApp::new().await;
    let resp = app
        .post_json(
            "/v1/simulator/inbound",
            &json!({"from": LEAD, "to": OURS, "body": "STOP"}),
        )
        .send()
        .await
        .expect("simulate");
    assert_eq!(resp.status(), 200);
    let sim: Value = resp.json().await.expect("json");
    assert_eq!(sim["status"], 200, "{sim}");
    let c = consent(&app).await;
    assert_eq!(c["status"], "opted_out");
    assert_eq!(c["history"][0]["message_sid"], sim["message_sid"]);
    let resp = app
        .post_json("/v1/simulator/inbound", &json!({"from": "nope", "body": "hi"}))
        .send()
        .await
        .expect("simulate");
    assert_eq!(resp.status(), 400);
    app.stop().await;
}

fn retell_app_options() -> AppOptions {
    AppOptions {
        env: vec![("RETELL_API_KEY", RETELL_KEY.to_owned())],
        ..AppOptions::default()
    }
}

async fn retell_post(app: &TestApp, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/webhooks/retell", app.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("x-retell-signature", s);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn retell_webhooks_need_a_fresh_valid_signature_and_record_the_chat() {
    let app = TestApp::with(retell_app_options()).await;
    let now = chrono::Utc::now().timestamp_millis();
    let inbound = br#"{"event":"chat_inbound","chat_inbound":{"agent_id":"agent_1","from_number":"+14155550123","to_number":"+15005550006"}}"#;
    let (status, body) = retell_post(&app, inbound, Some(sign_retell(RETELL_KEY, inbound, now))).await;
    assert_eq!((status, body), (200, json!({})));
    for bad in [
        None,
        Some(sign_retell("other-key", inbound, now)),
        Some(sign_retell(RETELL_KEY, inbound, now - 6 * 60 * 1000)),
        Some("v=1,d=zz".to_owned()),
    ] {
        let (status, _) = retell_post(&app, inbound, bad).await;
        assert_eq!(status, 403);
    }
    let analyzed = br#"{"event":"chat_analyzed","chat":{"chat_id":"chat_1","message_with_tool_calls":[
        {"message_id":"m1","role":"user","content":"Is Thursday open?"},{"message_id":"m2","role":"agent","content":"10am or 2pm?"}],
        "metadata":{"smsrelay":{"from_number":"+14155550123","to_number":"+15005550006"}},
        "chat_analysis":{"chat_summary":"Asked about Thursday.","custom_analysis_data":{"outcome":"qualified"}}}}"#;
    for _ in 0..2 {
        let (status, _) = retell_post(&app, analyzed, Some(sign_retell(RETELL_KEY, analyzed, now))).await;
        assert_eq!(status, 200);
    }
    let list = conversations(&app).await;
    let c = &list["data"][0];
    assert_eq!(
        (c["status"].as_str(), c["outcome"].as_str()),
        (Some("ended"), Some("qualified")),
        "{list}"
    );
    assert_eq!(
        c["messages"].as_array().map(Vec::len),
        Some(2),
        "turns recorded once: {c}"
    );
    for ping in [&b""[..], b"{}", b"[]"] {
        let (status, _) = retell_post(&app, ping, Some(sign_retell(RETELL_KEY, ping, now))).await;
        assert_eq!(status, 200);
    }
    let (status, _) = retell_post(&app, b"{nope", Some(sign_retell(RETELL_KEY, b"{nope", now))).await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn without_a_retell_key_the_retell_route_refuses_everything() {
    let app = TestApp::new().await;
    let body = b"{}";
    let (status, _) = retell_post(
        &app,
        body,
        Some(sign_retell(RETELL_KEY, body, chrono::Utc::now().timestamp_millis())),
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}
