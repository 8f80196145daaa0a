//! Alert channels and domain-event publishers: `SlackAlerter` against a wiremock server playing
//! Slack's incoming webhook; `LogEventPublisher` and `FanoutAlerter` in process; and (feature
//! `aws`) `EventBridgePublisher`/`EventBridgeAlerter` on the moto server named by
//! `SMSRELAY_TEST_SQS_URL` (a bus with a rule routing `source: smsrelay` to an SQS queue), plus
//! wiremock playing EventBridge for the per-entry failures moto cannot produce.

use chrono::{DateTime, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::json;
use smsrelay::adapters::log_alerter::{FanoutAlerter, LogAlerter};
use smsrelay::adapters::slack::SlackAlerter;
use smsrelay::adapters::sqlite::LogEventPublisher;
use smsrelay::ports::{Alert, AlertKind, Alerter, DomainEvent, EventPublisher};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The secret part of the webhook URL: it must never appear in an error.
const WEBHOOK_PATH: &str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

fn raised_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 0)
        .single()
        .expect("valid time")
}

fn alert() -> Alert {
    Alert {
        kind: AlertKind::BatchFailureRate,
        subject: "batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8".to_owned(),
        summary: "Batch batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8: 12 of 40 messages failed (30% > 10%)".to_owned(),
        counts: [
            ("failed".to_owned(), json!(12)),
            ("total".to_owned(), json!(40)),
            ("failure_rate".to_owned(), json!(0.3)),
        ]
        .into_iter()
        .collect(),
        raised_at: raised_at(),
    }
}

async fn slack_server(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn slack(server: &MockServer) -> SlackAlerter {
    SlackAlerter::new(
        SecretString::from(format!("{}{WEBHOOK_PATH}", server.uri())),
        smsrelay::wiring::plain_http_client(),
    )
}

/// The whole error chain, as a caller would log it.
fn chain(err: &smsrelay::ports::AlertError) -> String {
    format!("{:#}", err.0)
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("XXXXXXXXXXXX"), "the webhook URL leaked: {text}");
    assert!(!text.contains("/services/"), "the webhook URL leaked: {text}");
}

mod slack {
    use super::*;

    #[tokio::test]
    async fn posts_a_block_kit_message_and_accepts_ok() {
        // Given Slack answering 200 ok
        let server = slack_server(200, "ok").await;

        // When an alert is raised
        slack(&server).raise(&alert()).await.expect("delivered");

        // Then exactly this JSON was posted
        let requests = server.received_requests().await.expect("recording is on");
        assert_eq!(requests.len(), 1);
        let req = &requests[0];
        assert_eq!(
            req.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON body");
        let expected = json!({
            "text": "Batch failure rate over threshold (batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8): \
                     Batch batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8: 12 of 40 messages failed (30% &gt; 10%)",
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": "Batch failure rate over threshold", "emoji": false}
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "Batch batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8: 12 of 40 messages failed (30% &gt; 10%)"
                    }
                },
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": "*failed*\n12"},
                        {"type": "mrkdwn", "text": "*failure_rate*\n0.3"},
                        {"type": "mrkdwn", "text": "*total*\n40"}
                    ]
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": "*Subject:* batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8"},
                        {"type": "mrkdwn", "text": "*Raised:* 2024-05-01T12:30:00Z"}
                    ]
                }
            ]
        });
        assert_eq!(body, expected);
        // and nothing in it looks like a phone number (`+` and digits)
        let raw = String::from_utf8_lossy(&req.body);
        assert!(
            !raw.as_bytes().windows(2).any(|w| w[0] == b'+' && w[1].is_ascii_digit()),
            "phone-number-like text in {raw}"
        );
    }

    #[tokio::test]
    async fn invalid_payload_is_an_error_naming_slacks_answer() {
        let server = slack_server(400, "invalid_payload").await;
        let err = slack(&server).raise(&alert()).await.expect_err("rejected");
        let text = chain(&err);
        assert!(text.contains("400") && text.contains("invalid_payload"), "{text}");
        assert_no_secret(&text);
    }

    #[tokio::test]
    async fn no_service_is_an_error() {
        let server = slack_server(404, "no_service").await;
        let err = slack(&server).raise(&alert()).await.expect_err("rejected");
        assert!(chain(&err).contains("no_service"));
        assert_no_secret(&chain(&err));
    }

    #[tokio::test]
    async fn server_error_is_an_error() {
        let server = slack_server(500, "").await;
        let err = slack(&server).raise(&alert()).await.expect_err("failed");
        assert!(chain(&err).contains("500"));
        assert_no_secret(&chain(&err));
    }

    #[tokio::test]
    async fn success_status_without_ok_is_an_error() {
        let server = slack_server(200, "something else").await;
        assert!(slack(&server).raise(&alert()).await.is_err());
    }

    #[tokio::test]
    async fn slow_answer_times_out() {
        // Given Slack answering after 3 s and a 200 ms timeout
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(WEBHOOK_PATH))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string("ok")
                    .set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let alerter = slack(&server).with_timeout(Duration::from_millis(200));

        // When an alert is raised, then it fails quickly as a timeout, without the URL
        let started = std::time::Instant::now();
        let err = alerter.raise(&alert()).await.expect_err("timed out");
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = chain(&err);
        assert!(text.contains("did not answer within"), "{text}");
        assert_no_secret(&text);
    }

    #[tokio::test]
    async fn unreachable_webhook_is_an_error_without_the_url() {
        // A port nothing listens on
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let alerter = SlackAlerter::new(
            SecretString::from(format!("http://127.0.0.1:{port}{WEBHOOK_PATH}")),
            smsrelay::wiring::plain_http_client(),
        );
        let err = alerter.raise(&alert()).await.expect_err("refused");
        assert_no_secret(&chain(&err));
        assert_no_secret(&format!("{err:?}"));
    }
}

