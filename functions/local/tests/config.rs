//! smsrelay-local refuses to start on configuration it cannot honour, instead of running with a
//! stand-in value: a Secrets Manager reference (which only the Lambda functions resolve) is a
//! configuration error naming the variable, never a placeholder token.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn a_twilio_token_secret_reference_is_refused_at_start_with_a_configuration_error() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsrelay-local"))
        .args([
            "--port",
            &port.to_string(),
            "--data",
            &dir.path().join("local.db").to_string_lossy(),
        ])
        .env("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000")
        .env("TWILIO_AUTH_TOKEN_SECRET", "smsrelay#twilio_auth_token")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smsrelay-local");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().expect("kill");
            child.wait().expect("reaped");
            panic!("smsrelay-local started with an unresolved secret reference");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "must not start: {stderr}");
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    assert!(stderr.contains("TWILIO_AUTH_TOKEN_SECRET"), "{stderr}");
    assert!(stderr.contains("set TWILIO_AUTH_TOKEN instead"), "{stderr}");
    assert!(
        !stderr.contains("smsrelay#"),
        "the reference's value is not echoed: {stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
}
