//! The Lambda handlers fed with `events/*.json`, on DynamoDB Local, with a Twilio-shaped server
//! (wiremock) answering the REST API exactly as Twilio does.

use crate::helpers::{config, dynamodb_table, sqs_queue};
use base64::Engine;
use lambda_http::Body;
use serde_json::{json, Value};
use smsrelay::adapters::dynamodb::DynamoMessageStore;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::adapters::twilio::compute_signature;
use smsrelay::entrypoints::{lambda, Routes};
use smsrelay::ports::Clock as _;
use smsrelay::wiring::{provider_for, Deps};
use std::sync::Arc;
use wiremock::matchers::{body_string_contains, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const SID: &str = "SM1342fe1b2c904d1ab04f0fc7a58abca9";
const EVENT_HOST: &str = "abc123.execute-api.us-east-1.amazonaws.com";

pub(crate) fn load(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

/// Twilio's create-message response (201), shaped as in Twilio's OpenAPI spec.
pub(crate) fn twilio_created(to: &str) -> Value {
    json!({
        "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": "Your technician is on the way",
        "date_created": "Sat, 21 Nov 2026 19:30:00 +0000", "date_sent": null, "date_updated": "Sat, 21 Nov 2026 19:30:00 +0000",
        "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+15005550006",
        "messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": null, "price_unit": "USD",
        "sid": SID, "status": "queued", "subresource_uris": {"media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}/Media.json")},
        "to": to, "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{SID}.json")
    })
}

struct LambdaEnv {
    deps: Deps,
    twilio: MockServer,
}

async fn lambda_env() -> LambdaEnv {
    lambda_env_at(Arc::new(SystemClock)).await
}

/// `requestContext.timeEpoch` of the signed events in `events/`.
const EVENT_TIME_MS: i64 = 1_795_462_200_000;

/// The time the signed events in `events/` were made (their `requestContext.timeEpoch`): Retell
/// signatures are only good for five minutes around it. Time runs from there at its real pace
/// (the handlers pace batches and wait on retries, which a stopped clock would hang).
fn event_time() -> Arc<dyn smsrelay::ports::Clock> {
    Arc::new(RunningFrom {
        wall: chrono::DateTime::from_timestamp_millis(EVENT_TIME_MS).expect("event time"),
        started: SystemClock.monotonic(),
    })
}

/// A manual clock stopped at the events' time, for tests that move time themselves (nothing they
/// run may wait on it: batch pacing would wait forever).
fn manual_event_time() -> Arc<smsrelay::testing::ManualClock> {
    Arc::new(smsrelay::testing::ManualClock::new(
        chrono::DateTime::from_timestamp_millis(EVENT_TIME_MS).expect("event time"),
    ))
}

/// Wall time that starts at `wall` and runs at the system clock's pace; monotonic time and sleeps
/// are the system clock's.
struct RunningFrom {
    wall: chrono::DateTime<chrono::Utc>,
    started: smsrelay::ports::Moment,
}

#[async_trait::async_trait]
impl smsrelay::ports::Clock for RunningFrom {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let elapsed = SystemClock.elapsed_since(self.started);
        self.wall + chrono::Duration::from_std(elapsed).expect("a short test")
    }

    fn monotonic(&self) -> smsrelay::ports::Moment {
        SystemClock.monotonic()
    }

    async fn sleep_until(&self, at: smsrelay::ports::Moment) {
        SystemClock.sleep_until(at).await;
    }
}

async fn lambda_env_at(clock: Arc<dyn smsrelay::ports::Clock>) -> LambdaEnv {
    lambda_env_with(clock, &[]).await
}

/// As [`lambda_env_at`], with `extra` configuration.
async fn lambda_env_with(clock: Arc<dyn smsrelay::ports::Clock>, extra: &[(&str, &str)]) -> LambdaEnv {
    let twilio = MockServer::start().await;
    let (client, table) = dynamodb_table().await;
    let twilio_base = twilio.uri();
    let mut pairs = vec![
        ("SMSRELAY_API_KEY", "test-api-key"),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_AUTH_TOKEN", "12345"),
        ("TWILIO_API_BASE", twilio_base.as_str()),
        ("RETELL_API_KEY", "test-api-key"),
    ];
    pairs.extend_from_slice(extra);
    let cfg = config(&pairs);
    let provider = provider_for(&cfg).expect("provider");
    let queue = sqs_queue().await;
    let deps = Deps::new(
        cfg,
        Arc::new(DynamoMessageStore::new(client, table)),
        Arc::new(queue),
        provider,
        clock,
    );
    LambdaEnv { deps, twilio }
}