mod fanout {
    use super::*;

    #[tokio::test]
    async fn succeeds_when_one_of_two_channels_fails() {
        // Given Slack failing and the log working
        let server = slack_server(500, "").await;
        let fanout = FanoutAlerter::new(vec![Arc::new(slack(&server)), Arc::new(LogAlerter)]);

        // Then the alert counts as delivered (and Slack was tried: `expect(1)` on drop)
        fanout.raise(&alert()).await.expect("delivered to the log");
    }

    #[tokio::test]
    async fn fails_when_both_channels_fail() {
        let first = slack_server(500, "").await;
        let second = slack_server(400, "invalid_payload").await;
        let fanout = FanoutAlerter::new(vec![Arc::new(slack(&first)), Arc::new(slack(&second))]);
        let err = fanout.raise(&alert()).await.expect_err("nothing delivered");
        assert_no_secret(&chain(&err));
    }
}

mod event_log {
    use super::*;

    fn event(n: i64) -> DomainEvent {
        DomainEvent {
            detail_type: if n % 2 == 0 {
                "message.sent"
            } else {
                "message.delivered"
            }
            .to_owned(),
            detail: json!({"message_id": format!("msg_{n:02}"), "n": n}),
            at: raised_at() + chrono::Duration::milliseconds(n * 1500),
        }
    }

    #[tokio::test]
    async fn stores_events_and_returns_the_newest_first() {
        // Given a publisher on a database file shared with the store
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("smsrelay.db");
        let _store = smsrelay::adapters::sqlite::SqliteStore::open(&db).expect("store");
        let log = LogEventPublisher::open(&db).expect("event log");

        // When events are published in two calls
        let first: Vec<DomainEvent> = (0..3).map(event).collect();
        log.publish(&first).await.expect("publish");
        log.publish(&[event(3)]).await.expect("publish");

        // Then recent returns them newest first, exactly as published, up to the limit
        assert_eq!(
            log.recent(10).await.expect("recent"),
            vec![event(3), event(2), event(1), event(0)]
        );
        assert_eq!(log.recent(2).await.expect("recent"), vec![event(3), event(2)]);

        // and another connection (an operator's) sees them too
        let reader = LogEventPublisher::open(&db).expect("second connection");
        assert_eq!(reader.recent(1).await.expect("recent"), vec![event(3)]);
    }

    #[tokio::test]
    async fn in_memory_log_starts_empty() {
        let log = LogEventPublisher::open_in_memory().expect("open");
        assert!(log.recent(5).await.expect("recent").is_empty());
    }
}

