//! The agent's turn end to end on SQLite and the manual clock: an inbound reply is recorded and
//! queued by `handle_inbound`, the queued job runs the campaign's agent (a wiremock server
//! speaking Chat Completions, or the scripted rules), and the reply goes out through the fake
//! provider and shows in the conversation. Also: booking → success + `appointment.booked`,
//! escalation → one alert, the daily cap, and a redelivered job that sends nothing twice.

use super::Env;
use crate::adapters::no_campaigns::NoEnrolments;
use crate::app::agent_turn::{agent_turn, conversation_silent, reply_id, TurnOutcome};
use crate::app::conversations::open_or_create;
use crate::app::handle_inbound::{handle_inbound, InboundPorts, InboundText};
use crate::app::retry::handle_job;
use crate::app::send::{send_message_with, SendCommand, SendOptions};
use crate::domain::{
    AgentSpec, ConsentChannel, Conversation, ConversationId, ConversationStatus, Direction, MessageBody, Outcome,
    PhoneNumber, ScriptedRule,
};
use crate::ports::{AlertKind, ConversationStore, JobPayload, Sender};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CAMPAIGN: &str = "roof-leads";
const LEAD: &str = "+14155550100";
const OURS: &str = "+15005550006";

fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse_e164(raw).expect("number")
}

fn openai() -> AgentSpec {
    AgentSpec::Openai {
        prompt: "You book roof inspections for Acme.".to_owned(),
        model: Some("gpt-4.1-mini".to_owned()),
    }
}

fn scripted() -> AgentSpec {
    AgentSpec::Scripted {
        rules: vec![ScriptedRule {
            pattern: r"not interested".to_owned(),
            reply: "No problem, thanks for letting us know!".to_owned(),
            outcome: Some(Outcome::Unqualified),
        }],
        fallback: Some("Thanks! When would suit you for a free inspection?".to_owned()),
    }
}

/// An env whose `openai` agent talks to `server` (if any), with extra configuration `pairs`.
fn env(server: Option<&MockServer>, pairs: &[(&str, &str)]) -> Env {
    let base = server.map(|s| format!("{}/v1", s.uri()));
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    if let Some(b) = base.as_deref() {
        all.push(("OPENAI_BASE_URL", b));
    }
    Env::new(&all)
}

impl Env {
    /// The campaign's conversation with the lead, opened as an enrolment would open it.
    async fn campaign_conversation(&self, spec: AgentSpec) -> Conversation {
        self.campaigns.set(CAMPAIGN, spec);
        open_or_create(
            &self.store,
            &phone(OURS),
            &phone(LEAD),
            Some(CAMPAIGN.to_owned()),
            self.now(),
        )
        .await
        .expect("opened")
    }

    /// The lead texts `body` (Twilio's inbound webhook, as `handle_inbound` handles it).
    async fn lead_texts(&self, sid: &str, body: &str) {
        let ports = InboundPorts {
            consent: &self.store,
            conversations: &self.store,
            queue: &self.queue,
            events: &self.events,
            enrolments: &NoEnrolments,
        };
        let text = InboundText {
            channel: ConsentChannel::Sms,
            provider_ref: sid.to_owned(),
            from: phone(LEAD),
            to: phone(OURS),
            body: body.to_owned(),
            opt_out_type: None,
            at: self.now(),
        };
        handle_inbound(ports, text, "help").await.expect("inbound");
    }

    async fn conversation(&self, id: &ConversationId) -> Conversation {
        self.store.get_conversation(id).await.expect("read").expect("stored")
    }

    fn sent_bodies(&self) -> Vec<String> {
        self.provider.calls().into_iter().map(|c| c.body).collect()
    }
}

fn completion(message: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_780_012_790, "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null, "message": message}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
}