async fn invoke(deps: &Deps, routes: Routes, event: &Value) -> (u16, Value) {
    let req = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event parses");
    let resp = lambda::handle(deps, routes, req).await.expect("handler never errors");
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        Body::Empty => Value::Null,
        Body::Binary(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        _ => Value::Null,
    };
    (status, body)
}

/// A copy of the status-callback event for `message_id`/`sid`/`status`, re-signed with token 12345.
fn status_event(message_id: &str, sid: &str, status: &str) -> Value {
    let mut ev = load("status-callback-delivered.json");
    let query = format!("message_id={message_id}");
    let params: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("From", "+15005550006"),
        ("MessageSid", sid),
        ("MessageStatus", status),
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("To", "+14155550100"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let url = format!("https://{EVENT_HOST}/webhooks/twilio/status?{query}");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    ev["rawQueryString"] = json!(query);
    ev["queryStringParameters"] = json!({"message_id": message_id});
    ev["headers"]["x-twilio-signature"] = json!(compute_signature("12345", &url, &params));
    ev["body"] = json!(base64::engine::general_purpose::STANDARD.encode(form));
    ev
}

fn get_event(id: &str) -> Value {
    let mut ev = load("send-get-message.json");
    ev["rawPath"] = json!(format!("/v1/messages/{id}"));
    ev["requestContext"]["http"]["path"] = ev["rawPath"].clone();
    ev["pathParameters"] = json!({"id": id});
    ev
}

#[tokio::test]
async fn a_message_is_sent_and_tracked_to_delivered_through_the_lambda_handlers_on_dynamodb() {
    let env = lambda_env().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")))
        .and(header_exists("authorization"))
        .and(body_string_contains("StatusCallback=https%3A%2F%2Fabc123.execute-api.us-east-1.amazonaws.com%2Fwebhooks%2Ftwilio%2Fstatus%3Fmessage_id%3Dmsg_"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("+14155550100")))
        .expect(1)
        .mount(&env.twilio)
        .await;

    let (status, sent) = invoke(&env.deps, Routes::Send, &load("send-post-message.json")).await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["provider_sid"], SID);
    assert_eq!(sent["ref"], json!({"type": "calendar_event", "id": "evt_123"}));
    assert_eq!(sent["metadata"], json!({"lead_id": "L1"}));
    let id = sent["id"].as_str().expect("id");

    // Out of order: delivered first, then a late sent, then a duplicate delivered.
    for st in ["delivered", "sent", "delivered"] {
        let (code, _) = invoke(&env.deps, Routes::StatusCallback, &status_event(id, SID, st)).await;
        assert_eq!(code, 200, "{st}");
    }
    let (code, got) = invoke(&env.deps, Routes::Send, &get_event(id)).await;
    assert_eq!(code, 200);
    assert_eq!(got["status"], "delivered");
    let statuses: Vec<&str> = got["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(statuses, ["queued", "sending", "sent", "delivered"]);
}

#[tokio::test]
async fn a_permanent_twilio_error_ends_failed_through_the_lambda_handler() {
    let env = lambda_env().await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211, "message": "The 'To' number is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400
        })))
        .expect(1)
        .mount(&env.twilio)
        .await;
    let (status, sent) = invoke(&env.deps, Routes::Send, &load("send-post-message.json")).await;
    assert_eq!(status, 202);
    assert_eq!(sent["status"], "failed");
    assert_eq!(sent["error"]["code"], 21211);
}

/// What one event file is fed to, and the answer it must get.
pub(crate) enum Expect {
    Http(Routes, u16),
    /// SQS batch: the SQS message ids that must be reported as failed.
    Sqs(&'static [&'static str]),
    /// Scheduled event: the processor tick succeeds.
    Schedule,
}

impl Expect {
    /// The Lambda binary (cargo package) whose handler answers it.
    pub(crate) fn binary(&self) -> &'static str {
        match self {
            Self::Http(Routes::Send, _) => "send",
            Self::Http(Routes::StatusCallback, _) => "status-callback",
            Self::Http(Routes::Batch, _) => "batch",
            Self::Http(Routes::Admin, _) => "admin",
            Self::Http(Routes::Inbound, _) => "inbound",
            Self::Http(Routes::Campaigns, _) => "campaigns",
            Self::Http(Routes::All, _) => panic!("Routes::All is smsrelay-local, not a Lambda function"),
            Self::Sqs(_) => "retry-consumer",
            Self::Schedule => "processor",
        }
    }
}

