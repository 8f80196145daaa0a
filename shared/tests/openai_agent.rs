//! The `openai` agent against a wiremock server speaking the Chat Completions wire format
//! (conversation-facts §3: `tool_calls` with JSON-string `arguments`, `role: tool` results, the
//! `{"error": {...}}` body, `Retry-After`), on the manual clock: a backoff is observed as the
//! moment the client sleeps until, never waited for.

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};
use smsrelay::adapters::openai::{OpenAiAgent, OpenAiSettings};
use smsrelay::domain::{AgentSpec, ConversationId, Direction, Outcome, Turn};
use smsrelay::ports::{Agent, AgentError, AgentReply, AgentRequest, Classification, Clock, ToolCall, ToolHost};
use smsrelay::testing::ManualClock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/v1/chat/completions";

struct World {
    server: MockServer,
    clock: Arc<ManualClock>,
    agent: OpenAiAgent,
    host: Arc<Host>,
}

/// A tool host that books whatever it is asked and records the calls.
#[derive(Default)]
struct Host(Mutex<Vec<ToolCall>>);

impl Host {
    fn calls(&self) -> Vec<ToolCall> {
        self.0.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl ToolHost for Host {
    async fn execute(&self, call: &ToolCall) -> Result<Value, String> {
        self.0.lock().expect("lock").push(call.clone());
        Ok(match call {
            ToolCall::BookAppointment { start, .. } => {
                json!({"status": "confirmed", "booking_id": "bk_551", "start": start})
            }
            _ => json!({"status": "recorded"}),
        })
    }
}

async fn world() -> World {
    let server = MockServer::start().await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).single().expect("time"),
    ));
    let agent = OpenAiAgent::new(
        OpenAiSettings {
            base_url: format!("{}/v1/", server.uri()),
            api_key: Some(SecretString::from("sk-test")),
            default_model: Some("gpt-4.1-mini".to_owned()),
        },
        smsrelay::wiring::plain_http_client(),
        clock.clone(),
    );
    World {
        server,
        clock,
        agent,
        host: Arc::new(Host::default()),
    }
}

fn spec() -> AgentSpec {
    AgentSpec::Openai {
        prompt: "You book roof inspections for Acme.".to_owned(),
        model: None,
    }
}

fn turns() -> Vec<Turn> {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).single().expect("time");
    vec![
        Turn {
            direction: Direction::Outbound,
            body: "Hi Dana, it's Acme Roofing. Still want a free inspection this week?".to_owned(),
            at,
            message_id: None,
            provider_ref: None,
        },
        Turn {
            direction: Direction::Inbound,
            body: "yes thursday 2pm if possible".to_owned(),
            at: at + chrono::Duration::minutes(5),
            message_id: None,
            provider_ref: Some("SM1".to_owned()),
        },
    ]
}

/// A `chat.completion` body around `message`.
fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-AbC123", "object": "chat.completion", "created": 1_780_012_790, "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{ "index": 0, "finish_reason": finish_reason, "logprobs": null, "message": message }],
        "usage": { "prompt_tokens": 212, "completion_tokens": 31, "total_tokens": 243 }
    })
}

fn text(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(
        json!({"role": "assistant", "content": content, "refusal": null}),
        "stop",
    ))
}

fn tool_call(name: &str, arguments: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(
        json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_9xY", "type": "function", "function": {"name": name, "arguments": arguments}}
        ]}),
        "tool_calls",
    ))
}

fn error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "message": "Rate limit reached for gpt-4.1-mini", "type": "requests", "param": null, "code": code
    }}))
}

impl World {
    /// Run a reply on a task (so the test can move the clock while it sleeps), deadline `within`.
    fn reply(&self, within: Duration) -> tokio::task::JoinHandle<Result<AgentReply, AgentError>> {
        let (agent, host, clock) = (self.agent.clone(), self.host.clone(), self.clock.clone());
        tokio::spawn(async move {
            let (spec, turns, id) = (spec(), turns(), ConversationId::generate(clock.now()));
            let request = AgentRequest {
                spec: &spec,
                conversation_id: &id,
                turns: &turns,
                deadline: clock.monotonic() + within,
            };
            agent.reply(request, host.as_ref()).await
        })
    }

    async fn classify(&self) -> Result<Option<Classification>, AgentError> {
        let (spec, turns, id) = (spec(), turns(), ConversationId::generate(self.clock.now()));
        let request = AgentRequest {
            spec: &spec,
            conversation_id: &id,
            turns: &turns,
            deadline: self.clock.monotonic() + Duration::from_secs(20),
        };
        self.agent.classify(request).await
    }

