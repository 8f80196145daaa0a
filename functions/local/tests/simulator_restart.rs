//! Kill smsrelay-local (SIGKILL) while it runs on the built-in Twilio simulator, with every
//! status callback lost, and start it again on the same SQLite file: the simulator still knows
//! the messages it accepted, so the restarted process's status polls find them `delivered`, as
//! Twilio would answer (issue 9 item 7). A refused (magic) number stays failed.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "restart-key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// smsrelay-local on the simulator. Callbacks go to `public_url`, where nothing listens, so
/// every callback is lost; only polling can confirm a message.
fn spawn(port: u16, data: &std::path::Path, public_url: &str, tick: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smsrelay-local"))
        .args([
            "--port",
            &port.to_string(),
            "--data",
            &data.to_string_lossy(),
            "--tick",
            tick,
        ])
        .env("SMSRELAY_API_KEY", KEY)
        .env("SMSRELAY_PUBLIC_URL", public_url)
        .env("SMSRELAY_STATUS_POLL_AFTER", "1s")
        .env("SMSRELAY_QUIET_HOURS", "off")
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
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

async fn message(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/v1/messages/{id}"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn messages_sent_before_a_kill_are_delivered_through_polling_after_the_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("local.db");
    let port = free_port();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let base = format!("http://127.0.0.1:{port}");
    let http = smsrelay::wiring::plain_http_client();

    // Given messages the simulator accepted, whose callbacks never arrive, and a processor
    // that does not poll before the crash (its hourly tick ran once, at start)…
    let mut first = spawn(port, &data, &nobody, "1h");
    wait_healthy(&http, &base).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let resp = http
            .post(format!("{base}/v1/messages"))
            .bearer_auth(KEY)
            .json(&json!({"to": format!("+1415555010{n}"), "body": "Technician on the way"}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 202);
        let m: Value = resp.json().await.expect("json");
        assert_eq!(m["status"], "sent", "{m}");
        ids.push(m["id"].as_str().expect("id").to_owned());
    }
    let refused: Value = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(KEY)
        .json(&json!({"to": "+15005550001", "body": "Technician on the way"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(refused["status"], "failed", "{refused}");

    // …when the process is killed and started again on the same file…
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let mut second = spawn(port, &data, &nobody, "200ms");
    wait_healthy(&http, &base).await;

    // …then polling reaches `delivered` for every accepted message.
    let start = Instant::now();
    for id in &ids {
        loop {
            let m = message(&http, &base, id).await;
            if m["status"] == "delivered" {
                break;
            }
            assert_eq!(m["status"], "sent", "never anything else: {m}");
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "still unconfirmed after the restart: {m}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let refused_id = refused["id"].as_str().expect("id");
    assert_eq!(message(&http, &base, refused_id).await["status"], "failed");
    second.kill().expect("stop");
    second.wait().expect("reaped");
}