/// Every file of `events/`, in the order they are fed (later ones build on earlier ones: the
/// START re-opts the lead in before the lead is posted), with the answer each must get.
pub(crate) fn event_expectations() -> Vec<(&'static str, Expect)> {
    vec![
        ("send-post-message.json", Expect::Http(Routes::Send, 202)),
        ("send-get-message.json", Expect::Http(Routes::Send, 404)),
        ("send-invalid-phone.json", Expect::Http(Routes::Send, 400)),
        (
            "status-callback-delivered.json",
            Expect::Http(Routes::StatusCallback, 200),
        ),
        (
            "status-callback-bad-signature.json",
            Expect::Http(Routes::StatusCallback, 403),
        ),
        ("batch-post-batch.json", Expect::Http(Routes::Batch, 200)),
        ("admin-list-failed.json", Expect::Http(Routes::Admin, 200)),
        ("admin-health.json", Expect::Http(Routes::Admin, 200)),
        ("retry-consumer-job.json", Expect::Sqs(&[])),
        (
            "retry-consumer-malformed.json",
            Expect::Sqs(&["c80e8021-a70a-42c7-a470-796e1186f753"]),
        ),
        // No message id: the record cannot be named, so the whole batch fails (empty identifier).
        ("retry-consumer-missing-message-id.json", Expect::Sqs(&[""])),
        ("processor-schedule.json", Expect::Schedule),
        ("inbound-reply.json", Expect::Http(Routes::Inbound, 200)),
        ("inbound-duplicate.json", Expect::Http(Routes::Inbound, 200)),
        ("inbound-stop.json", Expect::Http(Routes::Inbound, 200)),
        ("inbound-start.json", Expect::Http(Routes::Inbound, 200)),
        ("inbound-help.json", Expect::Http(Routes::Inbound, 200)),
        ("inbound-bad-signature.json", Expect::Http(Routes::Inbound, 403)),
        ("inbound-retell-chat-inbound.json", Expect::Http(Routes::Inbound, 200)),
        ("inbound-retell-chat-analyzed.json", Expect::Http(Routes::Inbound, 200)),
        ("campaigns-create-campaign.json", Expect::Http(Routes::Campaigns, 201)),
        ("campaigns-replace-campaign.json", Expect::Http(Routes::Campaigns, 200)),
        ("campaigns-get-campaign.json", Expect::Http(Routes::Campaigns, 200)),
        ("campaigns-list-campaigns.json", Expect::Http(Routes::Campaigns, 200)),
        // The START above opted the lead in again: enrolled, step 1 sent.
        ("campaigns-post-lead.json", Expect::Http(Routes::Campaigns, 201)),
        ("campaigns-get-enrollment.json", Expect::Http(Routes::Campaigns, 404)),
        ("campaigns-resume-enrollment.json", Expect::Http(Routes::Campaigns, 404)),
        ("campaigns-get-report.json", Expect::Http(Routes::Campaigns, 200)),
    ]
}

/// The names of `events/*.json`, sorted; [`event_expectations`] must list each once.
pub(crate) fn event_files() -> Vec<String> {
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("events dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "env.json")
        .collect();
    files.sort();
    files
}

/// Every event file, fed as-is through its function's handler, gets the documented answer.
#[tokio::test]
async fn every_event_file_gets_its_documented_answer() {
    let env = lambda_env_at(event_time()).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("+14155550100")))
        .mount(&env.twilio)
        .await;
    let expected = event_expectations();
    let files = event_files();
    let mut listed: Vec<String> = expected.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed, "every events/*.json needs an expectation here");
    for (name, expect) in &expected {
        let event = load(name);
        match expect {
            Expect::Http(routes, want) => {
                let (got, body) = invoke(&env.deps, *routes, &event).await;
                assert_eq!(got, *want, "{name}: {body}");
                // Round trip: a valid API Gateway v2 event that re-serialises to the same JSON.
                let typed: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest =
                    serde_json::from_value(event.clone()).expect("typed event");
                let back = serde_json::to_value(&typed).expect("serialise");
                assert_eq!(back["rawPath"], event["rawPath"], "{name}");
                assert_eq!(back["body"], event["body"], "{name}");
            }
            Expect::Sqs(failed) => {
                let typed: aws_lambda_events::event::sqs::SqsEvent =
                    serde_json::from_value(event.clone()).expect("SQS event");
                assert_eq!(
                    serde_json::to_value(&typed).expect("serialise")["Records"][0]["body"],
                    event["Records"][0]["body"]
                );
                let resp = smsrelay::entrypoints::jobs::lambda::handle_sqs(&env.deps, typed).await;
                let got: Vec<String> = resp
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect();
                assert_eq!(
                    got,
                    failed.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                    "{name}"
                );
            }
            Expect::Schedule => {
                let typed: aws_lambda_events::event::eventbridge::EventBridgeEvent<Value> =
                    serde_json::from_value(event.clone()).expect("schedule event");
                assert_eq!(typed.detail_type, "Scheduled Event");
                let report = smsrelay::entrypoints::jobs::lambda::handle_schedule(&env.deps)
                    .await
                    .expect("tick");
                assert!(report["duration_ms"].is_u64(), "{name}: {report}");
            }
        }
    }
}

