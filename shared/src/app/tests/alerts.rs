//! One incident, one alert (issue 9 item 5), on the recording alerter: a batch pages once, with
//! its failures by error code, and its items page no more; input rejected at validation pages
//! never; a failure is named for what happened (nothing was dead-lettered); and an alert is one
//! log line.

use super::send_batch::run_paced;
use super::Env;
use crate::adapters::log_alerter::{FanoutAlerter, LogAlerter};
use crate::app::alerts::raise_once;
use crate::app::batch_progress::batch_summary;
use crate::app::send_batch::BatchRequest;
use crate::app::Ctx;
use crate::domain::MessageStatus;
use crate::ports::{AlertKind, Alerter, ProviderError};
use crate::telemetry::Buffer;
use crate::testing::RecordingAlerter;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(20);

fn invalid_number() -> ProviderError {
    ProviderError::Rejected {
        code: 21211,
        message: "Invalid 'To' Phone Number".to_owned(),
    }
}

fn batch(items: Vec<Value>) -> BatchRequest {
    BatchRequest {
        messages: Some(items),
        from: None,
    }
}

fn valid(i: usize) -> Value {
    json!({"to": format!("+1415555061{i}"), "body": "hello"})
}

fn kinds(env: &Env) -> Vec<AlertKind> {
    env.alerts.alerts().iter().map(|a| a.kind).collect()
}

#[tokio::test]
async fn a_batch_of_seven_with_six_invalid_numbers_pages_once_with_the_breakdown_by_code() {
    // Given a batch of seven where the provider refuses six as invalid numbers (21211)
    let env = Env::new(&[]);
    for _ in 0..6 {
        env.provider.fail_next(invalid_number());
    }
    let out = run_paced(&env, batch((0..7).map(valid).collect()), BUDGET).await;
    assert_eq!(
        (out["sent"].as_u64(), out["failed"].as_u64()),
        (Some(1), Some(6)),
        "{out}"
    );

    // Then exactly one alert: the batch's, with the failures by error code
    let alerts = env.alerts.alerts();
    assert_eq!(
        kinds(&env),
        [AlertKind::BatchFailureRate],
        "one incident, one alert: {alerts:?}"
    );
    let a = &alerts[0];
    assert_eq!(a.subject, out["batch_id"].as_str().expect("id"));
    assert_eq!(a.counts["failed"], 6);
    assert_eq!(a.counts["accepted"], 7);
    assert_eq!(a.counts["failed_by_code"], json!({"21211": 6}));
    assert!(
        a.summary.contains("6 of its 7") && a.summary.contains("21211 × 6"),
        "{}",
        a.summary
    );
    let summary = batch_summary(env.ctx(), a.subject.as_str())
        .await
        .expect("read")
        .expect("batch");
    assert_eq!(summary["alerted"], true);
}

#[tokio::test]
async fn the_breakdown_counts_each_code_of_a_batch_separately() {
    let env = Env::new(&[]);
    for code in [21211, 21211, 30007, 21211] {
        env.provider.fail_next(ProviderError::Rejected {
            code,
            message: String::new(),
        });
    }
    run_paced(&env, batch((0..5).map(valid).collect()), BUDGET).await;
    let alerts = env.alerts.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].counts["failed_by_code"], json!({"21211": 3, "30007": 1}));
}

#[tokio::test]
async fn a_batch_whose_items_were_all_rejected_at_validation_raises_no_alert() {
    let env = Env::new(&[]);
    let out = run_paced(
        &env,
        batch(vec![
            json!({"to": "12345", "body": "x"}),
            json!({"to": "+14155550620"}),
            json!({"body": "no recipient"}),
        ]),
        BUDGET,
    )
    .await;
    assert_eq!(out["rejected"], 3, "{out}");
    assert_eq!(env.provider.call_count(), 0);
    assert!(env.alerts.alerts().is_empty(), "{:?}", env.alerts.alerts());
    let summary = batch_summary(env.ctx(), out["batch_id"].as_str().expect("id"))
        .await
        .expect("read")
        .expect("batch");
    assert_eq!(
        (summary["state"].as_str(), summary["alerted"].as_bool()),
        (Some("completed"), Some(false))
    );
    assert!(env.events.events().iter().any(|e| e.detail_type == "batch.completed"));
}

#[tokio::test]
async fn rejected_items_do_not_count_toward_the_rate_that_pages() {
    // Two rejected, two sent of which one failed: 1 of 2 accepted failed, not over half.
    let env = Env::new(&[]);
    env.provider.fail_next(invalid_number());
    let items = vec![
        json!({"to": "12345", "body": "x"}),
        json!({"to": "1"}),
        valid(0),
        valid(1),
    ];
    let out = run_paced(&env, batch(items), BUDGET).await;
    assert_eq!(
        (out["failed"].as_u64(), out["rejected"].as_u64()),
        (Some(1), Some(2)),
        "{out}"
    );
    assert!(env.alerts.alerts().is_empty(), "{:?}", env.alerts.alerts());
}

#[tokio::test]
async fn when_the_sent_items_mostly_fail_the_page_says_how_many_were_rejected_besides() {
    let env = Env::new(&[]);
    env.provider.fail_next(invalid_number());
    env.provider.fail_next(invalid_number());
    let items = vec![json!({"to": "12345", "body": "x"}), valid(0), valid(1)];
    run_paced(&env, batch(items), BUDGET).await;
    let alerts = env.alerts.alerts();
    assert_eq!(kinds(&env), [AlertKind::BatchFailureRate], "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(
        (a.counts["failed"].as_u64(), a.counts["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(a.counts["send_failure_rate"], 1.0);
    assert!(
        a.summary.contains("1 more were rejected before sending"),
        "{}",
        a.summary
    );
}

#[tokio::test]
async fn a_single_message_refused_as_an_invalid_number_is_reported_as_failed_not_dead_lettered() {
    let env = Env::new(&[]);
    env.provider.fail_next(invalid_number());
    let out = env.send(json!({"to": "+14155550630", "body": "hi"})).await;
    assert_eq!(out.message.status, MessageStatus::Failed);
    let alerts = env.alerts.alerts();
    assert_eq!(kinds(&env), [AlertKind::MessagesFailed], "{alerts:?}");
    assert_eq!(AlertKind::MessagesFailed.as_str(), "messages_failed");
    assert_eq!(alerts[0].counts["last_error_code"], 21211);
    assert!(alerts[0].summary.contains("error 21211"), "{}", alerts[0].summary);
    assert!(!alerts[0].summary.to_lowercase().contains("dead"));
}

#[tokio::test]
async fn an_alert_is_logged_once_by_the_log_channel() {
    let env = Env::new(&[]);
    let recorder = Arc::new(RecordingAlerter::default());
    let channels: Vec<Arc<dyn Alerter>> = vec![Arc::new(LogAlerter), recorder.clone()];
    let fanout = FanoutAlerter::new(channels);
    let ctx = Ctx {
        alerter: &fanout,
        ..env.ctx()
    };
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let raised = {
        let _guard = tracing::subscriber::set_default(subscriber);
        raise_once(
            ctx,
            AlertKind::ProcessorNotRunning,
            "processor",
            "no run".to_owned(),
            Default::default(),
        )
        .await
    };
    assert!(raised);
    assert_eq!(recorder.alerts().len(), 1);
    let log = buffer.text();
    assert_eq!(
        log.matches("processor_not_running").count(),
        1,
        "one line, one format: {log}"
    );
}
