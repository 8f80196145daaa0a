//! Kill smsrelay-local (SIGKILL) while Twilio is answering a create, start it again on the same
//! SQLite file: reconciliation finds the message at Twilio, so there is exactly ONE create request
//! and the message ends with Twilio's sid.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const SID: &str = "SM99999999999999999999999999999999";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn(port: u16, data: &std::path::Path, twilio: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smsrelay-local"))
        .args([
            "--port",
            &port.to_string(),
            "--data",
            &data.to_string_lossy(),
            "--tick",
            "200ms",
        ])
        .env("SMSRELAY_API_KEY", "crash-key")
        .env("TWILIO_ACCOUNT_SID", ACCOUNT)
        .env("TWILIO_AUTH_TOKEN", "12345")
        .env("TWILIO_API_BASE", twilio)
        .env("TWILIO_FROM_NUMBER", "+15005550006")
        .env("SMSRELAY_RECONCILE_AFTER", "1s")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smsrelay-local")
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    let start = Instant::now();
    while !http
        .get(format!("{base}/health"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "smsrelay-local did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn twilio_message(body: &str) -> Value {
    json!({
        "account_sid": ACCOUNT, "api_version": "2010-04-01", "body": body,
        "date_created": chrono::Utc::now().to_rfc2822(), "date_sent": null, "date_updated": chrono::Utc::now().to_rfc2822(),
        "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+15005550006",
        "messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": null, "price_unit": "USD",
        "sid": SID, "status": "sent", "subresource_uris": {}, "to": "+14155550100",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{SID}.json")
    })
}

#[tokio::test]
async fn a_crash_while_twilio_answers_yields_exactly_one_create_and_the_providers_sid() {
    let twilio = MockServer::start().await;
    let messages = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    Mock::given(method("POST"))
        .and(path(&messages))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(twilio_message("Technician on the way"))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&twilio)
        .await;
    Mock::given(method("GET"))
        .and(path(&messages))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [twilio_message("Technician on the way")], "end": 0, "first_page_uri": "", "next_page_uri": null,
            "page": 0, "page_size": 50, "previous_page_uri": null, "start": 0, "uri": messages
        })))
        .mount(&twilio)
        .await;

    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("local.db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = smsrelay::wiring::plain_http_client();

    let mut first = spawn(port, &data, &twilio.uri());
    wait_healthy(&http, &base).await;
    let send = tokio::spawn({
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/v1/messages"))
                .bearer_auth("crash-key")
                .json(&json!({"to": "+14155550100", "body": "Technician on the way"}))
                .send()
                .await
        }
    });
    // Wait until Twilio holds the create request, then kill the process mid-request.
    let start = Instant::now();
    while twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .all(|r| r.method != wiremock::http::Method::POST)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the create request never reached Twilio"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert!(send.await.expect("join").is_err(), "the client saw the connection die");

    let mut second = spawn(port, &data, &twilio.uri());
    wait_healthy(&http, &base).await;
    let list: Value = http
        .get(format!("{base}/v1/messages?to=%2B14155550100"))
        .bearer_auth("crash-key")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["data"][0]["id"]
        .as_str()
        .expect("the accepted message survived the crash")
        .to_owned();
    // The record said `sending` before Twilio was called. The restarted process may already have
    // reconciled it (its first tick can come before this read on a loaded machine): then it is
    // `sent` with Twilio's sid. No other state is allowed here: never `queued` or `failed`,
    // which would mean a resend or a lost message.
    let found = &list["data"][0];
    match found["status"].as_str() {
        Some("sending") => {}
        Some("sent") => assert_eq!(found["provider_sid"], SID, "reconciled onto Twilio's message: {found}"),
        _ => panic!("after the crash the message must be `sending` or reconciled `sent`: {found}"),
    }
    let history: Vec<&str> = found["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert!(
        history.contains(&"sending"),
        "recorded `sending` before the provider call: {history:?}"
    );

    let start = Instant::now();
    let message = loop {
        let m: Value = http
            .get(format!("{base}/v1/messages/{id}"))
            .bearer_auth("crash-key")
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if m["status"] != "sending" {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "never reconciled: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    second.kill().expect("stop");
    second.wait().expect("reaped");

    assert_eq!(message["provider_sid"], SID);
    assert_eq!(message["status"], "sent");
    let creates = twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == messages)
        .count();
    assert_eq!(creates, 1, "exactly one create request across the crash");
}