#[tokio::test]
async fn the_inbound_events_run_through_the_inbound_handler_on_dynamodb() {
    use smsrelay::ports::ConversationFilter;
    let env = lambda_env_at(event_time()).await;
    let lead = smsrelay::domain::PhoneNumber::parse_e164("+14155550100").expect("lead");
    // A reply, then Twilio's retry of it: one conversation, one stored message.
    for name in ["inbound-reply.json", "inbound-duplicate.json"] {
        let (status, body) = invoke(&env.deps, Routes::Inbound, &load(name)).await;
        assert_eq!(status, 200, "{name}");
        assert!(
            body.as_str().is_some_and(|b| b.ends_with("<Response/>")),
            "{name}: {body}"
        );
    }
    let open = env
        .deps
        .conversations
        .list_conversations(&lead, ConversationFilter::default(), 10, None)
        .await
        .expect("list");
    assert_eq!(open.items.len(), 1);
    assert_eq!(
        open.items[0].turns.len(),
        1,
        "the same MessageSid twice stores one message"
    );
    // A bad signature stores nothing.
    let (status, _) = invoke(&env.deps, Routes::Inbound, &load("inbound-bad-signature.json")).await;
    assert_eq!(status, 403);
    assert!(env
        .deps
        .consent
        .consent_history(&lead)
        .await
        .expect("history")
        .is_empty());
    // STOP: opted out with evidence, the conversation discarded, no reply.
    let (status, body) = invoke(&env.deps, Routes::Inbound, &load("inbound-stop.json")).await;
    assert_eq!(status, 200);
    assert!(body.as_str().is_some_and(|b| b.ends_with("<Response/>")), "{body}");
    assert!(env.deps.consent.opt_out_of(&lead).await.expect("read").is_some());
    let ended = env
        .deps
        .conversations
        .get_conversation(&open.items[0].id)
        .await
        .expect("get");
    assert_eq!(
        ended.and_then(|c| c.outcome),
        Some(smsrelay::domain::Outcome::Discarded)
    );
    // START: opted in again; HELP: the help text in TwiML.
    let (status, _) = invoke(&env.deps, Routes::Inbound, &load("inbound-start.json")).await;
    assert_eq!(status, 200);
    assert!(env.deps.consent.opt_out_of(&lead).await.expect("read").is_none());
    let history = env.deps.consent.consent_history(&lead).await.expect("history");
    let sids: Vec<Option<&str>> = history.iter().map(|e| e.message_sid.as_deref()).collect();
    assert_eq!(
        sids,
        [
            Some("SMa1b2c3d4e5f60718293a4b5c6d7e8f90"),
            Some("SMb1b2c3d4e5f60718293a4b5c6d7e8f91")
        ]
    );
    let (status, body) = invoke(&env.deps, Routes::Inbound, &load("inbound-help.json")).await;
    assert_eq!(status, 200);
    assert!(
        body.as_str().is_some_and(|b| b.contains(&format!(
            "<Message>{}</Message>",
            smsrelay::config::DEFAULT_HELP_TEXT.replace('&', "&amp;")
        ))),
        "{body}"
    );
    // Retell: chat_inbound answers JSON; chat_analyzed records the chat and its outcome.
    let (status, body) = invoke(&env.deps, Routes::Inbound, &load("inbound-retell-chat-inbound.json")).await;
    assert_eq!((status, body), (200, json!({})));
    let (status, _) = invoke(&env.deps, Routes::Inbound, &load("inbound-retell-chat-analyzed.json")).await;
    assert_eq!(status, 200);
    let qualified = env
        .deps
        .conversations
        .list_conversations(
            &lead,
            ConversationFilter {
                status: None,
                outcome: Some(smsrelay::domain::Outcome::Qualified),
            },
            10,
            None,
        )
        .await
        .expect("list");
    assert_eq!(qualified.items.len(), 1);
    assert_eq!(qualified.items[0].turns.len(), 3);
    // A Retell event out of its five-minute window is refused.
    let late = lambda_env().await;
    let (status, _) = invoke(&late.deps, Routes::Inbound, &load("inbound-retell-chat-analyzed.json")).await;
    assert_eq!(status, 403);
}