#[cfg(feature = "aws")]
mod eventbridge {
    use super::*;
    use aws_sdk_eventbridge::types::Target;
    use smsrelay::adapters::eventbridge::{EventBridgeAlerter, EventBridgePublisher};
    use std::collections::HashMap;
    use tokio::time::Instant;
    use wiremock::matchers::header;

    fn endpoint() -> String {
        std::env::var("SMSRELAY_TEST_SQS_URL").unwrap_or_else(|_| {
            panic!(
                "SMSRELAY_TEST_SQS_URL is not set: the EventBridge tests need a moto server \
                 (`python3 -m moto.server -H 127.0.0.1 -p PORT`, started by scripts/test.sh); \
                 set SMSRELAY_TEST_SQS_URL=http://127.0.0.1:PORT"
            )
        })
    }

    fn credentials() -> aws_sdk_eventbridge::config::Credentials {
        aws_sdk_eventbridge::config::Credentials::new("testing", "testing", None, None, "smsrelay-tests")
    }

    fn events_client(endpoint: &str) -> aws_sdk_eventbridge::Client {
        let config = aws_sdk_eventbridge::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "smsrelay-tests",
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// A fresh bus whose rule routes `source: smsrelay` to a fresh SQS queue.
    struct Bus {
        events: aws_sdk_eventbridge::Client,
        sqs: aws_sdk_sqs::Client,
        name: String,
        queue_url: String,
    }

    impl Bus {
        async fn new() -> Self {
            let endpoint = endpoint();
            let events = events_client(&endpoint);
            let sqs = sqs_client(&endpoint);
            let name = format!("smsrelay-test-{}", ulid::Ulid::new().to_string().to_lowercase());

            events
                .create_event_bus()
                .name(&name)
                .send()
                .await
                .expect("create the event bus on moto");
            let queue_url = sqs
                .create_queue()
                .queue_name(&name)
                .send()
                .await
                .expect("create the queue")
                .queue_url
                .expect("queue URL");
            let queue_arn = sqs
                .get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .expect("queue attributes")
                .attributes
                .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
                .expect("queue ARN");
            let rule_arn = events
                .put_rule()
                .name(&name)
                .event_bus_name(&name)
                .event_pattern(json!({"source": ["smsrelay"]}).to_string())
                .send()
                .await
                .expect("put the rule")
                .rule_arn
                .expect("rule ARN");
            // What AWS needs before EventBridge may deliver to the queue (moto does not check it).
            let policy = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}
                }]
            });
            sqs.set_queue_attributes()
                .queue_url(&queue_url)
                .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, policy.to_string())
                .send()
                .await
                .expect("set the queue policy");
            let put = events
                .put_targets()
                .rule(&name)
                .event_bus_name(&name)
                .targets(Target::builder().id("queue").arn(queue_arn).build().expect("target"))
                .send()
                .await
                .expect("put the target");
            assert_eq!(put.failed_entry_count, 0);
            Self {
                events,
                sqs,
                name,
                queue_url,
            }
        }

        fn publisher(&self) -> EventBridgePublisher {
            EventBridgePublisher::new(self.events.clone(), self.name.clone())
        }

        /// Receive (and delete) until `want` events arrived or 15 s passed, then check that no
        /// more are waiting; returns the EventBridge envelopes.
        async fn receive(&self, want: usize) -> Vec<serde_json::Value> {
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut got = Vec::new();
            while got.len() < want {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {want} events reached the queue: {got:?}",
                    got.len()
                );
                got.extend(self.receive_batch(1).await);
            }
            let extra = self.receive_batch(0).await;
            assert!(extra.is_empty(), "more events than published: {extra:?}");
            got
        }

        async fn receive_batch(&self, wait_secs: i32) -> Vec<serde_json::Value> {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait_secs)
                .send()
                .await
                .expect("receive");
            let mut bodies = Vec::new();
            for m in out.messages.unwrap_or_default() {
                bodies.push(serde_json::from_str(m.body().expect("body")).expect("JSON envelope"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().expect("receipt handle"))
                    .send()
                    .await
                    .expect("delete");
            }
            bodies
        }
    }

    fn event(n: i64) -> DomainEvent {
        DomainEvent {
            detail_type: if n % 3 == 0 {
                "batch.completed"
            } else {
                "message.delivered"
            }
            .to_owned(),
            detail: json!({"message_id": format!("msg_{n:02}"), "status": "delivered", "n": n}),
            at: raised_at() + chrono::Duration::seconds(n),
        }
    }

    #[tokio::test]
    async fn twelve_events_reach_the_rule_target_in_two_calls() {
        // Given a bus routing smsrelay events to a queue
        let bus = Bus::new().await;

        // When 12 events are published (10 + 2 entries)
        let events: Vec<DomainEvent> = (0..12).map(event).collect();
        bus.publisher().publish(&events).await.expect("all accepted");

        // Then all 12 arrive, each with its source, detail-type, detail and time
        let mut by_n: HashMap<i64, serde_json::Value> = HashMap::new();
        for envelope in bus.receive(12).await {
            let n = envelope["detail"]["n"].as_i64().expect("n in detail");
            assert!(by_n.insert(n, envelope).is_none(), "event {n} arrived twice");
        }
        for e in &events {
            let n = e.detail["n"].as_i64().expect("n");
            let envelope = &by_n[&n];
            assert_eq!(envelope["source"], "smsrelay");
            assert_eq!(envelope["detail-type"], e.detail_type.as_str());
            assert_eq!(envelope["detail"], e.detail);
            let time = envelope["time"].as_str().expect("time");
            let time = DateTime::parse_from_rfc3339(time).expect("RFC 3339 time");
            assert_eq!(time.with_timezone(&Utc), e.at);
        }
    }

    #[tokio::test]
    async fn a_rejected_entry_is_reported_by_index_and_the_rest_delivered() {
        // Given 12 events, the 11th with an empty detail-type (rejected per entry: InvalidArgument)
        let bus = Bus::new().await;
        let mut events: Vec<DomainEvent> = (0..12).map(event).collect();
        events[10].detail_type = String::new();

        // When published, then only index 10 is reported (after its retry) ...
        let err = bus.publisher().publish(&events).await.expect_err("one rejected");
        assert_eq!(err.failed, vec![10]);
        let source = format!("{:#}", err.source.expect("a source"));
        assert!(source.contains("InvalidArgument"), "{source}");

        // ... and the other 11 arrived
        let arrived = bus.receive(11).await;
        assert!(arrived.iter().all(|e| e["detail"]["n"] != 10));
    }

    #[tokio::test]
    async fn a_missing_bus_fails_every_event() {
        let bus = Bus::new().await;
        let publisher = EventBridgePublisher::new(bus.events.clone(), format!("{}-missing", bus.name));
        let events: Vec<DomainEvent> = (0..12).map(event).collect();
        let err = publisher.publish(&events).await.expect_err("no such bus");
        assert_eq!(err.failed, (0..12).collect::<Vec<_>>());
        assert!(err.source.is_some());
    }

    #[tokio::test]
    async fn the_alerter_publishes_alert_raised() {
        let bus = Bus::new().await;
        EventBridgeAlerter::new(bus.publisher())
            .raise(&alert())
            .await
            .expect("published");
        let got = bus.receive(1).await;
        let envelope = &got[0];
        assert_eq!(envelope["source"], "smsrelay");
        assert_eq!(envelope["detail-type"], "alert.raised");
        assert_eq!(envelope["detail"]["kind"], "batch_failure_rate");
        assert_eq!(envelope["detail"]["subject"], "batch_01HZY3T8K2Q4V6W8X0Y2Z4A6B8");
        assert_eq!(envelope["detail"]["counts"]["failed"], 12);
        assert_eq!(envelope["detail"]["raised_at"], "2024-05-01T12:30:00Z");
    }

    /// wiremock playing EventBridge (awsJson1.1 `PutEvents`), for transient per-entry failures.
    mod per_entry_retry {
        use super::*;

        async fn fake_eventbridge() -> MockServer {
            MockServer::start().await
        }

        fn put_events() -> wiremock::MockBuilder {
            Mock::given(method("POST"))
                .and(path("/"))
                .and(header("x-amz-target", "AWSEvents.PutEvents"))
        }

        fn answer(body: serde_json::Value) -> ResponseTemplate {
            ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.1")
        }

        async fn sent_entries(server: &MockServer) -> Vec<Vec<String>> {
            server
                .received_requests()
                .await
                .expect("recording is on")
                .iter()
                .map(|r| {
                    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
                    body["Entries"]
                        .as_array()
                        .expect("Entries")
                        .iter()
                        .map(|e| e["Detail"].as_str().expect("Detail").to_owned())
                        .collect()
                })
                .collect()
        }

        fn details(ns: &[i64]) -> Vec<String> {
            ns.iter().map(|n| event(*n).detail.to_string()).collect()
        }

        #[tokio::test]
        async fn a_transiently_rejected_entry_is_sent_once_more() {
            // Given EventBridge rejecting the middle entry once, then accepting it
            let server = fake_eventbridge().await;
            put_events()
                .respond_with(answer(json!({
                    "FailedEntryCount": 1,
                    "Entries": [
                        {"EventId": "e0"},
                        {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
                        {"EventId": "e2"}
                    ]
                })))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&server)
                .await;
            put_events()
                .respond_with(answer(json!({"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}]})))
                .with_priority(2)
                .mount(&server)
                .await;
            let publisher = EventBridgePublisher::new(events_client(&server.uri()), "bus".to_owned());

            // When three events are published, then all count as published
            let events: Vec<DomainEvent> = (0..3).map(event).collect();
            publisher.publish(&events).await.expect("accepted on retry");

            // and the retry carried only the rejected entry
            assert_eq!(sent_entries(&server).await, vec![details(&[0, 1, 2]), details(&[1])]);
        }

        #[tokio::test]
        async fn an_entry_rejected_twice_is_reported_and_not_sent_a_third_time() {
            let server = fake_eventbridge().await;
            put_events()
                .respond_with(answer(json!({
                    "FailedEntryCount": 1,
                    "Entries": [{"EventId": "e0"}, {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]
                })))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&server)
                .await;
            put_events()
                .respond_with(answer(json!({
                    "FailedEntryCount": 1,
                    "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]
                })))
                .with_priority(2)
                .mount(&server)
                .await;
            let publisher = EventBridgePublisher::new(events_client(&server.uri()), "bus".to_owned());

            let events: Vec<DomainEvent> = (0..2).map(event).collect();
            let err = publisher.publish(&events).await.expect_err("rejected twice");
            assert_eq!(err.failed, vec![1]);
            let source = format!("{:#}", err.source.expect("a source"));
            assert!(source.contains("ThrottlingException"), "{source}");
            assert_eq!(sent_entries(&server).await, vec![details(&[0, 1]), details(&[1])]);
        }

        #[tokio::test]
        async fn failures_in_the_second_chunk_are_reported_with_their_slice_index() {
            // Given the first call (10 entries) accepted and the second (2 entries) rejecting its
            // last entry on both tries
            let server = fake_eventbridge().await;
            let ok10: Vec<serde_json::Value> = (0..10).map(|i| json!({"EventId": format!("e{i}")})).collect();
            put_events()
                .respond_with(answer(json!({"FailedEntryCount": 0, "Entries": ok10})))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&server)
                .await;
            put_events()
                .respond_with(answer(json!({
                    "FailedEntryCount": 1,
                    "Entries": [{"EventId": "e10"}, {"ErrorCode": "InternalFailure"}]
                })))
                .up_to_n_times(1)
                .with_priority(2)
                .mount(&server)
                .await;
            put_events()
                .respond_with(answer(
                    json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}),
                ))
                .with_priority(3)
                .mount(&server)
                .await;
            let publisher = EventBridgePublisher::new(events_client(&server.uri()), "bus".to_owned());

            let events: Vec<DomainEvent> = (0..12).map(event).collect();
            let err = publisher.publish(&events).await.expect_err("one rejected");
            assert_eq!(err.failed, vec![11]);
            let sizes: Vec<usize> = sent_entries(&server).await.iter().map(Vec::len).collect();
            assert_eq!(sizes, vec![10, 2, 1]);
        }
    }
}
