//! The startup banner of the real binary names the console and the key that signs in to it: a
//! new user copies the two and is in, without reading any docs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("smsrelay-local already gone: {e}");
        }
        if let Err(e) = self.0.wait() {
            eprintln!("smsrelay-local not reaped: {e}");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The value after `label` on the banner line that starts with it.
fn field<'a>(lines: &'a [String], label: &str) -> &'a str {
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {lines:#?}"));
    line.trim_start()[label.len()..].split_whitespace().next().unwrap_or("")
}

#[tokio::test]
async fn the_banner_prints_the_console_url_and_an_admin_key_that_signs_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsrelay-local"))
        .args(["--port", &port.to_string(), "--data"])
        .arg(dir.path().join("local.db"))
        // A send key first: the banner must still print the admin one.
        .env("SMSRELAY_API_KEYS", "send:banner-send-key,admin:banner-admin-key")
        .env_remove("SMSRELAY_API_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smsrelay-local");
    let stdout = child.stdout.take().expect("stdout");
    let _running = Running(child);
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("banner line");
            let done = line.trim_start().starts_with("send:");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await
    .expect("banner read");
    let key = field(&lines, "API key:");
    let console = field(&lines, "console:");
    assert_eq!(key, "banner-admin-key", "{lines:#?}");
    assert_eq!(console, format!("http://127.0.0.1:{port}/console"));

    smsrelay::wiring::install_tls();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let start = Instant::now();
    let login = loop {
        match http.get(format!("{console}/login")).send().await {
            Ok(r) => break r,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(20), "not serving: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the form's cookie")
        .to_owned();
    let html = login.text().await.expect("html");
    let at = html.find("name=\"csrf\" value=\"").expect("token") + 19;
    let token = html[at..].split('"').next().unwrap_or("");
    let resp = http
        .post(format!("{console}/login"))
        .header("cookie", cookie)
        .form(&[("key", key), ("csrf", token)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), 303, "the printed key signs in");
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("smsrelay_console="))
        .and_then(|v| v.split(';').next())
        .expect("a session")
        .to_owned();
    let overview = http
        .get(console)
        .header("cookie", session)
        .send()
        .await
        .expect("overview");
    assert_eq!(overview.status(), 200);
    assert!(overview.text().await.expect("html").contains("Failed messages"));
}
