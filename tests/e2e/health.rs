//! Health degrades instead of failing or staying `ok`: sent messages piling up unconfirmed past
//! the poll window (issue 9 item 7) and a queue that cannot be read (item 8).

use crate::harness::ClockedApp;
use crate::helpers::{config, AppOptions};
use crate::twilio_mock::{message_json, on_create};
use serde_json::{json, Value};
use smsrelay::adapters::sqlite::{SimulatorLedger, SqliteStore};
use smsrelay::adapters::sqs_queue::SqsJobQueue;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::entrypoints::{lambda, Routes};
use smsrelay::ports::AlertKind;
use smsrelay::wiring::{simulator_on, Deps};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SID: &str = "SM5e0c0ffee0c0ffee0c0ffee0c0ffee0";

async fn v1_health(app: &ClockedApp) -> Value {
    let resp = app.get("/v1/health").send().await.expect("health");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn unconfirmed_messages_past_the_poll_window_degrade_health_and_alert_once() {
    // Given a Twilio that accepts a message and, when polled, still says `sent` (no callback ever comes)…
    let twilio = MockServer::start().await;
    on_create(
        &twilio,
        201,
        message_json(SID, "+14155550100", "Hello", "queued"),
        None,
        1,
    )
    .await;
    Mock::given(method("GET"))
        .and(path_regex(format!("/Messages/{SID}\\.json$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(message_json(SID, "+14155550100", "Hello", "sent")))
        .mount(&twilio)
        .await;
    let app = ClockedApp::with(AppOptions {
        twilio_base: Some(twilio.uri()),
        ..AppOptions::default()
    })
    .await;
    let sent = app.send(&json!({"to": "+14155550100", "body": "Hello"})).await;
    assert_eq!(sent["status"], "sent");
    assert_eq!(v1_health(&app).await["status"], "ok", "a fresh send is not a problem");

    // When the poll window (5 min poll delay + one 5 min processor interval) passes and the
    // processor's poll does not confirm it…
    app.advance(Duration::from_secs(6 * 60));
    let tick = app.run_processor().await;
    assert_eq!(tick["polled"], 1, "{tick}");
    let inside = v1_health(&app).await;
    assert_eq!(inside["status"], "ok", "polled, not yet past the window: {inside}");
    app.advance(Duration::from_secs(5 * 60));
    app.run_processor().await;

    // Then health is degraded, says why, and one alert is raised however often it is read.
    for _ in 0..3 {
        let h = v1_health(&app).await;
        assert_eq!(h["status"], "degraded", "{h}");
        assert_eq!(h["metrics"]["unconfirmed_over_5m"], 1, "{h}");
        assert_eq!(h["metrics"]["unconfirmed_past_poll_window"], 1, "{h}");
        assert!(
            h["alerts"]
                .as_array()
                .expect("alerts")
                .contains(&json!("callbacks_missing")),
            "{h}"
        );
    }
    let raised: Vec<_> = app
        .alerts
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::CallbacksMissing)
        .collect();
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].counts["unconfirmed"], 1);
    app.stop().await;
}

/// An SQS queue whose endpoint nobody answers (a closed loopback port): a real outage.
fn unreachable_queue() -> SqsJobQueue {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port to leave closed");
    let conf = aws_sdk_sqs::config::Builder::new()
        .http_client(smsrelay::wiring::aws_http_client())
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    let url = format!("http://127.0.0.1:{port}/000000000000/smsrelay-retry");
    SqsJobQueue::new(aws_sdk_sqs::Client::from_conf(conf), url.clone(), Some(url + "-dlq"))
}

fn load(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("event file")).expect("event JSON")
}

async fn invoke(deps: &Deps, routes: Routes, event: &Value) -> (u16, Value) {
    let req = lambda_http::request::from_str(&event.to_string()).expect("API Gateway event parses");
    let resp = lambda::handle(deps, routes, req).await.expect("handler never errors");
    let status = resp.status().as_u16();
    let body = match resp.body() {
        lambda_http::Body::Text(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        _ => Value::Null,
    };
    (status, body)
}

#[tokio::test]
async fn a_queue_outage_degrades_health_instead_of_failing_it() {
    let cfg = config(&[("SMSRELAY_API_KEY", "test-api-key")]);
    let provider = Arc::new(simulator_on(&cfg, SimulatorLedger::open_in_memory().expect("ledger")).expect("simulator"));
    let deps = Deps::new(
        cfg,
        Arc::new(SqliteStore::open_in_memory().expect("store")),
        Arc::new(unreachable_queue()),
        provider,
        Arc::new(SystemClock),
    );

    let (status, body) = invoke(&deps, Routes::Admin, &load("admin-health.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["metrics"]["pending_retries"], Value::Null, "{body}");
    assert_eq!(body["metrics"]["dead_letters"], Value::Null, "{body}");
    assert!(
        body["metrics"]["sent_last_hour"].is_u64(),
        "the other figures are read: {body}"
    );
    assert!(
        body["alerts"]
            .as_array()
            .expect("alerts")
            .contains(&json!("queue_unavailable")),
        "{body}"
    );

    let mut public = load("admin-health.json");
    public["routeKey"] = json!("GET /health");
    public["rawPath"] = json!("/health");
    public["requestContext"]["http"]["path"] = json!("/health");
    let (status, body) = invoke(&deps, Routes::Send, &public).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
}
