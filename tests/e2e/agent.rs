//! The campaign's agent through smsrelay-local (issue 11 item 4): the built-in scripted agent,
//! no network. A lead's text arrives as Twilio would post it (the simulator signs it), the local
//! queue runs the agent turn, the reply goes out through the simulator, and
//! `GET /v1/conversations/{id}` shows both directions and the outcome.

use crate::harness::ClockedApp;
use crate::helpers::AppOptions;
use serde_json::{json, Value};
use smsrelay::domain::{AgentSpec, Outcome, PhoneNumber, ScriptedRule};
use smsrelay::testing::StaticCampaignAgents;
use std::sync::Arc;

const LEAD: &str = "+14155550123";
const OURS: &str = "+15005550006";

fn scripted() -> AgentSpec {
    AgentSpec::Scripted {
        rules: vec![ScriptedRule {
            pattern: r"\b(yes|sure|ok)\b".to_owned(),
            reply: "Great! Thursday 10am or 2pm for the inspection?".to_owned(),
            outcome: Some(Outcome::Qualified),
        }],
        fallback: Some("Thanks! Reply YES to book a free inspection.".to_owned()),
    }
}

async fn lead_texts(app: &ClockedApp, body: &str) {
    let resp = app
        .post_json(
            "/v1/simulator/inbound",
            &json!({"from": LEAD, "to": OURS, "body": body}),
        )
        .send()
        .await
        .expect("simulate");
    assert_eq!(resp.status(), 200);
    let sim: Value = resp.json().await.expect("json");
    assert_eq!(sim["status"], 200, "{sim}");
}

async fn conversation(app: &ClockedApp, id: &str) -> Value {
    let resp = app.get(&format!("/v1/conversations/{id}")).send().await.expect("get");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn the_scripted_agent_answers_a_lead_through_smsrelay_local() {
    let agents = Arc::new(StaticCampaignAgents::default());
    agents.set("roof-leads", scripted());
    let app = ClockedApp::with(AppOptions {
        campaign_agents: Some(agents),
        ..AppOptions::default()
    })
    .await;
    // The campaign's conversation, as an enrolment opens it.
    let deps = app.deps();
    let c = smsrelay::app::conversations::open_or_create(
        deps.conversations.as_ref(),
        &PhoneNumber::parse_e164(OURS).expect("ours"),
        &PhoneNumber::parse_e164(LEAD).expect("lead"),
        Some("roof-leads".to_owned()),
        app.now(),
    )
    .await
    .expect("opened");

    lead_texts(&app, "what is this about?").await;
    assert_eq!(app.drain_queue().await, 1);
    lead_texts(&app, "yes please").await;
    app.drain_queue().await;

    let body = conversation(&app, c.id.as_str()).await;
    let messages: Vec<(String, String)> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap_or("").to_owned(),
                m["body"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("inbound", "what is this about?"),
        ("outbound", "Thanks! Reply YES to book a free inspection."),
        ("inbound", "yes please"),
        ("outbound", "Great! Thursday 10am or 2pm for the inspection?"),
    ]
    .iter()
    .map(|(d, b)| ((*d).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(messages, expected);
    assert_eq!(body["outcome"], "qualified");
    assert_eq!(body["status"], "ended");
    // Both replies went out through the simulator, from the conversation's number.
    for m in body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["direction"] == "outbound")
    {
        let id = m["message_id"].as_str().expect("linked message");
        let sent = app.message(id).await;
        assert_eq!(sent["from"], OURS);
        assert_ne!(sent["status"], "suppressed");
    }
    app.stop().await;
}
