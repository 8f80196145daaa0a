//! Lead automation, the drip half (issue #11), on smsrelay-local with the simulator and the manual
//! clock: a campaign, a lead whose step 1 goes at once, step 2 when due and not before, a reply
//! (a signed Twilio inbound webhook) that pauses the drip before step 3, the no-response ending,
//! STOP, ten concurrent duplicate leads, quiet-hours deferral, and the report's figures.

use crate::harness::ClockedApp;
use crate::helpers::{AppOptions, TestApp};
use crate::inbound::signed_inbound;
use chrono::{Duration as Days, TimeZone, Utc};
use serde_json::{json, Value};
use smsrelay::config::SIMULATOR_AUTH_TOKEN;
use smsrelay::testing::ManualClock;
use std::sync::Arc;
use std::time::Duration;

const LEAD: &str = "+14155550123";
const OURS: &str = "+15005550006";
const HOUR: Duration = Duration::from_secs(3_600);

fn campaign(id: &str) -> Value {
    json!({
        "id": id, "name": "Roof leads", "from": OURS,
        "steps": [
            {"delay": "0s", "body": "Hi {{first_name}}, thanks for your request via {{attributes.source}}! Reply STOP to opt out."},
            {"delay": "2h", "body": "Still interested, {{first_name}}?"},
            {"delay": "1d", "body": "Last check-in from us."}
        ],
        "stop_on_reply": true, "no_response_after": "3d", "end_after_silence": "1d",
        "agent": {"provider": "scripted", "rules": [], "fallback": "Thanks, a person will follow up."}
    })
}