/// The lead's (+14155550100) open conversation with our number, of campaign `roof-leads` whose
/// agent is `agent` (the campaign lookup replaced by a fixed one).
async fn campaign_conversation(
    env: &mut LambdaEnv,
    agent: smsrelay::domain::AgentSpec,
) -> smsrelay::domain::Conversation {
    let agents = Arc::new(smsrelay::testing::StaticCampaignAgents::default());
    agents.set("roof-leads", agent);
    env.deps.campaign_agents = agents;
    let lead = smsrelay::domain::PhoneNumber::parse_e164("+14155550100").expect("lead");
    let ours = smsrelay::domain::PhoneNumber::parse_e164("+15005550006").expect("ours");
    let now = smsrelay::ports::Clock::now(env.deps.clock.as_ref());
    smsrelay::app::conversations::open_or_create(
        env.deps.conversations.as_ref(),
        &ours,
        &lead,
        Some("roof-leads".to_owned()),
        now,
    )
    .await
    .expect("opened")
}

#[tokio::test]
async fn the_signed_chat_inbound_event_names_the_retell_agent_of_the_campaign_conversation_on_dynamodb() {
    let mut env = lambda_env_at(event_time()).await;
    let c = campaign_conversation(
        &mut env,
        smsrelay::domain::AgentSpec::Retell {
            retell_agent_id: "agent_campaign_roofing_v3".to_owned(),
        },
    )
    .await;

    let (status, body) = invoke(&env.deps, Routes::Inbound, &load("inbound-retell-chat-inbound.json")).await;

    assert_eq!(status, 200);
    assert_eq!(body["chat_inbound"]["override_agent_id"], "agent_campaign_roofing_v3");
    assert_eq!(
        body["chat_inbound"]["dynamic_variables"]["conversation_id"],
        c.id.as_str()
    );
    assert_eq!(
        body["chat_inbound"]["metadata"]["smsrelay"]["conversation_id"],
        c.id.as_str()
    );
    assert_eq!(
        body["chat_inbound"]["metadata"]["smsrelay"]["from_number"],
        "+14155550100"
    );
}

/// One SQS record carrying `job` (what the retry consumer receives).
fn sqs_job(job: &smsrelay::ports::JobPayload, id: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = load("retry-consumer-job.json");
    event["Records"][0]["body"] = json!(serde_json::to_string(job).expect("job"));
    event["Records"][0]["messageId"] = json!(id);
    serde_json::from_value(event).expect("SQS event")
}

#[tokio::test]
async fn the_retry_consumer_runs_the_agent_turn_on_dynamodb_and_a_redelivery_sends_nothing_twice() {
    let openai = MockServer::start().await;
    let base = format!("{}/v1", openai.uri());
    let mut env = lambda_env_with(
        Arc::new(SystemClock),
        &[("OPENAI_BASE_URL", base.as_str()), ("OPENAI_API_KEY", "sk-test")],
    )
    .await;
    let events = Arc::new(smsrelay::testing::RecordingPublisher::default());
    env.deps.events = events.clone();
    let completion = |message: Value| {
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_780_012_790, "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}]
        }))
    };
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(completion(
            json!({"role": "assistant", "content": "Booked: tomorrow 3pm. See you then!"}),
        ))
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(completion(
            json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function", "function": {"name": "book_appointment",
            "arguments": "{\"start\":\"2026-11-22T15:00:00-08:00\",\"duration_minutes\":60,\"notes\":null}"}}]}),
        ))
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")))
        .and(body_string_contains("Booked%3A+tomorrow+3pm"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("+14155550100")))
        .expect(1)
        .mount(&env.twilio)
        .await;
    let c = campaign_conversation(
        &mut env,
        smsrelay::domain::AgentSpec::Openai {
            prompt: "You book roof inspections for Acme.".to_owned(),
            model: Some("gpt-4.1-mini".to_owned()),
        },
    )
    .await;

    // The lead's reply through the inbound Lambda, then the queued turn through the consumer, twice.
    let (status, _) = invoke(&env.deps, Routes::Inbound, &load("inbound-reply.json")).await;
    assert_eq!(status, 200);
    let job = smsrelay::ports::JobPayload::agent_turn(c.id.clone(), c.created_at);
    for id in ["first-delivery", "redelivery"] {
        let resp = smsrelay::entrypoints::jobs::lambda::handle_sqs(&env.deps, sqs_job(&job, id)).await;
        assert!(resp.batch_item_failures.is_empty(), "{id}");
    }

    let stored = env
        .deps
        .conversations
        .get_conversation(&c.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.outcome, Some(smsrelay::domain::Outcome::Success));
    assert_eq!(
        stored.appointment.map(|a| a.start).as_deref(),
        Some("2026-11-22T15:00:00-08:00")
    );
    let bodies: Vec<&str> = stored.turns.iter().map(|t| t.body.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "Yes! Tomorrow at 3pm works, thanks",
            "Booked: tomorrow 3pm. See you then!"
        ]
    );
    let booked = events
        .events()
        .into_iter()
        .filter(|e| e.detail_type == "appointment.booked")
        .count();
    assert_eq!(booked, 1);
    assert_eq!(
        openai.received_requests().await.unwrap_or_default().len(),
        2,
        "the redelivery asked no model"
    );
}

