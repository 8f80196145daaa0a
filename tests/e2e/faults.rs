//! Fault injection on both stacks (SQLite store + SQLite queue; DynamoDB Local + the SQS
//! emulator), through the shared router and the same job/processor entrypoints the Lambdas use.
//! Every test asserts the invariants: one provider create per attempt, nothing lost, no status
//! regression, no send to an opted-out number, the hourly cap never exceeded.

use crate::helpers::{config, TWILIO_SID, TWILIO_TOKEN};
use crate::twilio_mock::{creates, error_json, message_json, on_create, on_list};
use bytes::Bytes;
use serde_json::{json, Value};
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::adapters::twilio::compute_signature;
use smsrelay::entrypoints::jobs::{drain_queue_once, run_processor};
use smsrelay::entrypoints::{handle, Routes};
use smsrelay::ports::JobQueue;
use smsrelay::testing::CountingStore;
use smsrelay::wiring::{provider_for, Deps};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::MockServer;

pub const BASE: &str = "https://relay.example.com";

pub struct Env {
    pub deps: Deps,
    pub store: Arc<CountingStore>,
    pub queue: Arc<dyn JobQueue>,
    pub twilio: MockServer,
}

pub async fn env(store: Arc<CountingStore>, queue: Arc<dyn JobQueue>) -> Env {
    let twilio = MockServer::start().await;
    let cfg = config(&[
        ("SMSRELAY_API_KEY", "k"),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
        ("TWILIO_API_BASE", &twilio.uri()),
        ("SMSRELAY_PUBLIC_URL", BASE),
        ("SMSRELAY_RECONCILE_AFTER", "0s"),
        ("SMSRELAY_RETRY_BASE", "50ms"),
        ("SMSRELAY_RETRY_CAP", "100ms"),
    ]);
    let provider = provider_for(&cfg).expect("provider");
    let counting = store;
    let deps = Deps::new(cfg, counting.clone(), queue.clone(), provider, Arc::new(SystemClock));
    Env {
        deps,
        store: counting,
        queue,
        twilio,
    }
}