fn lead(campaign_id: &str) -> Value {
    json!({"phone": LEAD, "campaign_id": campaign_id, "first_name": "Ana",
           "timezone": "America/Chicago", "attributes": {"source": "web-form"}})
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create(app: &TestApp, body: &Value) {
    let (status, created) = call(app.post_json("/v1/campaigns", body)).await;
    assert_eq!(status, 201, "{created}");
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = call(app.get(path)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn enrolment(app: &TestApp, id: &Value) -> Value {
    get(app, &format!("/v1/enrollments/{}", id.as_str().expect("id"))).await
}

async fn reply(app: &TestApp, sid: &str, body: &str) {
    let resp = signed_inbound(app, sid, (LEAD, OURS), body, &[], Some(SIMULATOR_AUTH_TOKEN)).await;
    assert_eq!(resp.status(), 200);
}

/// The bodies of the messages accepted for the lead, oldest first (each also reached the
/// simulator: `request_count` is checked alongside where it matters).
async fn sent_bodies(app: &TestApp) -> Vec<String> {
    let page = get(app, &format!("/v1/messages?to={}&limit=200", LEAD.replace('+', "%2B"))).await;
    let mut bodies: Vec<String> = page["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|m| m["body"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    bodies.reverse();
    bodies
}

#[tokio::test]
async fn a_lead_gets_step_one_at_once_step_two_when_due_and_a_reply_pauses_before_step_three() {
    let app = ClockedApp::new().await;
    create(&app, &campaign("roof-leads")).await;
    // Lead in → step 1 at once, rendered from the lead's fields.
    let (status, enrolled) = call(app.post_json("/v1/leads", &lead("roof-leads"))).await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(
        (enrolled["status"].as_str(), enrolled["duplicate"].as_bool()),
        (Some("active"), Some(false))
    );
    let first = enrolled["first_message_id"].as_str().expect("step 1 sent").to_owned();
    assert_eq!(
        sent_bodies(&app).await,
        ["Hi Ana, thanks for your request via web-form! Reply STOP to opt out."]
    );
    let m = app.message(&first).await;
    assert_eq!(m["metadata"]["enrollment_id"], enrolled["enrollment_id"], "{m}");
    // The simulator's callbacks mark it delivered; the report's delivered counter follows.
    app.wait_for(&first, Duration::from_secs(5), |m| m["status"] == "delivered")
        .await;
    // Not before it is due: 1h59m later nothing goes.
    app.advance(HOUR + Duration::from_secs(59 * 60));
    app.run_processor().await;
    assert_eq!(sent_bodies(&app).await.len(), 1);
    // Due: two overlapping ticks send step 2 once.
    app.advance(Duration::from_secs(60));
    let (a, b) = tokio::join!(app.run_processor(), app.run_processor());
    assert_eq!(
        a["due_sent"].as_u64().unwrap_or(0) + b["due_sent"].as_u64().unwrap_or(0),
        1,
        "{a} {b}"
    );
    assert_eq!(sent_bodies(&app).await.len(), 2);
    assert_eq!(sent_bodies(&app).await[1], "Still interested, Ana?");
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(
        (e["status"].as_str(), e["step"].as_u64()),
        (Some("active"), Some(2)),
        "{e}"
    );
    assert_eq!(e["message_ids"].as_array().map(Vec::len), Some(2));
    // A reply pauses it: step 3 never goes.
    app.advance(Duration::from_secs(60));
    reply(&app, "SMr1000000000000000000000000000001", "Yes, Thursday works").await;
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["status"], "paused", "{e}");
    app.advance(HOUR * 25);
    app.run_processor().await;
    assert_eq!(sent_bodies(&app).await.len(), 2, "step 3 was never sent");
    // The conversation holds both directions and names the campaign.
    let c = get(
        &app,
        &format!(
            "/v1/conversations/{}",
            enrolled["conversation_id"].as_str().unwrap_or("")
        ),
    )
    .await;
    assert_eq!(c["campaign_id"], "roof-leads");
    let directions: Vec<&str> = c["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|t| t["direction"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(directions, ["outbound", "outbound", "inbound"], "{c}");
    // Silent for end_after_silence after the reply: the conversation ends (no model: qualified).
    app.drain_queue().await;
    let c = get(
        &app,
        &format!(
            "/v1/conversations/{}",
            enrolled["conversation_id"].as_str().unwrap_or("")
        ),
    )
    .await;
    assert_eq!(
        (c["status"].as_str(), c["outcome"].as_str()),
        (Some("ended"), Some("qualified")),
        "{c}"
    );
    // The report, from counters.
    let r = get(&app, "/v1/campaigns/roof-leads/report").await;
    assert_eq!(
        (&r["enrolled"], &r["active"], &r["paused"], &r["replied"], &r["sent"]),
        (&json!(1), &json!(0), &json!(1), &json!(1), &json!(2)),
        "{r}"
    );
    assert_eq!(r["reply_rate"], json!(1.0));
    assert!(r["delivered"].as_i64().unwrap_or(0) >= 1, "{r}");
    assert!(r["delivered_rate"].as_f64().unwrap_or(0.0) >= 0.5, "{r}");
    assert_eq!(r["outcomes"]["qualified"], 1, "{r}");
    // Resume: the next step goes at once (its delay after step 2 has passed).
    let (status, resumed) = call(app.post_json(
        &format!(
            "/v1/enrollments/{}/resume",
            enrolled["enrollment_id"].as_str().unwrap_or("")
        ),
        &json!({}),
    ))
    .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["step"], 3, "{resumed}");
    assert_eq!(
        sent_bodies(&app).await.last().map(String::as_str),
        Some("Last check-in from us.")
    );
    app.stop().await;
}

#[tokio::test]
async fn no_reply_after_the_last_step_ends_the_conversation_no_response() {
    let app = ClockedApp::new().await;
    let mut c = campaign("short");
    c["steps"] = json!([{"delay": "0s", "body": "Hi {{first_name}}"}, {"delay": "1h", "body": "Still there?"}]);
    c["no_response_after"] = json!("1d");
    create(&app, &c).await;
    let (status, enrolled) = call(app.post_json("/v1/leads", &lead("short"))).await;
    assert_eq!(status, 201, "{enrolled}");
    app.advance(HOUR);
    assert_eq!(app.run_processor().await["due_sent"], 1);
    // Just before the deadline nothing ends.
    app.advance(HOUR * 24 - Duration::from_secs(1));
    assert_eq!(app.run_processor().await["ended_no_response"], 0);
    app.advance(Duration::from_secs(1));
    let tick = app.run_processor().await;
    assert_eq!(tick["ended_no_response"], 1, "{tick}");
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["status"], "completed", "{e}");
    let conv = get(
        &app,
        &format!(
            "/v1/conversations/{}",
            enrolled["conversation_id"].as_str().unwrap_or("")
        ),
    )
    .await;
    assert_eq!(conv["outcome"], "no_response", "{conv}");
    assert_eq!(app.run_processor().await["ended_no_response"], 0, "counted once");
    let r = get(&app, "/v1/campaigns/short/report").await;
    assert_eq!((&r["completed"], &r["active"]), (&json!(1), &json!(0)), "{r}");
    assert_eq!(r["outcomes"]["no_response"], 1, "{r}");
    assert_eq!(r["reply_rate"], json!(0.0));
    app.stop().await;
}

#[tokio::test]
async fn stop_stops_the_enrolment_discards_the_conversation_and_nothing_more_is_sent() {
    let app = ClockedApp::new().await;
    create(&app, &campaign("roof-leads")).await;
    let (_, enrolled) = call(app.post_json("/v1/leads", &lead("roof-leads"))).await;
    reply(&app, "SMs1000000000000000000000000000001", "STOP").await;
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["status"], "stopped", "{e}");
    for _ in 0..3 {
        app.advance(HOUR * 24);
        app.run_processor().await;
    }
    assert_eq!(sent_bodies(&app).await.len(), 1, "nothing after STOP");
    let conv = get(
        &app,
        &format!(
            "/v1/conversations/{}",
            enrolled["conversation_id"].as_str().unwrap_or("")
        ),
    )
    .await;
    assert_eq!(conv["outcome"], "discarded", "{conv}");
    let r = get(&app, "/v1/campaigns/roof-leads/report").await;
    assert_eq!(
        (
            &r["stopped"],
            &r["opted_out"],
            &r["active"],
            &r["outcomes"]["discarded"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(1)),
        "{r}"
    );
    // An opted-out phone is refused at intake in another campaign.
    create(&app, &campaign("other")).await;
    let (status, body) = call(app.post_json("/v1/leads", &lead("other"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("opted_out")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn ten_concurrent_identical_leads_make_one_enrolment_and_one_first_sms() {
    let app = ClockedApp::new().await;
    create(&app, &campaign("roof-leads")).await;
    let body = lead("roof-leads");
    let posts = (0..10).map(|_| call(app.post_json("/v1/leads", &body)));
    let answers = futures_util::future::join_all(posts).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let duplicates = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["duplicate"] == json!(true))
        .count();
    assert_eq!((created, duplicates), (1, 9), "{answers:?}");
    let ids: std::collections::HashSet<&str> = answers
        .iter()
        .filter_map(|(_, b)| b["enrollment_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one enrolment: {ids:?}");
    assert_eq!(sent_bodies(&app).await.len(), 1, "one first SMS");
    // A later repeat is a duplicate too; the same Idempotency-Key replays the first answer.
    let (status, again) = call(app.post_json("/v1/leads", &body)).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    let mut other = body.clone();
    other["phone"] = json!("+14155550124");
    let first = app
        .post_json("/v1/leads", &other)
        .header("Idempotency-Key", "lead-124")
        .send()
        .await
        .expect("post");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let replay = app
        .post_json("/v1/leads", &other)
        .header("Idempotency-Key", "lead-124")
        .send()
        .await
        .expect("post");
    assert_eq!(replay.status(), 201);
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    let r = get(&app, "/v1/campaigns/roof-leads/report").await;
    assert_eq!((&r["enrolled"], &r["active"]), (&json!(2), &json!(2)), "{r}");
    app.stop().await;
}

#[tokio::test]
async fn a_step_due_in_the_leads_night_is_moved_to_the_morning_never_dropped() {
    // 22:00 in Chicago tomorrow (04:00Z), after the real now as the harness needs.
    let tomorrow = Utc::now().date_naive() + Days::days(1);
    let night = Utc.from_utc_datetime(&tomorrow.and_hms_opt(4, 0, 0).expect("time"));
    let app = ClockedApp::with_clock(AppOptions::default(), Arc::new(ManualClock::new(night))).await;
    let mut c = campaign("roof-leads");
    c["quiet_hours"] = json!({"start": "21:00", "end": "08:00"});
    create(&app, &c).await;
    let (status, enrolled) = call(app.post_json("/v1/leads", &lead("roof-leads"))).await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(enrolled["first_message_id"], Value::Null, "held: {enrolled}");
    // 08:00 Chicago is 14:00Z.
    let morning = night + Days::hours(10);
    assert_eq!(
        enrolled["next_message_at"].as_str(),
        Some(smsrelay::domain::timestamp(&morning).as_str())
    );
    assert!(sent_bodies(&app).await.is_empty());
    app.advance(HOUR * 9);
    let tick = app.run_processor().await;
    assert!(sent_bodies(&app).await.is_empty(), "still night in Chicago: {tick}");
    app.advance(HOUR);
    let tick = app.run_processor().await;
    assert_eq!(tick["due_sent"], 1, "{tick}");
    assert_eq!(sent_bodies(&app).await.len(), 1);
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["step"], 1, "{e}");
    app.stop().await;
}

#[tokio::test]
async fn campaigns_refuse_unknown_variables_and_leads_refuse_unknown_campaigns_and_missing_fields() {
    let app = TestApp::with(AppOptions::default()).await;
    let mut bad = campaign("bad");
    bad["steps"][1]["body"] = json!("Still there {{nickname}}?");
    let (status, body) = call(app.post_json("/v1/campaigns", &bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("unknown_variable"), Some("steps[1].body"))
    );
    assert!(
        body["error"]["message"].as_str().unwrap_or("").contains("nickname"),
        "{body}"
    );
    let (status, _) = call(app.get("/v1/campaigns/bad")).await;
    assert_eq!(status, 404);
    create(&app, &campaign("roof-leads")).await;
    let (status, _) = call(app.post_json("/v1/campaigns", &campaign("roof-leads"))).await;
    assert_eq!(status, 409);
    let (status, _) = call(app.post_json("/v1/leads", &lead("nope"))).await;
    assert_eq!(status, 404);
    let mut nameless = lead("roof-leads");
    nameless.as_object_mut().map(|o| o.remove("first_name"));
    let (status, body) = call(app.post_json("/v1/leads", &nameless)).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("first_name")),
        "never a blank where the name goes: {body}"
    );
    // Replace and list.
    let mut renamed = campaign("roof-leads");
    renamed["name"] = json!("Roof leads (v2)");
    let (status, put) = call(
        app.http
            .put(format!("{}/v1/campaigns/roof-leads", app.url))
            .bearer_auth(crate::helpers::API_KEY)
            .json(&renamed),
    )
    .await;
    assert_eq!((status, put["name"].as_str()), (200, Some("Roof leads (v2)")), "{put}");
    let list = get(&app, "/v1/campaigns").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["data"][0]["agent"]["provider"], "scripted");
    app.stop().await;
}

#[tokio::test]
async fn a_step_sent_by_a_run_that_died_before_recording_it_is_recorded_after_a_restart_not_sent_again() {
    use smsrelay::ports::Clock as _;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("local.db");
    let clock = crate::harness::clock_at_real_time();
    let first = ClockedApp::on(&db, AppOptions::default(), clock.clone()).await;
    create(&first, &campaign("roof-leads")).await;
    let (_, enrolled) = call(first.post_json("/v1/leads", &lead("roof-leads"))).await;
    let id = smsrelay::domain::EnrolmentId::parse(enrolled["enrollment_id"].as_str().expect("id")).expect("id");
    first.advance(HOUR * 2);
    // A tick claims step 2 and sends it, then dies before writing it down.
    let deps = first.deps();
    let now = clock.now();
    let mut e = deps
        .campaigns
        .get_enrolment(&id)
        .await
        .expect("read")
        .expect("enrolled");
    assert_eq!(e.claim_step(now, now + chrono::Duration::minutes(10), 3), Some(1));
    e.version += 1;
    deps.campaigns.update_enrolment(&e).await.expect("claimed");
    let cmd = smsrelay::app::send::SendCommand {
        to: e.lead.phone.clone(),
        body: smsrelay::domain::MessageBody::parse("Still interested, Ana?".to_owned()).expect("body"),
        from: smsrelay::ports::Sender::Number(e.business_number.clone()),
        reference: Some(smsrelay::domain::Ref {
            kind: smsrelay::app::campaigns::STEP_REF_KIND.to_owned(),
            id: format!("{id}:1"),
        }),
        metadata: serde_json::Map::new(),
        send_at: None,
        quiet_hours: None,
    };
    let sent = smsrelay::app::send::send_message(smsrelay::entrypoints::http::ctx(deps, &first.url), cmd)
        .await
        .expect("sent");
    first.stop().await;
    // After the restart, once the claim has expired, the next tick finds the message by its ref.
    let second = ClockedApp::on(&db, AppOptions::default(), clock.clone()).await;
    second.advance(Duration::from_secs(9 * 60));
    assert_eq!(second.run_processor().await["due_sent"], 0, "the claim still holds");
    second.advance(Duration::from_secs(60));
    second.run_processor().await;
    let e = enrolment(&second, &enrolled["enrollment_id"]).await;
    assert_eq!(e["step"], 2, "{e}");
    assert_eq!(e["message_ids"][1], json!(sent.message.id.as_str()));
    assert_eq!(sent_bodies(&second).await.len(), 2, "step 2 went out once");
    second.stop().await;
}

#[tokio::test]
async fn a_step_over_the_campaigns_daily_limit_waits_for_the_leads_next_day() {
    // 10:00 in Chicago tomorrow (16:00Z): two steps today, the third tomorrow.
    let tomorrow = Utc::now().date_naive() + Days::days(1);
    let morning = Utc.from_utc_datetime(&tomorrow.and_hms_opt(16, 0, 0).expect("time"));
    let app = ClockedApp::with_clock(AppOptions::default(), Arc::new(ManualClock::new(morning))).await;
    let mut c = campaign("capped");
    c["steps"] =
        json!([{"delay": "0s", "body": "one"}, {"delay": "30s", "body": "two"}, {"delay": "30s", "body": "three"}]);
    c["daily_limit"] = json!(2);
    create(&app, &c).await;
    let (status, enrolled) = call(app.post_json("/v1/leads", &lead("capped"))).await;
    assert_eq!(status, 201, "{enrolled}");
    app.advance(Duration::from_secs(30));
    assert_eq!(app.run_processor().await["due_sent"], 1);
    app.advance(Duration::from_secs(30));
    let tick = app.run_processor().await;
    assert_eq!(
        (&tick["due_sent"], &tick["rescheduled"]),
        (&json!(0), &json!(1)),
        "{tick}"
    );
    // Held until the lead's midnight (06:00Z the next day), not dropped.
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    let midnight = morning + Days::hours(14);
    assert_eq!(
        e["next_message_at"].as_str(),
        Some(smsrelay::domain::timestamp(&midnight).as_str()),
        "{e}"
    );
    app.advance(HOUR * 13);
    app.run_processor().await;
    assert_eq!(sent_bodies(&app).await, ["one", "two"]);
    app.advance(HOUR);
    assert_eq!(app.run_processor().await["due_sent"], 1);
    assert_eq!(sent_bodies(&app).await, ["one", "two", "three"]);
    app.stop().await;
}

/// The requests a wiremock server received on `path`, as JSON bodies.
async fn bodies_on(server: &wiremock::MockServer, path: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == path)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn a_retell_campaign_sends_its_steps_through_create_sms_chat_and_never_resends_an_ambiguous_one() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let retell = wiremock::MockServer::start().await;
    let app = ClockedApp::with(AppOptions {
        env: vec![
            ("RETELL_API_KEY", "key_retell_test".to_owned()),
            ("RETELL_API_BASE", retell.uri()),
        ],
        ..AppOptions::default()
    })
    .await;
    let mut body = campaign("retell-leads");
    body["agent"] = json!({"provider": "retell", "retell_agent_id": "agent_verbatim"});
    create(&app, &body).await;
    // Retell has no chat of ours yet; the first create times out on Retell's side (a 500: it may
    // have been sent).
    Mock::given(method("POST"))
        .and(path("/v3/list-chats"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [], "has_more": false})))
        .with_priority(5)
        .mount(&retell)
        .await;
    Mock::given(method("POST"))
        .and(path("/create-sms-chat"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"status": "error", "message": "upstream"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&retell)
        .await;
    Mock::given(method("POST"))
        .and(path("/create-sms-chat"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "chat_id": "chat_step_two", "agent_id": "agent_verbatim", "chat_status": "ongoing", "chat_type": "sms_chat"})))
        .with_priority(2)
        .mount(&retell)
        .await;

    let (status, enrolled) = call(app.post_json("/v1/leads", &lead("retell-leads"))).await;
    assert_eq!(status, 201, "{enrolled}");
    let enrollment = enrolled["enrollment_id"].as_str().expect("id").to_owned();
    let creates = bodies_on(&retell, "/create-sms-chat").await;
    assert_eq!(creates.len(), 1, "step 1 asked Retell once");
    assert_eq!(creates[0]["from_number"], OURS);
    assert_eq!(creates[0]["to_number"], LEAD);
    assert_eq!(creates[0]["override_agent_id"], "agent_verbatim");
    assert_eq!(
        creates[0]["retell_llm_dynamic_variables"]["message_body"],
        "Hi Ana, thanks for your request via web-form! Reply STOP to opt out."
    );
    assert_eq!(creates[0]["metadata"]["smsrelay"]["step"], format!("{enrollment}:0"));
    assert_eq!(
        app.sim().request_count(),
        0,
        "a Retell campaign's steps never go by Twilio"
    );
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["step"], 0, "an ambiguous create is not recorded as sent: {e}");

    // It had gone out: Retell lists the chat with our step in its metadata. Once the claim has
    // run out, the next tick finds it and records the step, without a second create.
    Mock::given(method("POST"))
        .and(path("/v3/list-chats"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [{
            "chat_id": "chat_step_one", "agent_id": "agent_verbatim", "chat_status": "ongoing",
            "chat_type": "sms_chat", "start_timestamp": app.now().timestamp_millis(),
            "metadata": {"smsrelay": {"step": format!("{enrollment}:0")}}}], "has_more": false})))
        .with_priority(1)
        .mount(&retell)
        .await;
    app.advance(Duration::from_secs(11 * 60));
    app.run_processor().await;
    assert_eq!(
        bodies_on(&retell, "/create-sms-chat").await.len(),
        1,
        "never resent blindly"
    );
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["step"], 1, "{e}");

    // Step 2 when due: a create that succeeds, with step 2's text.
    app.advance(2 * HOUR);
    app.run_processor().await;
    let creates = bodies_on(&retell, "/create-sms-chat").await;
    assert_eq!(creates.len(), 2);
    assert_eq!(
        creates[1]["retell_llm_dynamic_variables"]["message_body"],
        "Still interested, Ana?"
    );
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(
        (e["step"].as_u64(), e["message_ids"].as_array().map(Vec::len)),
        (Some(2), Some(2)),
        "{e}"
    );
    assert_eq!(app.sim().request_count(), 0);
    app.stop().await;
}

