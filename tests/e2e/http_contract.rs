//! The HTTP layer of smsrelay-local, written once for every route (issue 8 item 1, issue 9 items
//! 1, 2, 8, 9): strict JSON on every JSON route, 404/405/HEAD, size limits, body and header
//! timeouts, the connection bound, the bearer scheme and `Retry-After`.

use crate::helpers::{config, AppOptions, TestApp, API_KEY};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// Write `bytes`, then read until the server closes or `wait` passes. Returns what was read and
/// whether the server closed the connection.
async fn raw_exchange(addr: &str, bytes: &[u8], wait: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything (413): keep what it said.
    let _written = s.write_all(bytes).await;
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

fn body_json(raw_response: &str) -> Value {
    let body = raw_response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

async fn post_raw(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn malformed_json_on_every_json_route_is_400_and_nothing_is_stored_or_sent() {
    let app = TestApp::new().await;
    let msg = r#"{"to":"+16285559203","body":"hi"}"#;
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("/v1/messages", format!("{msg}garbage"), None),
        (
            "/v1/messages",
            format!(r#"{msg}{{"to":"+16285559204","body":"x"}}"#),
            None,
        ),
        (
            "/v1/messages",
            r#"["+16285559203","x",null,null,null,null,null]"#.to_owned(),
            None,
        ),
        (
            "/v1/messages",
            r#"{"to":"+16285559203","body":"hi","ref":["calendar_event","evt"]}"#.to_owned(),
            Some("ref"),
        ),
        (
            "/v1/messages",
            r#"{"to":"+16285559203","body":"hi","quiet_hours":["21:00","08:00","UTC"]}"#.to_owned(),
            Some("quiet_hours"),
        ),
        ("/v1/batches", format!(r#"{{"messages":[{msg}]}}garbage"#), None),
        (
            "/v1/batches",
            format!(r#"{{"messages":[{msg}]}}{{"messages":[]}}"#),
            None,
        ),
        ("/v1/batches", format!("[{msg}]"), None),
        (
            "/v1/batches",
            format!(r#"{{"messages":[{msg},["+16285559205","x"]]}}"#),
            Some("messages[1]"),
        ),
        (
            "/v1/batches",
            r#"{"messages":[{"to":"+16285559203","body":"hi","ref":["calendar_event","evt"]}]}"#.to_owned(),
            Some("messages[0].ref"),
        ),
        (
            "/v1/messages/cancel",
            r#"{"ref":{"type":"calendar_event","id":"evt"}}garbage"#.to_owned(),
            None,
        ),
        (
            "/v1/messages/cancel",
            r#"{"ref":["calendar_event","evt"]}"#.to_owned(),
            Some("ref"),
        ),
        ("/v1/messages/cancel", r#"[["calendar_event","evt"]]"#.to_owned(), None),
    ];
    for (path, body, field) in cases {
        let (status, got) = post_raw(&app, path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {got}");
        assert_eq!(got["error"]["code"], "invalid_json", "{path} {body}: {got}");
        if let Some(f) = field {
            assert_eq!(got["error"]["field"], f, "{path} {body}: {got}");
        }
        assert!(!got.to_string().contains("628555920"), "never echo a number: {got}");
    }
    assert_eq!(app.store.total_calls(), 0, "nothing may reach the store");
    assert_eq!(app.sim().request_count(), 0, "nothing may reach the provider");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_type_a_duplicate_key_and_a_missing_nested_field_are_named() {
    let app = TestApp::new().await;
    let cases = [
        (r#"{"to":14155550100,"body":"hi"}"#, "invalid_json", "to", "string"),
        (
            r#"{"to":"+14155550100","body":"hi","quiet_hours":{"start":"21:00","end":"08:00","timezone":5}}"#,
            "invalid_json",
            "quiet_hours.timezone",
            "string",
        ),
        (
            r#"{"to":"+14155550100","to":"+14155550199","body":"hi"}"#,
            "invalid_json",
            "to",
            "duplicate",
        ),
        (
            r#"{"to":"+14155550100","body":"hi","metadata":{"k":1,"k":2}}"#,
            "invalid_json",
            "metadata.k",
            "duplicate",
        ),
        (
            r#"{"to":"+14155550100","body":"hi","quiet_hours":{"start":"21:00","end":"08:00"}}"#,
            "missing_field",
            "quiet_hours.timezone",
            "quiet_hours.timezone",
        ),
    ];
    for (body, code, field, says) in cases {
        let (status, got) = post_raw(&app, "/v1/messages", body).await;
        assert_eq!(status, 400, "{body}: {got}");
        assert_eq!(got["error"]["code"], code, "{body}: {got}");
        assert_eq!(got["error"]["field"], field, "{body}: {got}");
        let message = got["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{body}: {message}");
        assert!(!message.contains("1415555"), "never echo a number: {message}");
    }
    let (status, got) = post_raw(
        &app,
        "/v1/batches",
        r#"{"messages":[{"to":"+14155550100","body":"a","body":"b"}]}"#,
    )
    .await;
    assert_eq!(
        (status, got["error"]["field"].clone()),
        (400, json!("messages[0].body")),
        "{got}"
    );
    assert_eq!(app.store.total_calls(), 0);
    assert_eq!(app.sim().request_count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow_and_unknown_paths_are_404_json() {
    let app = TestApp::new().await;
    let resp = app
        .http
        .delete(format!("{}/v1/messages", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 405);
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    for m in ["GET", "POST", "HEAD"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    let body: Value = resp.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let resp = app
        .http
        .get(format!("{}/webhooks/twilio/status", app.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));

    for path in ["/nothing", "/v1/nothing-here", "/v1/messages/a/b/c"] {
        let resp = app.get(path).send().await.expect("get");
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.expect("JSON body");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn head_is_answered_on_get_routes_without_a_body() {
    let app = TestApp::new().await;
    let m = app.send("+14155550100", "hi").await;
    let id = m["id"].as_str().expect("id");
    for (path, auth) in [
        ("/health".to_owned(), false),
        (format!("/v1/messages/{id}"), true),
        ("/v1/messages?to=%2B14155550100".to_owned(), true),
        ("/openapi.json".to_owned(), false),
    ] {
        let mut req = app.http.head(format!("{}{path}", app.url));
        if auth {
            req = req.bearer_auth(API_KEY);
        }
        let resp = req.send().await.expect("head");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{path}"
        );
        assert!(resp.bytes().await.expect("body").is_empty(), "{path}: HEAD has no body");
    }
    let unauthorized = app
        .http
        .head(format!("{}/v1/messages/{id}", app.url))
        .send()
        .await
        .expect("head");
    assert_eq!(unauthorized.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::new().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = app
            .http
            .post(format!("{}/v1/messages", app.url))
            .header("authorization", format!("{scheme} {API_KEY}"))
            .json(&json!({"to": "+14155550100", "body": "hi"}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 202, "{scheme}");
    }
    let resp = app
        .http
        .get(format!("{}/v1/messages?to=%2B14155550100", app.url))
        .header("authorization", format!("Basic {API_KEY}"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 401, "another scheme is refused");
    app.stop().await;
}

#[tokio::test]
async fn only_request_in_progress_conflicts_carry_retry_after() {
    let app = TestApp::new().await;
    let m = app.send("+14155550100", "hi").await;
    assert_eq!(m["status"], "sent");
    let id = m["id"].as_str().expect("id");
    let resp = app
        .http
        .post(format!("{}/v1/messages/{id}/cancel", app.url))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("cancel");
    assert_eq!(resp.status(), 409);
    assert!(
        !resp.headers().contains_key("retry-after"),
        "retrying cannot un-send a message"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "already_sent");
    app.stop().await;
}

#[tokio::test]
async fn oversized_uris_and_headers_and_bodies_get_the_json_error_shape() {
    let app = TestApp::new().await;
    let long = "a".repeat(9 * 1024);
    let resp = app
        .http
        .get(format!("{}/health?x={long}", app.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 414);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"]["code"],
        "uri_too_long"
    );
    let resp = app
        .http
        .get(format!("{}/health", app.url))
        .header("x-big", "b".repeat(40 * 1024))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 431);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"]["code"],
        "headers_too_large"
    );
    // 300 kB in chunks (no Content-Length): still 413, in the error shape.
    let mut request = format!(
        "POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..30 {
        request.extend_from_slice(b"2710\r\n");
        request.extend_from_slice(&[b' '; 10_000]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (resp, _) = raw_exchange(&addr(&app), &request, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert_eq!(body_json(&resp)["error"]["code"], "payload_too_large", "{resp}");
    assert_eq!(app.store.total_calls(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_chunk_is_400_not_413_and_a_bad_content_length_is_400() {
    let app = TestApp::new().await;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
    );
    let (resp, _) = raw_exchange(
        &addr(&app),
        format!("{head}Transfer-Encoding: chunked\r\n\r\nZZ\r\n{{}}\r\n0\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(body_json(&resp)["error"]["code"], "invalid_request_body", "{resp}");
    let (resp, _) = raw_exchange(
        &addr(&app),
        format!("{head}Content-Length: abc\r\n\r\n{{}}").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 400"),
        "hyper refuses it before the router: {resp}"
    );
    assert_eq!(app.store.total_calls(), 0);
    app.stop().await;
}

fn slow_app_options() -> AppOptions {
    AppOptions {
        env: vec![("SMSRELAY_REQUEST_TIMEOUT", "1s".to_owned())],
        queue_poll: Some(Duration::from_millis(20)),
        ..AppOptions::default()
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_gets_408_and_a_close() {
    let app = TestApp::with(slow_app_options()).await;
    let started = Instant::now();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\":"
    );
    let (resp, closed) = raw_exchange(&addr(&app), request.as_bytes(), Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert_eq!(body_json(&resp)["error"]["code"], "request_timeout", "{resp}");
    assert!(closed, "the connection is closed after a 408");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(app.store.total_calls(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_stalls_mid_headers_is_closed() {
    let app = TestApp::with(slow_app_options()).await;
    let started = Instant::now();
    let (_, closed) = raw_exchange(
        &addr(&app),
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "still open after 5 s with a 1 s request timeout");
    assert!(started.elapsed() < Duration::from_secs(4));
    app.stop().await;
}

#[tokio::test]
async fn open_connections_are_bounded() {
    let dir = tempfile::tempdir().expect("dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = config(&[("SMSRELAY_API_KEY", API_KEY), ("SMSRELAY_QUIET_HOURS", "off")]);
    let deps = smsrelay_local::local_deps(cfg, addr, &dir.path().join("local.db")).expect("deps");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = smsrelay_local::start_with(
        listener,
        deps,
        smsrelay_local::Workers {
            tick: None,
            queue_poll: None,
        },
        smsrelay_local::ServeLimits {
            max_connections: 1,
            drain: Duration::from_secs(2),
        },
        async {
            let _ignored = rx.await;
        },
    )
    .expect("start");
    let url = format!("http://{addr}/health");
    // One idle connection takes the only slot: a second client is not served meanwhile.
    let holder = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let http = smsrelay::wiring::plain_http_client();
    let waiting = tokio::spawn({
        let http = http.clone();
        let url = url.clone();
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a second connection was served past the bound");
    drop(holder);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the slot is free")
        .expect("task")
        .expect("request");
    assert_eq!(status, 200);
    let _ignored = tx.send(());
    server.wait().await.expect("clean shutdown");
}

/// A client that hangs up while its send is at Twilio does not cancel the send: the handler
/// runs to its end, so the outcome is recorded at once (`sent`, with the sid), not left
/// `sending` for reconciliation, and Twilio was asked once.
#[tokio::test]
async fn a_client_that_hangs_up_mid_send_does_not_cancel_it() {
    use crate::twilio_mock::{creates, message_json, messages_path};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(message_json(
                    "SM20000000000000000000000000000001",
                    "+14155550142",
                    "hi",
                    "queued",
                ))
                .set_delay(Duration::from_millis(500)),
        )
        .mount(&twilio)
        .await;
    let app = TestApp::with(AppOptions {
        twilio_base: Some(twilio.uri()),
        ..AppOptions::default()
    })
    .await;
    let body = r#"{"to":"+14155550142","body":"hi"}"#;
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    // Hang up while Twilio is still answering.
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    let message = loop {
        let page = app.get_json("/v1/messages?to=%2B14155550142").await;
        let m = page["data"][0].clone();
        if m["status"] == "sent" || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["provider_sid"], "SM20000000000000000000000000000001");
    assert_eq!(creates(&twilio).await, 1);
    app.stop().await;
}