impl Env {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer k")
            .header("content-type", "application/json")
            .body(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string())))
            .expect("request");
        let resp = handle(&self.deps, Routes::All, req).await;
        let status = resp.status().as_u16();
        (status, serde_json::from_slice(resp.body()).unwrap_or(Value::Null))
    }

    pub async fn send(&self, to: &str, body: &str) -> (u16, Value) {
        self.call("POST", "/v1/messages", Some(json!({"to": to, "body": body})))
            .await
    }

    pub async fn message(&self, id: &str) -> Value {
        let (status, m) = self.call("GET", &format!("/v1/messages/{id}"), None).await;
        assert_eq!(status, 200);
        m
    }

    pub async fn callback(&self, id: &str, sid: &str, status: &str) -> u16 {
        let url = format!("{BASE}/webhooks/twilio/status?message_id={id}");
        let params: Vec<(String, String)> = vec![
            ("MessageSid".into(), sid.into()),
            ("MessageStatus".into(), status.into()),
            ("To".into(), "+14155550100".into()),
        ];
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("/webhooks/twilio/status?message_id={id}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", compute_signature(TWILIO_TOKEN, &url, &params))
            .body(Bytes::from(form))
            .expect("request");
        handle(&self.deps, Routes::All, req).await.status().as_u16()
    }

    /// Work the queue and the processor until `pred` holds (deadline 15 s).
    pub async fn drive(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let m = self.message(id).await;
            if pred(&m) {
                return m;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "not reached: {m}");
            drain_queue_once(&self.deps, self.queue.as_ref(), 10)
                .await
                .expect("drain");
            run_processor(&self.deps, Duration::from_secs(5)).await.expect("tick");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn statuses(m: &Value) -> Vec<String> {
    m["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["status"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Ranks as in `MessageStatus::rank`, to check the history never moves down outside a retry.
fn never_regresses(m: &Value) {
    let rank = |s: &str| match s {
        "queued" | "rate_limited" => 10,
        "sending" => 20,
        "sent" => 30,
        "undelivered" | "failed" => 40,
        "delivered" => 50,
        _ => 100,
    };
    let h = statuses(m);
    for w in h.windows(2) {
        let retry = w[1] == "queued" || w[1] == "sending";
        assert!(retry || rank(&w[1]) > rank(&w[0]), "status regressed in {h:?}");
    }
}

/// Expands the suite for one backend: `$make` is an async expression giving `(Arc<dyn Store>, Arc<dyn JobQueue>)`.
macro_rules! fault_suite {
    ($make:expr) => {
        use super::*;

        async fn setup() -> Env {
            let (store, queue) = $make;
            env(store, queue).await
        }

        #[tokio::test]
        async fn a_store_fault_before_the_send_sends_nothing() {
            let e = setup().await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000001",
                    "+14155550100",
                    "hi",
                    "queued",
                ),
                None,
                1,
            )
            .await;
            e.store.fail_next("create_message", 1);
            let (status, body) = e.send("+14155550100", "hi").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(creates(&e.twilio).await, 0);
        }

        #[tokio::test]
        async fn a_store_fault_after_the_provider_accepted_is_reconciled_without_a_second_send() {
            let e = setup().await;
            let sid = "SM10000000000000000000000000000002";
            on_create(
                &e.twilio,
                201,
                message_json(sid, "+14155550100", "hi", "queued"),
                None,
                1,
            )
            .await;
            on_list(&e.twilio, vec![message_json(sid, "+14155550100", "hi", "sent")]).await;
            e.store.fail_next("update_message_and_link", 1);
            let (status, body) = e.send("+14155550100", "hi").await;
            assert_eq!(status, 202);
            assert!(body["warning"].is_string(), "{body}");
            let id = body["id"].as_str().expect("id");
            let m = e.drive(id, |m| m["status"] == "sent").await;
            assert_eq!(m["provider_sid"], sid);
            assert_eq!(creates(&e.twilio).await, 1, "never resent");
            never_regresses(&m);
        }

        /// Found by the simulation (issue 13): reconciliation found the provider's message but
        /// could not index its sid (a store fault), and took that for "never sent": a second send.
        #[tokio::test]
        async fn a_store_fault_while_reconciliation_links_the_found_sid_is_retried_not_resent() {
            let e = setup().await;
            let sid = "SM10000000000000000000000000000005";
            on_create(
                &e.twilio,
                201,
                message_json(sid, "+14155550100", "hi", "queued"),
                None,
                1,
            )
            .await;
            on_list(&e.twilio, vec![message_json(sid, "+14155550100", "hi", "sent")]).await;
            // The send path's outcome write (with its sid link) fails, then reconciliation's link.
            e.store.fail_next("update_message_and_link", 1);
            e.store.fail_next("link_provider_sid", 1);
            let (status, body) = e.send("+14155550100", "hi").await;
            assert_eq!(status, 202, "{body}");
            let id = body["id"].as_str().expect("id");
            let m = e.drive(id, |m| m["status"] == "sent").await;
            assert_eq!(m["provider_sid"], sid);
            assert_eq!(creates(&e.twilio).await, 1, "never resent");
            never_regresses(&m);
        }

        #[tokio::test]
        async fn a_store_fault_on_the_status_write_is_retried_by_the_provider_and_applied_once() {
            let e = setup().await;
            let sid = "SM10000000000000000000000000000003";
            on_create(
                &e.twilio,
                201,
                message_json(sid, "+14155550100", "hi", "queued"),
                None,
                1,
            )
            .await;
            let (_, body) = e.send("+14155550100", "hi").await;
            let id = body["id"].as_str().expect("id");
            e.store.fail_next("update_message", 1);
            assert_eq!(
                e.callback(id, sid, "delivered").await,
                503,
                "the provider is told to retry"
            );
            assert_eq!(e.callback(id, sid, "delivered").await, 200);
            assert_eq!(
                e.callback(id, sid, "delivered").await,
                200,
                "a duplicate is harmless"
            );
            let m = e.message(id).await;
            assert_eq!(statuses(&m), ["queued", "sending", "sent", "delivered"]);
        }

        #[tokio::test]
        async fn the_same_job_delivered_twice_and_two_racing_consumers_send_once() {
            let e = setup().await;
            on_create(
                &e.twilio,
                429,
                error_json(20429, "Too Many Requests", 429),
                Some(1),
                1,
            )
            .await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000004",
                    "+14155550100",
                    "hi",
                    "queued",
                ),
                None,
                2,
            )
            .await;
            let (_, body) = e.send("+14155550100", "hi").await;
            assert_eq!(body["status"], "queued");
            let id = body["id"].as_str().expect("id").to_owned();
            let job = smsrelay::ports::JobPayload::send_attempt(
                smsrelay::domain::MessageId::parse(&id).expect("id"),
                chrono::Utc::now(),
            );
            let payload = serde_json::to_string(&job).expect("json");
            // Two consumers race for the same job, and the same job arrives again afterwards.
            let (a, b) = tokio::join!(
                smsrelay::entrypoints::jobs::run_job(&e.deps, &payload),
                smsrelay::entrypoints::jobs::run_job(&e.deps, &payload)
            );
            assert!(a.is_ok() && b.is_ok());
            smsrelay::entrypoints::jobs::run_job(&e.deps, &payload)
                .await
                .expect("redelivery");
            let m = e.drive(&id, |m| m["status"] == "sent").await;
            assert_eq!(m["attempts"], 2);
            assert_eq!(creates(&e.twilio).await, 2, "one create per attempt");
        }

        #[tokio::test]
        async fn a_job_due_beyond_one_queue_delay_is_chained_not_sent_early() {
            let e = setup().await;
            on_create(
                &e.twilio,
                429,
                error_json(20429, "Too Many Requests", 429),
                Some(1),
                1,
            )
            .await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000008",
                    "+14155550100",
                    "hi",
                    "queued",
                ),
                None,
                2,
            )
            .await;
            let (_, body) = e.send("+14155550100", "hi").await;
            let id = body["id"].as_str().expect("id").to_owned();
            let pending_before = e.queue.stats().await.expect("stats").pending;
            let job = smsrelay::ports::JobPayload::send_attempt(
                smsrelay::domain::MessageId::parse(&id).expect("id"),
                chrono::Utc::now() + chrono::Duration::hours(2),
            );
            smsrelay::entrypoints::jobs::run_job(&e.deps, &serde_json::to_string(&job).expect("json"))
                .await
                .expect("job");
            assert_eq!(creates(&e.twilio).await, 1, "not sent before its time");
            assert_eq!(e.message(&id).await["status"], "queued");
            assert_eq!(
                e.queue.stats().await.expect("stats").pending,
                pending_before + 1,
                "re-enqueued for the rest of the wait"
            );
        }

        #[tokio::test]
        async fn duplicated_and_reordered_callbacks_never_regress() {
            let e = setup().await;
            let sid = "SM10000000000000000000000000000005";
            on_create(
                &e.twilio,
                201,
                message_json(sid, "+14155550100", "hi", "queued"),
                None,
                1,
            )
            .await;
            let (_, body) = e.send("+14155550100", "hi").await;
            let id = body["id"].as_str().expect("id");
            for st in [
                "delivered",
                "sent",
                "queued",
                "delivered",
                "sending",
                "undelivered",
                "sent",
            ] {
                assert_eq!(e.callback(id, sid, st).await, 200, "{st}");
            }
            let m = e.message(id).await;
            assert_eq!(m["status"], "delivered");
            assert_eq!(statuses(&m), ["queued", "sending", "sent", "delivered"]);
        }

        #[tokio::test]
        async fn concurrent_sends_to_one_number_never_exceed_the_hourly_cap() {
            let e = setup().await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000006",
                    "+14155550177",
                    "hi",
                    "queued",
                ),
                None,
                1,
            )
            .await;
            let sends = (0..10).map(|i| e.send("+14155550177", if i % 2 == 0 { "a" } else { "b" }));
            let results = futures_util::future::join_all(sends).await;
            let sent = results.iter().filter(|(_, b)| b["status"] == "sent").count();
            let held = results
                .iter()
                .filter(|(_, b)| b["status"] == "rate_limited")
                .count();
            assert_eq!((sent, held), (5, 5));
            assert_eq!(creates(&e.twilio).await, 5);
        }

        /// Found by the simulation (issue 13): a batch item whose send check failed was left
        /// queued and the retry queue sent it without a send slot, past the hourly cap.
        #[tokio::test]
        async fn a_batch_item_left_queued_by_a_store_fault_still_counts_against_the_hourly_cap() {
            let e = setup().await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000007",
                    "+14155550178",
                    "hi",
                    "queued",
                ),
                None,
                1,
            )
            .await;
            // The first item's check (opt-out read + slot) fails: the item is left queued.
            e.store.fail_next("check_send", 1);
            let items: Vec<Value> = (0..6).map(|i| json!({"to": "+14155550178", "body": format!("b{i}")})).collect();
            let (status, body) = e.call("POST", "/v1/batches", Some(json!({"messages": items}))).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(creates(&e.twilio).await, 5, "five slots: the five checked items");
            let left = body["results"][0]["message_id"].as_str().expect("id").to_owned();
            let m = e.drive(&left, |m| m["status"] != "queued" && m["status"] != "sending").await;
            assert_eq!(m["status"], "rate_limited", "{m}");
            assert_eq!(creates(&e.twilio).await, 5, "the hourly cap holds for the retried item");
        }

        /// Found by the simulation (issue 13): a scheduled message whose slot could not be
        /// taken when it fired was left queued, and the processor sent it past the cap.
        #[tokio::test]
        async fn a_scheduled_message_left_queued_by_a_slot_fault_still_counts_against_the_hourly_cap() {
            let e = setup().await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000008",
                    "+14155550179",
                    "hi",
                    "queued",
                ),
                None,
                1,
            )
            .await;
            let at = (chrono::Utc::now() + chrono::Duration::milliseconds(300))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let (status, later) = e
                .call("POST", "/v1/messages", Some(json!({"to": "+14155550179", "body": "later", "send_at": at})))
                .await;
            assert_eq!(status, 202, "{later}");
            for i in 0..5 {
                assert_eq!(e.send("+14155550179", &format!("now{i}")).await.0, 202);
            }
            assert_eq!(creates(&e.twilio).await, 5);
            tokio::time::sleep(Duration::from_millis(400)).await;
            // It fires (scheduled → queued), and taking its slot fails.
            e.store.fail_next("take_send_slot", 1);
            let id = later["id"].as_str().expect("id");
            let m = e.drive(id, |m| !["scheduled", "queued", "sending"].contains(&m["status"].as_str().unwrap_or(""))).await;
            assert_eq!(m["status"], "rate_limited", "{m}");
            assert_eq!(creates(&e.twilio).await, 5, "the hourly cap holds for the fired message");
        }

        #[tokio::test]
        async fn an_opted_out_number_is_never_sent_to_even_by_a_queued_retry() {
            let e = setup().await;
            on_create(
                &e.twilio,
                429,
                error_json(20429, "Too Many Requests", 429),
                Some(1),
                1,
            )
            .await;
            on_create(
                &e.twilio,
                201,
                message_json(
                    "SM10000000000000000000000000000007",
                    "+14155550188",
                    "hi",
                    "queued",
                ),
                None,
                2,
            )
            .await;
            let (_, queued) = e.send("+14155550188", "hi").await;
            assert_eq!(queued["status"], "queued");
            let phone = smsrelay::domain::PhoneNumber::parse_e164("+14155550188").expect("phone");
            e.deps
                .consent
                .opt_out(&phone, "keyword_stop", chrono::Utc::now())
                .await
                .expect("opt out");
            let id = queued["id"].as_str().expect("id");
            let m = e.drive(id, |m| m["status"] == "suppressed").await;
            never_regresses(&m);
            let (_, next) = e.send("+14155550188", "again").await;
            assert_eq!(next["status"], "suppressed");
            assert_eq!(
                creates(&e.twilio).await,
                1,
                "only the 429'd first attempt reached Twilio"
            );
        }
    };
}

mod sqlite {
    fault_suite!({
        let dir = Box::leak(Box::new(tempfile::tempdir().expect("dir")));
        let path = dir.path().join("faults.db");
        let store = Arc::new(CountingStore::new(Arc::new(
            smsrelay::adapters::sqlite::SqliteStore::open(&path).expect("store"),
        )));
        let queue: Arc<dyn JobQueue> =
            Arc::new(smsrelay::adapters::sqlite::SqliteJobQueue::open(&path, 5, Arc::new(SystemClock)).expect("queue"));
        (store, queue)
    });
}

mod dynamodb_sqs {
    fault_suite!({
        let (client, table) = crate::helpers::dynamodb_table().await;
        let store = Arc::new(CountingStore::new(Arc::new(
            smsrelay::adapters::dynamodb::DynamoMessageStore::new(client, table),
        )));
        let queue: Arc<dyn JobQueue> = Arc::new(crate::helpers::sqs_queue().await);
        (store, queue)
    });
}