async fn model_says(server: &MockServer, tool: Option<(&str, &str)>, final_text: &str) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(completion(json!({"role": "assistant", "content": final_text})))
        .mount(server)
        .await;
    let first = match tool {
        Some((name, arguments)) => json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]}),
        None => json!({"role": "assistant", "content": final_text}),
    };
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(completion(first))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_reply_is_answered_by_the_model_through_the_send_pipeline_and_a_booking_ends_in_success() {
    let server = MockServer::start().await;
    model_says(
        &server,
        Some((
            "book_appointment",
            r#"{"start":"2026-12-03T14:00:00-08:00","duration_minutes":60,"notes":"side gate"}"#,
        )),
        "Booked: Thursday 2pm. See you then!",
    )
    .await;
    let env = env(Some(&server), &[]);
    let c = env.campaign_conversation(openai()).await;

    env.lead_texts("SM1", "yes thursday 2pm").await;
    assert_eq!(env.drain_queue().await, 1, "one job: the agent turn");

    assert_eq!(env.sent_bodies(), ["Booked: Thursday 2pm. See you then!"]);
    assert_eq!(env.provider.calls()[0].to, phone(LEAD));
    let stored = env.conversation(&c.id).await;
    assert_eq!(stored.outcome, Some(Outcome::Success));
    assert_eq!(stored.status, ConversationStatus::Ended);
    let appointment = stored.appointment.expect("recorded");
    assert_eq!(
        (appointment.start.as_str(), appointment.duration_minutes),
        ("2026-12-03T14:00:00-08:00", 60)
    );
    let directions: Vec<Direction> = stored.turns.iter().map(|t| t.direction).collect();
    assert_eq!(directions, [Direction::Inbound, Direction::Outbound]);
    let reply = stored.turns[1].message_id.clone().expect("linked message");
    let message = env.message(&reply).await;
    assert_eq!(message.from, OURS);
    assert_eq!(message.metadata.get("conversation_id"), Some(&json!(c.id.as_str())));
    let booked: Vec<_> = env
        .events
        .events()
        .into_iter()
        .filter(|e| e.detail_type == "appointment.booked")
        .collect();
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0].detail["conversation_id"], c.id.as_str());
    assert_eq!(booked[0].detail["start"], "2026-12-03T14:00:00-08:00");
    assert!(
        !booked[0].detail.to_string().contains("4155550100"),
        "no phone in the event"
    );
    // The model heard the recorded booking back.
    let requests = server.received_requests().await.unwrap_or_default();
    let second: Value = serde_json::from_slice(&requests[1].body).expect("JSON");
    let last = second["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["role"], "tool");
    assert!(
        last["content"].as_str().is_some_and(|s| s.contains("confirmed")),
        "{last}"
    );
}

#[tokio::test]
async fn escalate_to_human_hands_over_with_one_alert_and_the_agent_stops() {
    let server = MockServer::start().await;
    model_says(
        &server,
        Some((
            "escalate_to_human",
            r#"{"reason":"The lead is upset about a past job."}"#,
        )),
        "I'm sorry. A teammate will call you shortly.",
    )
    .await;
    let env = env(Some(&server), &[]);
    let c = env.campaign_conversation(openai()).await;

    env.lead_texts("SM1", "your crew left a mess last time").await;
    env.drain_queue().await;
    env.lead_texts("SM2", "hello??").await;
    env.drain_queue().await;

    assert_eq!(env.sent_bodies(), ["I'm sorry. A teammate will call you shortly."]);
    let stored = env.conversation(&c.id).await;
    assert_eq!(stored.status, ConversationStatus::NeedsHuman);
    assert_eq!(stored.outcome, Some(Outcome::Escalated));
    let alerts = env.alerts.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::ConversationEscalated);
    assert_eq!(alerts[0].subject, c.id.as_str());
    assert!(!serde_json::to_string(&alerts[0]).expect("json").contains("4155550100"));
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        2,
        "no model call after the handover"
    );
}

#[tokio::test]
async fn a_lead_asking_for_a_person_is_escalated_without_any_model() {
    let env = env(None, &[]);
    let c = env.campaign_conversation(scripted()).await;

    env.lead_texts("SM1", "Can I talk to a real person?").await;
    env.drain_queue().await;

    assert!(env.sent_bodies().is_empty(), "the scripted fallback is not sent");
    let stored = env.conversation(&c.id).await;
    assert_eq!(
        (stored.status, stored.outcome),
        (ConversationStatus::NeedsHuman, Some(Outcome::Escalated))
    );
    assert_eq!(env.alerts.alerts().len(), 1);
}

#[tokio::test]
async fn the_scripted_agent_answers_exempt_from_the_hourly_cap_up_to_the_daily_cap() {
    let env = env(
        None,
        &[
            ("SMSRELAY_AGENT_MAX_REPLIES_PER_DAY", "2"),
            ("SMSRELAY_RATE_LIMIT_PER_HOUR", "1"),
        ],
    );
    let c = env.campaign_conversation(scripted()).await;

    for (sid, text) in [("SM1", "hi"), ("SM2", "what does it cost?"), ("SM3", "hello?")] {
        env.lead_texts(sid, text).await;
        env.drain_queue().await;
        env.advance(std::time::Duration::from_secs(60));
    }

    assert_eq!(
        env.sent_bodies().len(),
        2,
        "two replies within the hour despite a cap of 1/hour, then the daily cap"
    );
    let stored = env.conversation(&c.id).await;
    let outbound = stored
        .turns
        .iter()
        .filter(|t| t.direction == Direction::Outbound)
        .count();
    assert_eq!(outbound, 2);
    assert_eq!(stored.status, ConversationStatus::Open);
    assert_eq!(
        agent_turn(env.ctx(), env.conversation_ports(), &c.id)
            .await
            .expect("turn"),
        TurnOutcome::Capped
    );
    // A rule with an outcome ends the conversation, reply sent first.
    env.advance(std::time::Duration::from_secs(86_400));
    env.lead_texts("SM4", "not interested, sorry").await;
    env.drain_queue().await;
    let stored = env.conversation(&c.id).await;
    assert_eq!(stored.outcome, Some(Outcome::Unqualified));
    assert_eq!(
        env.sent_bodies().last().map(String::as_str),
        Some("No problem, thanks for letting us know!")
    );
}