/// An event for `/v1/enrollments/{id}[/resume]` naming enrolment `id`.
fn enrollment_event(file: &str, id: &str) -> Value {
    let mut ev = load(file);
    let path = ev["rawPath"]
        .as_str()
        .expect("path")
        .replace("enr_01JD0000000000000000000000", id);
    ev["rawPath"] = json!(path);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["pathParameters"] = json!({ "id": id });
    ev
}

#[tokio::test]
async fn the_drip_runs_through_the_campaigns_processor_and_inbound_handlers_on_dynamodb() {
    use crate::twilio_mock::{creates, message_json, on_create};
    // At the events' time: 11:30 in Los Angeles, outside the default quiet hours.
    let clock = manual_event_time();
    let env = lambda_env_at(clock.clone()).await;
    for (i, sid) in [
        "SM00000000000000000000000000000001",
        "SM00000000000000000000000000000002",
        "SM00000000000000000000000000000003",
    ]
    .iter()
    .enumerate()
    {
        let priority = u8::try_from(i + 1).unwrap_or(9);
        on_create(
            &env.twilio,
            201,
            message_json(sid, "+14155550100", "step", "queued"),
            Some(1),
            priority,
        )
        .await;
    }
    let (status, body) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-create-campaign.json")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-create-campaign.json")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("campaign_exists")),
        "{body}"
    );
    let (status, body) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-replace-campaign.json")).await;
    assert_eq!((status, &body["name"]), (200, &json!("Roof leads (spring)")), "{body}");
    let (status, body) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-get-campaign.json")).await;
    assert_eq!(
        (status, &body["agent"]["provider"]),
        (200, &json!("scripted")),
        "{body}"
    );
    let (status, body) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-list-campaigns.json")).await;
    assert_eq!((status, &body["data"][0]["id"]), (200, &json!("roof-leads")), "{body}");
    // Lead in: step 1 at once; the same lead again is a duplicate with no second SMS.
    let (status, lead) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-post-lead.json")).await;
    assert_eq!(status, 201, "{lead}");
    assert!(lead["first_message_id"].is_string(), "{lead}");
    let (status, again) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-post-lead.json")).await;
    assert_eq!((status, &again["duplicate"]), (200, &json!(true)), "{again}");
    assert_eq!(creates(&env.twilio).await, 1);
    let id = lead["enrollment_id"].as_str().expect("id").to_owned();
    // Two hours later the scheduled tick sends step 2 (and not before).
    clock.advance(std::time::Duration::from_secs(7_199));
    smsrelay::entrypoints::jobs::lambda::handle_schedule(&env.deps)
        .await
        .expect("tick");
    assert_eq!(creates(&env.twilio).await, 1, "not before it is due");
    clock.advance(std::time::Duration::from_secs(1));
    let tick = smsrelay::entrypoints::jobs::lambda::handle_schedule(&env.deps)
        .await
        .expect("tick");
    assert_eq!(tick["due_sent"], 1, "{tick}");
    assert_eq!(creates(&env.twilio).await, 2);
    // A reply (the signed inbound event) pauses it; a day later step 3 does not go.
    clock.advance(std::time::Duration::from_secs(60));
    let (status, _) = invoke(&env.deps, Routes::Inbound, &load("inbound-reply.json")).await;
    assert_eq!(status, 200);
    let (status, e) = invoke(
        &env.deps,
        Routes::Campaigns,
        &enrollment_event("campaigns-get-enrollment.json", &id),
    )
    .await;
    assert_eq!(
        (status, &e["status"], &e["step"]),
        (200, &json!("paused"), &json!(2)),
        "{e}"
    );
    clock.advance(std::time::Duration::from_secs(86_400));
    smsrelay::entrypoints::jobs::lambda::handle_schedule(&env.deps)
        .await
        .expect("tick");
    assert_eq!(creates(&env.twilio).await, 2, "step 3 never sent");
    let (status, r) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-get-report.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&r["enrolled"], &r["paused"], &r["active"], &r["replied"], &r["sent"]),
        (&json!(1), &json!(1), &json!(0), &json!(1), &json!(2)),
        "{r}"
    );
    // STOP: the enrolment stops and the conversation is discarded; resume is refused.
    let (status, _) = invoke(&env.deps, Routes::Inbound, &load("inbound-stop.json")).await;
    assert_eq!(status, 200);
    let (status, e) = invoke(
        &env.deps,
        Routes::Campaigns,
        &enrollment_event("campaigns-get-enrollment.json", &id),
    )
    .await;
    assert_eq!((status, &e["status"]), (200, &json!("stopped")), "{e}");
    let (status, _) = invoke(
        &env.deps,
        Routes::Campaigns,
        &enrollment_event("campaigns-resume-enrollment.json", &id),
    )
    .await;
    assert_eq!(status, 409);
    let (_, r) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-get-report.json")).await;
    assert_eq!(
        (
            &r["stopped"],
            &r["opted_out"],
            &r["paused"],
            &r["outcomes"]["discarded"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(1)),
        "{r}"
    );
    clock.advance(std::time::Duration::from_secs(86_400 * 3));
    smsrelay::entrypoints::jobs::lambda::handle_schedule(&env.deps)
        .await
        .expect("tick");
    assert_eq!(creates(&env.twilio).await, 2, "nothing after STOP");
}