/// Run the queue while answering every wait on the manual clock at once (the agent's backoff and
/// `Retry-After` sleep on the clock; `ClockedApp::drain_queue` moves it); returns how many jobs ran.
async fn drain_with_clock(app: &ClockedApp) -> usize {
    app.drain_queue().await
}

/// Issue #11's whole flow on smsrelay-local: a drip with an `openai` agent served by a wiremock
/// server speaking Chat Completions. Step 1 at once, step 2 two hours later, the lead's reply
/// pauses the drip; the agent's turn meets a 429 with `Retry-After`, then a 500, then books
/// through `book_appointment` and answers; the conversation ends `success`, step 3 never goes, and
/// the report counts it.
#[tokio::test]
async fn a_lead_is_dripped_replies_and_the_openai_agent_books_it_to_success_in_the_report() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let openai = wiremock::MockServer::start().await;
    let app = ClockedApp::with(AppOptions {
        env: vec![
            ("OPENAI_BASE_URL", format!("{}/v1", openai.uri())),
            ("OPENAI_API_KEY", "sk-test".to_owned()),
        ],
        ..AppOptions::default()
    })
    .await;
    let completion = |message: Value| {
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_780_012_790, "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        }))
    };
    // After the tool's result: the text for the lead.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(completion(
            json!({"role": "assistant", "content": "Booked: Thursday 10am. See you then!"}),
        ))
        .with_priority(1)
        .mount(&openai)
        .await;
    // First a rate limit, then a server error, then the tool call.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "The server had an error", "type": "server_error"}})),
        )
        .up_to_n_times(1)
        .with_priority(3)
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(completion(
            json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function", "function": {"name": "book_appointment",
            "arguments": "{\"start\":\"2026-12-03T10:00:00-06:00\",\"duration_minutes\":60,\"notes\":null}"}}]}),
        ))
        .with_priority(4)
        .mount(&openai)
        .await;

    let mut body = campaign("roof-leads");
    body["agent"] =
        json!({"provider": "openai", "prompt": "You book roof inspections for Acme.", "model": "gpt-4.1-mini"});
    create(&app, &body).await;
    let (status, enrolled) = call(app.post_json("/v1/leads", &lead("roof-leads"))).await;
    assert_eq!(status, 201, "{enrolled}");
    assert_eq!(sent_bodies(&app).await.len(), 1, "step 1 at once");
    app.advance(2 * HOUR);
    app.run_processor().await;
    assert_eq!(sent_bodies(&app).await[1], "Still interested, Ana?");

    reply(&app, "SMc0ffee0000000000000000000000001", "Yes! Thursday 10am works").await;
    let e = enrolment(&app, &enrolled["enrollment_id"]).await;
    assert_eq!(e["status"], "paused", "{e}");
    assert!(drain_with_clock(&app).await >= 1);

    let conversation = get(
        &app,
        &format!(
            "/v1/conversations/{}",
            enrolled["conversation_id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(conversation["outcome"], "success", "{conversation}");
    assert_eq!(conversation["appointment"]["start"], "2026-12-03T10:00:00-06:00");
    let directions: Vec<(&str, &str)> = conversation["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["direction"].as_str().unwrap_or(""), m["body"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        directions.last().copied(),
        Some(("outbound", "Booked: Thursday 10am. See you then!")),
        "{conversation}"
    );
    assert!(directions.contains(&("inbound", "Yes! Thursday 10am works")));
    // 429, 500, the tool call, the text: four requests to the model.
    assert_eq!(openai.received_requests().await.unwrap_or_default().len(), 4);
    // Step 3 never goes: the drip is paused and the conversation has ended.
    app.advance(2 * 24 * HOUR);
    app.run_processor().await;
    let bodies = sent_bodies(&app).await;
    assert!(!bodies.iter().any(|b| b == "Last check-in from us."), "{bodies:?}");
    let booked = app
        .events
        .events()
        .into_iter()
        .filter(|e| e.detail_type == "appointment.booked")
        .count();
    assert_eq!(booked, 1);
    let report = get(&app, "/v1/campaigns/roof-leads/report").await;
    assert_eq!(report["outcomes"]["success"], 1, "{report}");
    assert_eq!(report["replied"], 1, "{report}");
    app.stop().await;
}
