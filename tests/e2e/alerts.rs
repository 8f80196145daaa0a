//! An alert reaches a person: a batch where most sends fail raises exactly one alert, received
//! by a Slack-shaped server (wiremock) and as an `alert.raised` event on EventBridge (moto, routed
//! by a rule to an SQS queue the test reads).

use crate::faults::{env, Env};
use bytes::Bytes;
use serde_json::{json, Value};
use smsrelay::adapters::eventbridge::{EventBridgeAlerter, EventBridgePublisher};
use smsrelay::adapters::log_alerter::FanoutAlerter;
use smsrelay::adapters::slack::SlackAlerter;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::entrypoints::{handle, Routes};
use smsrelay::ports::{Alerter, JobQueue};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn endpoint() -> String {
    std::env::var("SMSRELAY_TEST_SQS_URL").expect("SMSRELAY_TEST_SQS_URL is not set: run scripts/test.sh")
}

fn creds() -> aws_sdk_sqs::config::Credentials {
    aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "static")
}

/// A bus with a rule sending every `smsrelay` event to a fresh queue.
async fn bus() -> (aws_sdk_eventbridge::Client, aws_sdk_sqs::Client, String, String) {
    let region = aws_sdk_sqs::config::Region::new("us-east-1");
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .region(region.clone())
            .endpoint_url(endpoint())
            .credentials_provider(creds())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(region)
            .endpoint_url(endpoint())
            .credentials_provider(creds())
            .build(),
    );
    let name = format!("smsrelay-alerts-{}", ulid::Ulid::new().to_string().to_lowercase());
    events.create_event_bus().name(&name).send().await.expect("bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("arn");
    events
        .put_rule()
        .name(&name)
        .event_bus_name(&name)
        .event_pattern(json!({"source": ["smsrelay"]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(&name)
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    (events, sqs, name, queue_url)
}

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, settle: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < settle {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let msgs = out.messages.unwrap_or_default();
        if !msgs.is_empty() {
            quiet_since = Instant::now();
        }
        for m in msgs {
            got.push(serde_json::from_str(m.body().unwrap_or("{}")).expect("envelope"));
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

#[tokio::test]
async fn a_mostly_failing_batch_raises_one_alert_on_slack_and_on_eventbridge() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    let (events_client, sqs, bus_name, queue_url) = bus().await;

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("alerts.db");
    let store = Arc::new(smsrelay::testing::CountingStore::new(Arc::new(
        smsrelay::adapters::sqlite::SqliteStore::open(&path).expect("store"),
    )));
    let queue: Arc<dyn JobQueue> =
        Arc::new(smsrelay::adapters::sqlite::SqliteJobQueue::open(&path, 5, Arc::new(SystemClock)).expect("queue"));
    let e: Env = env(store, queue).await;
    crate::twilio_mock::on_create(
        &e.twilio,
        400,
        crate::twilio_mock::error_json(21211, "Invalid 'To' Phone Number", 400),
        None,
        1,
    )
    .await;
    let deps = e.deps.clone();
    let publisher = EventBridgePublisher::new(events_client, bus_name);
    let channels: Vec<Arc<dyn Alerter>> = vec![
        Arc::new(SlackAlerter::new(
            secrecy::SecretString::from(format!("{}/services/T0/B0/x", slack.uri())),
            smsrelay::wiring::plain_http_client(),
        )),
        Arc::new(EventBridgeAlerter::new(publisher.clone())),
    ];
    let deps = deps
        .with_alerter(Arc::new(FanoutAlerter::new(channels)))
        .with_events(Arc::new(publisher));
    // Twilio refuses every create (21211), so the whole batch fails.
    let mut messages: Vec<Value> = (0..4)
        .map(|i| json!({"to": format!("+1415555090{i}"), "body": "x"}))
        .collect();
    messages.push(json!({"to": "+14155550909", "body": "ok"}));
    let req = http::Request::builder()
        .method("POST")
        .uri("/v1/batches")
        .header("authorization", "Bearer k")
        .body(Bytes::from(json!({ "messages": messages }).to_string()))
        .expect("request");
    let resp = handle(&deps, Routes::All, req).await;
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(body["failed"], 5, "{body}");

    let slack_requests = slack.received_requests().await.unwrap_or_default();
    let batch_alerts: Vec<Value> = slack_requests
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|j| j.to_string().contains("Batch"))
        .collect();
    assert_eq!(
        batch_alerts.len(),
        1,
        "exactly one batch alert on Slack: {batch_alerts:?}"
    );
    assert_eq!(
        slack_requests.len(),
        1,
        "one incident pages once: the items' failures raise nothing of their own"
    );
    assert!(
        batch_alerts[0].to_string().contains("21211: 5"),
        "the breakdown by error code: {}",
        batch_alerts[0]
    );
    assert!(batch_alerts[0]["blocks"].is_array());
    assert!(
        !batch_alerts[0].to_string().contains("1415555090"),
        "no phone numbers in alerts"
    );

    let envelopes = drain(&sqs, &queue_url, Duration::from_secs(2)).await;
    let kinds = |t: &str| envelopes.iter().filter(|e| e["detail-type"] == t).count();
    let batch_raised = envelopes
        .iter()
        .filter(|e| e["detail-type"] == "alert.raised" && e["detail"]["kind"] == "batch_failure_rate")
        .count();
    assert_eq!(batch_raised, 1, "exactly one alert.raised for the batch: {envelopes:?}");
    assert_eq!(kinds("alert.raised"), 1, "and no other alert: {envelopes:?}");
    let raised = envelopes
        .iter()
        .find(|e| e["detail-type"] == "alert.raised")
        .expect("alert.raised");
    assert_eq!(raised["detail"]["counts"]["failed_by_code"], json!({"21211": 5}));
    assert_eq!(kinds("batch.completed"), 1);
    assert_eq!(
        envelopes.iter().filter(|e| e["source"] == "smsrelay").count(),
        envelopes.len()
    );
}

/// Five sends in a row refused with `code`: how many consecutive-failure alerts they raise.
async fn consecutive_failure_alerts_after_five_refusals(code: u32) -> usize {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("streak.db");
    let store = Arc::new(smsrelay::testing::CountingStore::new(Arc::new(
        smsrelay::adapters::sqlite::SqliteStore::open(&path).expect("store"),
    )));
    let queue: Arc<dyn JobQueue> =
        Arc::new(smsrelay::adapters::sqlite::SqliteJobQueue::open(&path, 5, Arc::new(SystemClock)).expect("queue"));
    let mut e: Env = env(store, queue).await;
    crate::twilio_mock::on_create(
        &e.twilio,
        400,
        crate::twilio_mock::error_json(code, "refused", 400),
        None,
        1,
    )
    .await;
    let alerts = Arc::new(smsrelay::testing::RecordingAlerter::default());
    e.deps = e.deps.clone().with_alerter(alerts.clone());
    for i in 0..5 {
        let (status, m) = e.send(&format!("+1415555071{i}"), "x").await;
        assert_eq!(status, 202, "{m}");
        assert_eq!(m["status"], "failed", "{m}");
    }
    alerts
        .alerts()
        .iter()
        .filter(|a| a.kind == smsrelay::ports::AlertKind::ConsecutiveSendFailures)
        .count()
}

#[tokio::test]
async fn recipient_side_refusals_do_not_count_toward_the_senders_failure_streak() {
    // Given five recipients whose numbers are invalid (21211) or opted out (21610)
    for code in [21211, 21610] {
        // Then the sender is not reported as failing
        assert_eq!(
            consecutive_failure_alerts_after_five_refusals(code).await,
            0,
            "code {code}"
        );
    }
}

#[tokio::test]
async fn five_sender_side_refusals_in_a_row_raise_one_consecutive_failure_alert() {
    // Given a From number that cannot send (21606): five refusals in a row raise it once
    assert_eq!(consecutive_failure_alerts_after_five_refusals(21606).await, 1);
}

/// `POST /v1/batches` on smsrelay-local (the simulator).
async fn post_batch(app: &crate::helpers::TestApp, messages: Vec<Value>) -> Value {
    let resp = app
        .post_json("/v1/batches", &json!({ "messages": messages }))
        .send()
        .await
        .expect("batch");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn a_batch_of_seven_with_six_invalid_numbers_raises_one_alert_with_the_breakdown() {
    // Given six items to the simulator's invalid number (21211) and one good one (the hourly
    // limit per recipient raised so that all six reach the provider)
    let app = crate::helpers::TestApp::with(crate::helpers::AppOptions {
        env: vec![("SMSRELAY_RATE_LIMIT_PER_HOUR", "100".to_owned())],
        queue_poll: Some(Duration::from_millis(20)),
        ..crate::helpers::AppOptions::default()
    })
    .await;
    let mut messages: Vec<Value> = (0..6).map(|_| json!({"to": "+15005550001", "body": "x"})).collect();
    messages.push(json!({"to": "+14155550640", "body": "ok"}));
    let b = post_batch(&app, messages).await;
    assert_eq!((b["failed"].as_u64(), b["sent"].as_u64()), (Some(6), Some(1)), "{b}");
    // Then one alert, the batch's, named for what happened and carrying the breakdown
    let alerts = app.alerts.alerts();
    assert_eq!(alerts.len(), 1, "one incident, one alert: {alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.kind, smsrelay::ports::AlertKind::BatchFailureRate);
    assert_eq!(a.subject, b["batch_id"].as_str().expect("id"));
    assert_eq!(a.counts["failed_by_code"], json!({"21211": 6}));
    assert_eq!(
        (a.counts["failed"].as_u64(), a.counts["accepted"].as_u64()),
        (Some(6), Some(7))
    );
    assert!(
        !serde_json::to_string(a).expect("json").contains("5005550001"),
        "counts, not numbers"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_whose_items_were_all_rejected_raises_no_alert() {
    let app = crate::helpers::TestApp::new().await;
    let b = post_batch(
        &app,
        vec![
            json!({"to": "12345", "body": "x"}),
            json!({"to": "+14155550641", "body": " "}),
        ],
    )
    .await;
    assert_eq!(b["rejected"], 2, "{b}");
    assert!(app.alerts.alerts().is_empty(), "{:?}", app.alerts.alerts());
    let summary: Value = app
        .get_json(&format!("/v1/batches/{}", b["batch_id"].as_str().expect("id")))
        .await;
    assert_eq!(
        (summary["state"].as_str(), summary["alerted"].as_bool()),
        (Some("completed"), Some(false))
    );
    assert_eq!(app.sim().request_count(), 0);
    app.stop().await;
}