#[tokio::test]
async fn a_redelivered_job_sends_nothing_twice_even_after_a_crash_between_send_and_link() {
    let env = env(None, &[]);
    let c = env.campaign_conversation(scripted()).await;
    env.lead_texts("SM1", "hi").await;
    let job = JobPayload::agent_turn(c.id.clone(), env.now());

    // The first delivery sent the reply and crashed before linking it to the conversation.
    let stored = env.conversation(&c.id).await;
    let id = reply_id(&stored, &stored.turns[0]);
    let cmd = SendCommand {
        to: phone(LEAD),
        body: MessageBody::parse("Thanks! When would suit you for a free inspection?").expect("body"),
        from: Sender::parse(OURS).expect("sender"),
        reference: None,
        metadata: serde_json::Map::new(),
        send_at: None,
        quiet_hours: None,
    };
    let opts = SendOptions {
        id: Some(id.clone()),
        reply_to_lead: true,
    };
    send_message_with(env.ctx(), cmd, opts).await.expect("sent");

    env.drain_queue().await; // the job handle_inbound queued
    handle_job(env.ctx(), env.conversation_ports(), &job)
        .await
        .expect("redelivery");
    handle_job(env.ctx(), env.conversation_ports(), &job)
        .await
        .expect("redelivery");

    assert_eq!(env.provider.call_count(), 1);
    let stored = env.conversation(&c.id).await;
    let linked: Vec<_> = stored.turns.iter().filter_map(|t| t.message_id.clone()).collect();
    assert_eq!(linked, [id], "the earlier send is linked, once");
}

#[tokio::test]
async fn a_model_that_refuses_fails_the_job_sends_nothing_and_a_later_delivery_answers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"
        }})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    model_says(&server, None, "Happy to help. What day suits you?").await;
    let env = env(Some(&server), &[("SMSRELAY_AGENT_MAX_REPLIES_PER_DAY", "1")]);
    let c = env.campaign_conversation(openai()).await;
    env.lead_texts("SM1", "how much is an inspection?").await;
    let job = JobPayload::agent_turn(c.id.clone(), env.now());

    assert!(handle_job(env.ctx(), env.conversation_ports(), &job).await.is_err());
    assert_eq!(env.provider.call_count(), 0);

    handle_job(env.ctx(), env.conversation_ports(), &job)
        .await
        .expect("retried");
    assert_eq!(
        env.sent_bodies(),
        ["Happy to help. What day suits you?"],
        "the failed try gave its slot back"
    );
}

#[tokio::test]
async fn a_silent_conversation_is_classified_by_the_campaigns_model_else_by_the_rule() {
    let server = MockServer::start().await;
    model_says(
        &server,
        None,
        r#"{"outcome":"unqualified","reason":"Renting; cannot order work."}"#,
    )
    .await;
    let env = env(Some(&server), &[]);
    let c = env.campaign_conversation(openai()).await;
    env.lead_texts("SM1", "I rent, is that ok?").await;

    assert!(conversation_silent(env.ctx(), env.conversation_ports(), &c.id)
        .await
        .expect("classified"));
    let stored = env.conversation(&c.id).await;
    assert_eq!(stored.outcome, Some(Outcome::Unqualified));
    assert_eq!(
        stored.outcome_reason.as_deref(),
        Some("classified by the model: Renting; cannot order work.")
    );
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap_or_default()[0].body).expect("JSON");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);

    // A scripted campaign has no model: the no-model rule (the lead replied → qualified).
    let other = env.env_with_scripted_conversation().await;
    assert!(conversation_silent(env.ctx(), env.conversation_ports(), &other)
        .await
        .expect("ended"));
    assert_eq!(env.conversation(&other).await.outcome, Some(Outcome::Qualified));
}

impl Env {
    /// A second conversation (another business number) on a scripted campaign, with a reply.
    async fn env_with_scripted_conversation(&self) -> ConversationId {
        self.campaigns.set("scripted-campaign", scripted());
        let ours = phone("+15005550007");
        let mut c = open_or_create(
            &self.store,
            &ours,
            &phone(LEAD),
            Some("scripted-campaign".to_owned()),
            self.now(),
        )
        .await
        .expect("opened");
        c.append(crate::domain::Turn {
            direction: Direction::Inbound,
            body: "maybe".to_owned(),
            at: self.now(),
            message_id: None,
            provider_ref: Some("SMx".to_owned()),
        })
        .expect("open");
        c.version += 1;
        self.store.update_conversation(&c).await.expect("stored");
        c.id
    }
}