/// The no-response ending through the processor Lambda on DynamoDB Local: every step sent when
/// due, no reply, and `no_response_after` after the last step the conversation ends
/// `no_response`, the tick counts it and the report has it.
#[tokio::test]
async fn a_lead_that_never_replies_ends_no_response_through_the_processor_on_dynamodb() {
    use crate::twilio_mock::{creates, message_json, on_create};
    use smsrelay::ports::ConversationFilter;
    let clock = manual_event_time();
    let env = lambda_env_at(clock.clone()).await;
    for (priority, sid) in [
        (1, "SM00000000000000000000000000000007"),
        (2, "SM00000000000000000000000000000008"),
        (3, "SM00000000000000000000000000000009"),
    ] {
        on_create(
            &env.twilio,
            201,
            message_json(sid, "+14155550100", "step", "queued"),
            Some(1),
            priority,
        )
        .await;
    }
    let tick = || smsrelay::entrypoints::jobs::lambda::handle_schedule(&env.deps);
    let (status, body) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-create-campaign.json")).await;
    assert_eq!(status, 201, "{body}");
    let (status, lead) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-post-lead.json")).await;
    assert_eq!(status, 201, "{lead}");
    // Steps 2 and 3 when due (2 h, then a day), each once.
    clock.advance(std::time::Duration::from_secs(2 * 3_600));
    assert_eq!(tick().await.expect("tick")["due_sent"], 1);
    clock.advance(std::time::Duration::from_secs(86_400));
    assert_eq!(tick().await.expect("tick")["due_sent"], 1);
    assert_eq!(creates(&env.twilio).await, 3);
    // Not yet: three days after the last step less a minute.
    clock.advance(std::time::Duration::from_secs(3 * 86_400 - 60));
    assert_eq!(tick().await.expect("tick")["ended_no_response"], 0);
    clock.advance(std::time::Duration::from_secs(60));
    let report = tick().await.expect("tick");
    assert_eq!(report["ended_no_response"], 1, "{report}");
    assert_eq!(creates(&env.twilio).await, 3, "nothing more is sent");
    let phone = smsrelay::domain::PhoneNumber::parse_e164("+14155550100").expect("lead");
    let page = env
        .deps
        .conversations
        .list_conversations(&phone, ConversationFilter::default(), 10, None)
        .await
        .expect("listed");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].outcome, Some(smsrelay::domain::Outcome::NoResponse));
    let (status, r) = invoke(&env.deps, Routes::Campaigns, &load("campaigns-get-report.json")).await;
    assert_eq!(status, 200);
    assert_eq!(r["outcomes"]["no_response"], 1, "{r}");
    assert_eq!(r["replied"], 0, "{r}");
}