    /// Wait until the client sleeps, jump to its wake-up; how far the clock moved.
    async fn next_wakeup(&self) -> Duration {
        self.clock.wait_for_sleepers(1).await;
        let before = self.clock.monotonic();
        assert!(self.clock.advance_to_next_wakeup());
        // Let the woken sleeper leave before the next wait counts sleepers again.
        while self.clock.sleepers() > 0 {
            tokio::task::yield_now().await;
        }
        self.clock.monotonic().saturating_since(before)
    }

    async fn bodies(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("JSON request"))
            .collect()
    }
}

#[tokio::test]
async fn a_tool_call_is_executed_its_result_goes_back_and_the_final_text_is_the_reply() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(text("Booked: Thursday 2pm. See you then!"))
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", "Bearer sk-test"))
        .respond_with(tool_call(
            "book_appointment",
            r#"{"start":"2026-12-03T14:00:00-08:00","duration_minutes":60,"notes":null}"#,
        ))
        .mount(&w.server)
        .await;

    let reply = w.reply(Duration::from_secs(20)).await.expect("task").expect("reply");

    assert_eq!(reply.text.as_deref(), Some("Booked: Thursday 2pm. See you then!"));
    let booked = ToolCall::BookAppointment {
        start: "2026-12-03T14:00:00-08:00".to_owned(),
        duration_minutes: 60,
        notes: None,
    };
    assert_eq!(reply.calls, vec![booked.clone()]);
    assert_eq!(w.host.calls(), vec![booked]);
    let bodies = w.bodies().await;
    assert_eq!(bodies.len(), 2);
    let first = &bodies[0];
    assert_eq!(
        first["model"], "gpt-4.1-mini",
        "SMSRELAY_AGENT_MODEL when the campaign names none"
    );
    assert_eq!(first["tool_choice"], "auto");
    assert_eq!(first["messages"][0]["role"], "system");
    assert!(first["messages"][0]["content"]
        .as_str()
        .is_some_and(|c| c.starts_with("You book roof inspections for Acme.")));
    assert_eq!(first["messages"][1]["role"], "assistant");
    assert_eq!(
        first["messages"][2],
        json!({"role": "user", "content": "yes thursday 2pm if possible"})
    );
    let names: Vec<&str> = first["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "book_appointment",
            "escalate_to_human",
            "mark_qualified",
            "mark_unqualified",
            "end_conversation"
        ]
    );
    // The assistant message comes back unchanged, then the tool's result under its call id.
    let messages = bodies[1]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 5);
    assert_eq!(messages[3]["tool_calls"][0]["id"], "call_9xY");
    assert_eq!(messages[3]["content"], Value::Null);
    assert_eq!(messages[4]["role"], "tool");
    assert_eq!(messages[4]["tool_call_id"], "call_9xY");
    let result: Value = serde_json::from_str(messages[4]["content"].as_str().expect("string content")).expect("JSON");
    assert_eq!(result["status"], "confirmed");
    assert_eq!(result["booking_id"], "bk_551");
}

#[tokio::test]
async fn bad_tool_arguments_go_back_to_the_model_as_an_error_and_nothing_is_executed() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(text("Which day works for you?"))
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(tool_call(
            "book_appointment",
            r#"{"start":"thursday afternoon","duration_minutes":60,"notes":null}"#,
        ))
        .mount(&w.server)
        .await;

    let reply = w.reply(Duration::from_secs(20)).await.expect("task").expect("reply");

    assert_eq!(reply.text.as_deref(), Some("Which day works for you?"));
    assert!(reply.calls.is_empty());
    assert!(w.host.calls().is_empty(), "an invalid call is never executed");
    let bodies = w.bodies().await;
    let tool_message = &bodies[1]["messages"][4];
    assert_eq!(tool_message["tool_call_id"], "call_9xY");
    let result: Value = serde_json::from_str(tool_message["content"].as_str().expect("content")).expect("JSON");
    assert!(
        result["error"].as_str().is_some_and(|e| e.contains("start")),
        "{result}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_exactly_that_long() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(error(429, "rate_limit_exceeded").insert_header("retry-after", "3"))
        .up_to_n_times(1)
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(text("Thursday 2pm works!"))
        .mount(&w.server)
        .await;

    let task = w.reply(Duration::from_secs(20));
    assert_eq!(w.next_wakeup().await, Duration::from_secs(3));
    let reply = task.await.expect("task").expect("reply");

    assert_eq!(reply.text.as_deref(), Some("Thursday 2pm works!"));
    assert_eq!(w.bodies().await.len(), 2);
}

