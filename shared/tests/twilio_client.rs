//! The Twilio adapter against a wiremock server playing Twilio (bodies shaped as in Twilio's
//! OpenAPI description), and the simulator's signed status callbacks.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use smsrelay::adapters::twilio::{validate_signature, TwilioCredentials, TwilioSimulator, TwilioSmsProvider};
use smsrelay::domain::{MessageBody, PhoneNumber, ProviderSid};
use smsrelay::ports::{OutboundSms, ProviderError, Sender, SmsProvider};
use std::time::Duration;
use wiremock::matchers::{basic_auth, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ACCOUNT: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN: &str = "test-auth-token";
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json";
const SID: &str = "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const MG: &str = "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TO: &str = "+14155550100";
const FROM: &str = "+14155552345";
const CALLBACK: &str = "https://relay.example.com/webhooks/twilio/status?message_id=msg_01J0000000000000000000000X";

fn provider(server: &MockServer) -> TwilioSmsProvider {
    TwilioSmsProvider::new(
        TwilioCredentials {
            account_sid: ACCOUNT.to_owned(),
            auth_token: SecretString::from(TOKEN),
        },
        server.uri(),
        smsrelay::wiring::plain_http_client(),
    )
}

fn number(raw: &str) -> PhoneNumber {
    PhoneNumber::parse_e164(raw).expect("valid number")
}

fn sms(from: Sender) -> OutboundSms {
    OutboundSms {
        to: number(TO),
        from,
        body: MessageBody::parse("Your appointment is tomorrow at 10:00").expect("body"),
        status_callback: CALLBACK.to_owned(),
    }
}

fn from_number() -> Sender {
    Sender::Number(number(FROM))
}

/// A Message resource as Twilio returns it (spec `api.v2010.account.message`, example `create`).
fn message_json(sid: &str, status: &str, date_created: &str, messaging_service_sid: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "account_sid": ACCOUNT,
        "api_version": "2010-04-01",
        "body": "Your appointment is tomorrow at 10:00",
        "date_created": date_created,
        "date_sent": null,
        "date_updated": date_created,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": if messaging_service_sid.is_some() { serde_json::Value::Null } else { FROM.into() },
        "messaging_service_sid": messaging_service_sid,
        "num_media": "0",
        "num_segments": if messaging_service_sid.is_some() { "0" } else { "1" },
        "price": null,
        "price_unit": null,
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media.json")
        },
        "to": TO,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json")
    })
}

/// Twilio's legacy error body.
fn error_json(code: u32, message: &str, status: u16) -> serde_json::Value {
    serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status
    })
}

fn form(req: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&req.body).into_owned().collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn only_request(server: &MockServer) -> Request {
    let mut requests = server.received_requests().await.expect("recording is on");
    assert_eq!(requests.len(), 1, "exactly one request");
    requests.remove(0)
}

async fn mock_create(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(response)
        .mount(server)
        .await;
}

async fn send_error(response: ResponseTemplate) -> ProviderError {
    let server = MockServer::start().await;
    mock_create(&server, response).await;
    provider(&server)
        .send(&sms(from_number()))
        .await
        .expect_err("the send must fail")
}