/// An API Gateway (payload 2.0) request to the console: `cookies` as API Gateway sends them,
/// a form body for a POST.
fn console_event(method: &str, raw_path: &str, cookies: &[String], form: Option<&str>) -> Value {
    let mut ev = load("admin-health.json");
    let (path, query) = raw_path.split_once('?').unwrap_or((raw_path, ""));
    ev["routeKey"] = json!(format!("ANY /console/{{proxy+}}"));
    ev["rawPath"] = json!(path);
    ev["rawQueryString"] = json!(query);
    ev["requestContext"]["http"]["path"] = json!(path);
    ev["requestContext"]["http"]["method"] = json!(method);
    ev["headers"].as_object_mut().expect("headers").remove("authorization");
    if !cookies.is_empty() {
        ev["cookies"] = json!(cookies);
    }
    if let Some(body) = form {
        ev["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
        ev["body"] = json!(body);
    }
    ev
}

/// The status, `Set-Cookie` pairs (`name=value`) and text of a console answer from the handler.
async fn invoke_console(deps: &Deps, event: &Value) -> (u16, Vec<String>, String) {
    let req = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event parses");
    let resp = lambda::handle(deps, Routes::Admin, req)
        .await
        .expect("handler never errors");
    let cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect();
    let text = match resp.body() {
        Body::Text(s) => s.clone(),
        _ => String::new(),
    };
    (resp.status().as_u16(), cookies, text)
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    html[at..].split('"').next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn the_admin_lambda_serves_the_console_with_a_stateless_session_and_retries_on_dynamodb() {
    use smsrelay::domain::{Message, MessageBody, MessageError, MessageId, MessageStatus, PhoneNumber};
    let env = lambda_env().await;
    let now = env.deps.clock.now();
    let mut m = Message::new(
        MessageId::generate(now),
        PhoneNumber::parse_e164("+14155550177").expect("phone"),
        "+15005550006".to_owned(),
        MessageBody::parse("Crew arrives at 9".to_owned()).expect("body"),
        MessageStatus::Failed,
        None,
        serde_json::Map::new(),
        now,
    );
    m.failed_listed = true;
    m.attempts = 3;
    m.error = Some(MessageError {
        code: 30003,
        message: "Unreachable destination handset".to_owned(),
    });
    env.deps.messages.create_message(&m).await.expect("stored");
    let id = m.id.as_str().to_owned();

    let (status, cookies, html) = invoke_console(&env.deps, &console_event("GET", "/console/login", &[], None)).await;
    assert_eq!(status, 200);
    let token = csrf_in(&html);
    let form = format!("key=test-api-key&csrf={token}");
    let (status, session, _) = invoke_console(
        &env.deps,
        &console_event("POST", "/console/login", &cookies, Some(&form)),
    )
    .await;
    assert_eq!(status, 303, "signed in through API Gateway's cookies");
    let session: Vec<String> = session
        .into_iter()
        .filter(|c| c.starts_with("smsrelay_console=") && c.len() > "smsrelay_console=".len())
        .collect();
    assert_eq!(session.len(), 1, "one session cookie");
    // Another invocation (any instance: nothing is kept in memory) accepts the session.
    let (status, _, failed) = invoke_console(&env.deps, &console_event("GET", "/console/failed", &session, None)).await;
    assert_eq!(status, 200);
    assert!(failed.contains(&id) && failed.contains("+1415***0177") && !failed.contains("+14155550177"));
    let (status, _, _) = invoke_console(
        &env.deps,
        &console_event(
            "POST",
            &format!("/console/failed/{id}/retry"),
            &session,
            Some("csrf=wrong"),
        ),
    )
    .await;
    assert_eq!(status, 403);
    let form = format!("csrf={}", csrf_in(&failed));
    let (status, _, _) = invoke_console(
        &env.deps,
        &console_event("POST", &format!("/console/failed/{id}/retry"), &session, Some(&form)),
    )
    .await;
    assert_eq!(status, 303);
    let stored = env
        .deps
        .messages
        .get_message(&m.id)
        .await
        .expect("read")
        .expect("there");
    assert!(!stored.failed_listed, "off the failed list");
    assert_eq!(stored.attempts, 0, "a fresh attempt budget");
}