#[tokio::test]
async fn a_long_retry_after_is_capped_and_an_insufficient_quota_429_is_not_retried() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(error(429, "rate_limit_exceeded").insert_header("retry-after", "120"))
        .up_to_n_times(1)
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(error(429, "insufficient_quota"))
        .mount(&w.server)
        .await;

    let task = w.reply(Duration::from_secs(60));
    assert_eq!(w.next_wakeup().await, Duration::from_secs(10), "capped at 10 s");
    let err = task.await.expect("task").expect_err("quota is not retried");

    assert!(
        matches!(err, AgentError::Refused(ref m) if m.contains("insufficient_quota")),
        "{err}"
    );
    assert_eq!(w.bodies().await.len(), 2);
}

#[tokio::test]
async fn a_500_is_retried_with_backoff_then_succeeds() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "message": "The server had an error", "type": "server_error", "param": null, "code": null
        }})))
        .up_to_n_times(1)
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(text("Sure, what time?"))
        .mount(&w.server)
        .await;

    let task = w.reply(Duration::from_secs(20));
    let waited = w.next_wakeup().await;
    let reply = task.await.expect("task").expect("reply");

    assert!(
        (Duration::from_millis(375)..=Duration::from_millis(500)).contains(&waited),
        "first backoff 0.5 s with jitter, waited {waited:?}"
    );
    assert_eq!(reply.text.as_deref(), Some("Sure, what time?"));
}

#[tokio::test]
async fn a_wait_past_the_deadline_is_an_error_without_another_request() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(error(429, "rate_limit_exceeded").insert_header("retry-after", "8"))
        .mount(&w.server)
        .await;

    let err = w
        .reply(Duration::from_secs(5))
        .await
        .expect("task")
        .expect_err("deadline");

    assert!(matches!(err, AgentError::DeadlineExceeded), "{err}");
    assert_eq!(w.bodies().await.len(), 1);
    assert_eq!(w.clock.sleepers(), 0);
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_the_attempts_as_unavailable() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(error(503, "overloaded").insert_header("retry-after-ms", "250"))
        .mount(&w.server)
        .await;

    let task = w.reply(Duration::from_secs(20));
    for _ in 0..3 {
        assert_eq!(w.next_wakeup().await, Duration::from_millis(250), "retry-after-ms wins");
    }
    let err = task.await.expect("task").expect_err("gives up");

    assert!(matches!(err, AgentError::Unavailable(_)), "{err}");
    assert_eq!(w.bodies().await.len(), 4);
}

#[tokio::test]
async fn classification_asks_for_a_strict_schema_and_reads_the_outcome() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_string_contains("lead_outcome"))
        .respond_with(text(
            r#"{"outcome":"qualified","reason":"Wants an inspection, no time agreed."}"#,
        ))
        .up_to_n_times(1)
        .mount(&w.server)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(text(r#"{"outcome":"booked","reason":"?"}"#))
        .mount(&w.server)
        .await;

    let got = w.classify().await.expect("classified");
    assert_eq!(
        got,
        Some(Classification {
            outcome: Outcome::Qualified,
            reason: "Wants an inspection, no time agreed.".to_owned()
        })
    );
    let body = &w.bodies().await[0];
    let format = &body["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(format["json_schema"]["schema"]["additionalProperties"], false);
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["outcome"]["enum"],
        json!([
            "success",
            "qualified",
            "unqualified",
            "escalated",
            "no_response",
            "discarded"
        ])
    );
    assert!(body.get("tools").is_none());

    let bad = w.classify().await.expect_err("not one of the six");
    assert!(matches!(bad, AgentError::BadOutput(_)), "{bad}");
}

#[tokio::test]
async fn a_2xx_that_is_not_a_completion_is_bad_output_not_retried() {
    let w = world().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&w.server)
        .await;

    let err = w
        .reply(Duration::from_secs(20))
        .await
        .expect("task")
        .expect_err("unusable");

    assert!(matches!(err, AgentError::BadOutput(_)), "{err}");
    assert_eq!(w.bodies().await.len(), 1);
}