#[tokio::test]
async fn send_posts_a_twilio_form_with_basic_auth_and_reads_the_201() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(basic_auth(ACCOUNT, TOKEN))
        .respond_with(ResponseTemplate::new(201).set_body_json(message_json(
            SID,
            "queued",
            "Thu, 24 Aug 2023 05:01:45 +0000",
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;

    let accepted = provider(&server).send(&sms(from_number())).await.expect("accepted");
    assert_eq!(accepted.sid.as_str(), SID);
    assert_eq!(accepted.status, "queued");
    assert_eq!(accepted.segments, Some(1));

    let req = only_request(&server).await;
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"))
    );
    assert_eq!(
        req.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(expected_auth.as_str())
    );
    assert_eq!(
        req.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let f = form(&req);
    assert_eq!(field(&f, "To"), Some(TO));
    assert_eq!(field(&f, "From"), Some(FROM));
    assert_eq!(field(&f, "Body"), Some("Your appointment is tomorrow at 10:00"));
    assert_eq!(field(&f, "StatusCallback"), Some(CALLBACK));
    assert_eq!(field(&f, "MessagingServiceSid"), None);
    assert_eq!(f.len(), 4);
}

#[tokio::test]
async fn send_through_a_messaging_service_sends_its_sid_instead_of_from() {
    let server = MockServer::start().await;
    mock_create(
        &server,
        ResponseTemplate::new(201).set_body_json(message_json(
            SID,
            "accepted",
            "Thu, 24 Aug 2023 05:01:45 +0000",
            Some(MG),
        )),
    )
    .await;

    let accepted = provider(&server)
        .send(&sms(Sender::MessagingService(MG.to_owned())))
        .await
        .expect("accepted");
    assert_eq!(accepted.status, "accepted");
    assert_eq!(accepted.segments, None, "num_segments \"0\" means not known yet");

    let f = form(&only_request(&server).await);
    assert_eq!(field(&f, "MessagingServiceSid"), Some(MG));
    assert_eq!(field(&f, "From"), None);
    assert_eq!(field(&f, "To"), Some(TO));
}

#[tokio::test]
async fn invalid_to_number_is_rejected_21211() {
    let e = send_error(ResponseTemplate::new(400).set_body_json(error_json(
        21211,
        "The 'To' number +14155550100 is not a valid phone number.",
        400,
    )))
    .await;
    match e {
        ProviderError::Rejected { code, message } => {
            assert_eq!(code, 21211);
            assert!(!message.contains("4155550100"), "number must be masked: {message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn unsubscribed_recipient_is_rejected_21610() {
    let e = send_error(ResponseTemplate::new(400).set_body_json(error_json(
        21610,
        "Attempt to send to unsubscribed recipient",
        400,
    )))
    .await;
    assert!(matches!(e, ProviderError::Rejected { code: 21610, .. }), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn rfc9457_problem_bodies_are_understood() {
    let body = serde_json::json!({
        "type": "https://www.twilio.com/docs/errors/21614",
        "title": "Invalid mobile number",
        "status": 400,
        "code": 21614,
        "detail": "'To' number is not a valid mobile number",
        "instance": MESSAGES_PATH
    });
    let e = send_error(ResponseTemplate::new(400).set_body_json(body)).await;
    match e {
        ProviderError::Rejected { code, message } => {
            assert_eq!(code, 21614);
            assert_eq!(message, "'To' number is not a valid mobile number");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn too_many_requests_is_rate_limited_with_retry_after() {
    let e = send_error(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "3")
            .set_body_json(error_json(20429, "Too Many Requests", 429)),
    )
    .await;
    assert!(
        matches!(e, ProviderError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)),
        "{e:?}"
    );
}

#[tokio::test]
async fn server_error_is_transient_and_may_have_been_sent() {
    let e = send_error(ResponseTemplate::new(500).set_body_json(error_json(20500, "Internal Server Error", 500))).await;
    assert!(matches!(e, ProviderError::Transient { maybe_sent: true, .. }), "{e:?}");
}

#[tokio::test]
async fn queue_overflow_is_transient_and_not_sent() {
    let e = send_error(ResponseTemplate::new(400).set_body_json(error_json(
        21611,
        "This 'From' number has exceeded the maximum number of queued messages",
        400,
    )))
    .await;
    assert!(
        matches!(
            e,
            ProviderError::Transient {
                maybe_sent: false,
                code: Some(21611),
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn bad_credentials_are_unexpected() {
    let e = send_error(ResponseTemplate::new(401).set_body_json(error_json(20003, "Authenticate", 401))).await;
    assert!(matches!(e, ProviderError::Unexpected(_)), "{e:?}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn an_unreadable_201_is_unexpected() {
    let e = send_error(ResponseTemplate::new(201).set_body_string("<html>oops</html>")).await;
    assert!(matches!(e, ProviderError::Unexpected(_)), "{e:?}");
}

#[tokio::test]
async fn a_closed_port_is_transient_and_not_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let p = TwilioSmsProvider::new(
        TwilioCredentials {
            account_sid: ACCOUNT.to_owned(),
            auth_token: SecretString::from(TOKEN),
        },
        format!("http://{addr}"),
        smsrelay::wiring::plain_http_client(),
    );
    let e = p.send(&sms(from_number())).await.expect_err("nothing listens");
    assert!(matches!(e, ProviderError::Transient { maybe_sent: false, .. }), "{e:?}");
}

#[tokio::test]
async fn a_response_slower_than_the_timeout_is_transient_and_may_have_been_sent() {
    let server = MockServer::start().await;
    mock_create(
        &server,
        ResponseTemplate::new(201)
            .set_body_json(message_json(SID, "queued", "Thu, 24 Aug 2023 05:01:45 +0000", None))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let p = provider(&server).with_timeout(Duration::from_millis(200));
    let e = p.send(&sms(from_number())).await.expect_err("times out");
    assert!(matches!(e, ProviderError::Transient { maybe_sent: true, .. }), "{e:?}");
}

#[tokio::test]
async fn fetch_reads_a_message_and_404_is_not_found() {
    let server = MockServer::start().await;
    let mut delivered = message_json(SID, "undelivered", "Thu, 24 Aug 2023 05:01:45 +0000", None);
    delivered["error_code"] = 30003.into();
    delivered["error_message"] = "Unreachable destination handset".into();
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{SID}.json")))
        .and(basic_auth(ACCOUNT, TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(delivered))
        .mount(&server)
        .await;
    let missing = "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{missing}.json")))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_json(
            20404,
            &format!("The requested resource /2010-04-01/Accounts/{ACCOUNT}/Messages/{missing}.json was not found"),
            404,
        )))
        .mount(&server)
        .await;

    let p = provider(&server);
    let m = p.fetch(&ProviderSid::parse(SID).expect("sid")).await.expect("found");
    assert_eq!(m.sid.as_str(), SID);
    assert_eq!(m.status, "undelivered");
    assert_eq!(m.error_code, Some(30003));
    assert_eq!(m.to, TO);
    assert_eq!(m.from, FROM);
    let created = DateTime::parse_from_rfc3339("2023-08-24T05:01:45Z")
        .expect("date")
        .with_timezone(&Utc);
    assert_eq!(m.date_created, Some(created));

    let e = p
        .fetch(&ProviderSid::parse(missing).expect("sid"))
        .await
        .expect_err("missing");
    assert!(matches!(e, ProviderError::NotFound), "{e:?}");
}

fn list_page(messages: Vec<serde_json::Value>) -> serde_json::Value {
    let n = messages.len();
    serde_json::json!({
        "end": n.saturating_sub(1),
        "first_page_uri": format!("{MESSAGES_PATH}?To=%2B14155550100&PageSize=50&Page=0"),
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": format!("{MESSAGES_PATH}?To=%2B14155550100&PageSize=50&Page=0"),
        "messages": messages
    })
}

#[tokio::test]
async fn list_sent_filters_on_to_and_from_only_and_drops_old_messages() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(query_param("To", TO))
        .and(query_param("From", FROM))
        .and(query_param("PageSize", "50"))
        .and(basic_auth(ACCOUNT, TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_page(vec![
            message_json(
                "SM00000000000000000000000000000003",
                "accepted",
                "Thu, 24 Aug 2023 05:01:45 +0000",
                None,
            ),
            message_json(
                "SM00000000000000000000000000000002",
                "delivered",
                "Thu, 24 Aug 2023 04:59:30 +0000",
                None,
            ),
            message_json(
                "SM00000000000000000000000000000001",
                "delivered",
                "Thu, 24 Aug 2023 04:50:00 +0000",
                None,
            ),
        ])))
        .expect(1)
        .mount(&server)
        .await;

    let since = DateTime::parse_from_rfc3339("2023-08-24T05:00:00Z")
        .expect("date")
        .with_timezone(&Utc);
    let listed = provider(&server)
        .list_sent(&number(TO), &from_number(), since, 50)
        .await
        .expect("listed");
    let sids: Vec<&str> = listed.iter().map(|m| m.sid.as_str()).collect();
    // Newest first as Twilio gives them; 04:59:30 is within the minute of slack, 04:50 is not.
    assert_eq!(
        sids,
        [
            "SM00000000000000000000000000000003",
            "SM00000000000000000000000000000002"
        ]
    );

    let req = only_request(&server).await;
    assert!(
        req.url.query_pairs().all(|(k, _)| !k.starts_with("DateSent")),
        "no DateSent filter: date_sent is null for just-created messages"
    );
}

#[tokio::test]
async fn list_sent_for_a_messaging_service_has_no_from_filter_and_keeps_its_own_messages() {
    let server = MockServer::start().await;
    let other_ms = "MGbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(query_param("To", TO))
        .and(query_param("PageSize", "10"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_page(vec![
            message_json(
                "SM00000000000000000000000000000003",
                "sent",
                "Thu, 24 Aug 2023 05:01:45 +0000",
                Some(MG),
            ),
            message_json(
                "SM00000000000000000000000000000002",
                "sent",
                "Thu, 24 Aug 2023 05:01:40 +0000",
                Some(other_ms),
            ),
        ])))
        .mount(&server)
        .await;

    let since = DateTime::parse_from_rfc3339("2023-08-24T05:00:00Z")
        .expect("date")
        .with_timezone(&Utc);
    let listed = provider(&server)
        .list_sent(&number(TO), &Sender::MessagingService(MG.to_owned()), since, 10)
        .await
        .expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sid.as_str(), "SM00000000000000000000000000000003");
    let req = only_request(&server).await;
    assert!(req.url.query_pairs().all(|(k, _)| k != "From"));
}

#[tokio::test]
async fn list_sent_caps_the_page_size_at_1000() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .and(query_param("PageSize", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(list_page(vec![])))
        .expect(1)
        .mount(&server)
        .await;
    let listed = provider(&server)
        .list_sent(&number(TO), &from_number(), Utc::now(), 5000)
        .await
        .expect("listed");
    assert!(listed.is_empty());
}

#[tokio::test]
async fn list_sent_rate_limited_is_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .respond_with(ResponseTemplate::new(429).set_body_json(error_json(20429, "Too Many Requests", 429)))
        .mount(&server)
        .await;
    let e = provider(&server)
        .list_sent(&number(TO), &from_number(), Utc::now(), 5)
        .await
        .expect_err("limited");
    assert!(matches!(e, ProviderError::RateLimited { retry_after: None }), "{e:?}");
}

// ---- simulator ----

const SIM_TOKEN: &str = "sim-auth-token";

fn simulator() -> TwilioSimulator {
    let ledger = smsrelay::adapters::sqlite::SimulatorLedger::open_in_memory().expect("ledger");
    TwilioSimulator::new(
        SecretString::from(SIM_TOKEN),
        smsrelay::wiring::plain_http_client(),
        ledger,
    )
    .with_callback_delays(Duration::from_millis(20), Duration::from_millis(40))
}

#[tokio::test]
async fn simulator_posts_signed_sent_then_delivered_callbacks() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhooks/twilio/status"))
        .and(query_param("message_id", "msg_x"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let callback = format!("{}/webhooks/twilio/status?message_id=msg_x", receiver.uri());
    let sim = simulator();
    let mut out = sms(Sender::Number(number("+15005550006")));
    out.status_callback = callback.clone();

    let accepted = sim.send(&out).await.expect("accepted");
    assert_eq!(accepted.status, "queued");
    assert_eq!(sim.sent_count(), 1);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let requests = loop {
        let got = receiver.received_requests().await.expect("recording is on");
        if got.len() >= 2 {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} callbacks within 2 s",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(requests.len(), 2);

    let mut statuses = Vec::new();
    for req in &requests {
        let params = form(req);
        let signature = req
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .expect("signed");
        assert!(
            validate_signature(SIM_TOKEN, &callback, &params, signature),
            "signature over the exact URL"
        );
        assert!(!validate_signature("another-token", &callback, &params, signature));
        assert_eq!(field(&params, "MessageSid"), Some(accepted.sid.as_str()));
        assert_eq!(field(&params, "SmsSid"), Some(accepted.sid.as_str()));
        assert_eq!(field(&params, "To"), Some(TO));
        assert_eq!(field(&params, "From"), Some("+15005550006"));
        assert_eq!(field(&params, "ApiVersion"), Some("2010-04-01"));
        assert!(field(&params, "AccountSid").is_some_and(|a| a.starts_with("AC") && a.len() == 34));
        assert_eq!(field(&params, "MessageStatus"), field(&params, "SmsStatus"));
        statuses.push(field(&params, "MessageStatus").map(str::to_owned));
    }
    assert_eq!(statuses, [Some("sent".to_owned()), Some("delivered".to_owned())]);

    let fetched = sim.fetch(&accepted.sid).await.expect("known");
    assert_eq!(fetched.status, "delivered");
    let listed = sim
        .list_sent(&out.to, &out.from, Utc::now() - chrono::TimeDelta::minutes(5), 10)
        .await
        .expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sid, accepted.sid);
}

#[tokio::test]
async fn simulator_refuses_twilio_magic_numbers() {
    let sim = simulator();
    for (to, code) in [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
    ] {
        let mut out = sms(Sender::Number(number("+15005550006")));
        out.to = number(to);
        match sim.send(&out).await {
            Err(ProviderError::Rejected { code: got, message }) => {
                assert_eq!(got, code, "{to}");
                assert!(!message.contains(to), "{message}");
            }
            other => panic!("{to}: expected Rejected, got {other:?}"),
        }
    }
    assert_eq!(sim.sent_count(), 0);
}