#[tokio::test]
async fn a_retell_campaign_turn_does_nothing_retell_answers_itself() {
    let env = env(None, &[]);
    let c = env
        .campaign_conversation(AgentSpec::Retell {
            retell_agent_id: "agent_1".to_owned(),
        })
        .await;
    env.lead_texts("SM1", "hi").await;

    assert_eq!(
        agent_turn(env.ctx(), env.conversation_ports(), &c.id)
            .await
            .expect("turn"),
        TurnOutcome::Skipped("Retell's agent answers by itself")
    );
    env.drain_queue().await;
    assert_eq!(env.provider.call_count(), 0);
    assert_eq!(env.conversation(&c.id).await.status, ConversationStatus::Open);
}

#[tokio::test]
async fn a_reply_to_an_opted_out_lead_is_suppressed_not_sent() {
    let env = env(None, &[]);
    let c = env.campaign_conversation(scripted()).await;
    env.lead_texts("SM1", "hi").await;
    // Opted out elsewhere (a 21610 on another send) while the conversation stayed open.
    crate::ports::ConsentStore::opt_out(&env.store, &phone(LEAD), "provider_21610", env.now())
        .await
        .expect("opted out");

    let TurnOutcome::Answered {
        message_id: Some(id), ..
    } = agent_turn(env.ctx(), env.conversation_ports(), &c.id)
        .await
        .expect("turn")
    else {
        panic!("not answered");
    };

    assert_eq!(env.provider.call_count(), 0);
    assert_eq!(env.message(&id).await.status, crate::domain::MessageStatus::Suppressed);
}

#[tokio::test]
async fn an_agent_reply_is_not_held_by_quiet_hours_but_an_api_message_is() {
    let env = env(None, &[]);
    let night = crate::domain::QuietHours::parse("00:00", "23:59", "UTC").expect("window");
    let cmd = || SendCommand {
        to: phone(LEAD),
        body: MessageBody::parse("Sure, 2pm works.").expect("body"),
        from: Sender::parse(OURS).expect("sender"),
        reference: None,
        metadata: serde_json::Map::new(),
        send_at: None,
        quiet_hours: Some(night.clone()),
    };
    let held = send_message_with(env.ctx(), cmd(), SendOptions::default())
        .await
        .expect("accepted");
    assert_eq!(held.message.status, crate::domain::MessageStatus::Scheduled);
    let reply = SendOptions {
        id: None,
        reply_to_lead: true,
    };
    let sent = send_message_with(env.ctx(), cmd(), reply).await.expect("accepted");
    assert_ne!(sent.message.status, crate::domain::MessageStatus::Scheduled);
    assert_eq!(env.provider.call_count(), 1);
}

#[tokio::test]
async fn two_deliveries_of_one_turn_at_once_send_one_reply() {
    let env = env(None, &[]);
    let c = env.campaign_conversation(scripted()).await;
    env.lead_texts("SM1", "hi").await;

    let (a, b) = tokio::join!(
        agent_turn(env.ctx(), env.conversation_ports(), &c.id),
        agent_turn(env.ctx(), env.conversation_ports(), &c.id)
    );
    a.expect("first");
    b.expect("second");

    assert_eq!(env.provider.call_count(), 1);
    let stored = env.conversation(&c.id).await;
    assert_eq!(
        stored
            .turns
            .iter()
            .filter(|t| t.direction == Direction::Outbound)
            .count(),
        1
    );
}

#[tokio::test]
async fn an_escalated_conversation_that_goes_silent_ends_escalated_without_a_model() {
    let server = MockServer::start().await;
    let env = env(Some(&server), &[]);
    let c = env.campaign_conversation(openai()).await;
    env.lead_texts("SM1", "I want to speak to a representative").await;
    env.drain_queue().await;

    assert!(conversation_silent(env.ctx(), env.conversation_ports(), &c.id)
        .await
        .expect("ended"));

    let stored = env.conversation(&c.id).await;
    assert_eq!(
        (stored.status, stored.outcome),
        (ConversationStatus::Ended, Some(Outcome::Escalated))
    );
    assert_eq!(stored.outcome_reason.as_deref(), Some("the lead asked for a person"));
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn control_characters_from_the_model_never_reach_the_lead() {
    let server = MockServer::start().await;
    model_says(&server, None, "Sure\u{7}, 2pm works.\u{0}").await;
    let env = env(Some(&server), &[]);
    env.campaign_conversation(openai()).await;

    env.lead_texts("SM1", "is 2pm ok?").await;
    env.drain_queue().await;

    assert_eq!(env.sent_bodies(), ["Sure, 2pm works."]);
}
