//! Non-HTTP entrypoints shared by Lambda and smsrelay-local: the retry consumer (SQS batches in
//! Lambda, the SQLite queue locally) and the processor tick (EventBridge schedule, local timer).

use super::http::ctx;
use crate::app::process_due::{process_due, TickReport};
use crate::app::retry::handle_job;
use crate::app::AppError;
use crate::ports::{JobPayload, JobQueue};
use crate::wiring::Deps;
use std::time::Duration;

/// How long a received job stays invisible while being worked on (the SQS visibility timeout
/// in template.yaml is 6× the consumer's timeout; locally this is the redelivery delay).
pub const VISIBILITY: Duration = Duration::from_secs(30);

/// The base URL callbacks go to when there is no HTTP request to derive it from.
pub fn callback_base(deps: &Deps) -> &str {
    deps.config.public_url.as_deref().unwrap_or("")
}

/// Handle one job body. `Ok` acknowledges it; `Err` leaves it for redelivery (and, after the
/// queue's max receives, the dead-letter queue).
///
/// # Errors
/// A malformed body (can never succeed: it is dead-lettered for inspection) or a transient failure.
pub async fn run_job(deps: &Deps, body: &str) -> Result<(), AppError> {
    let payload: JobPayload = serde_json::from_str(body).map_err(|e| AppError::Validation {
        code: "malformed_job",
        message: format!("job body is not a valid job: {e}"),
        field: None,
    })?;
    let conversations = crate::app::agent_turn::ConversationPorts {
        conversations: deps.conversations.as_ref(),
        campaign_agents: deps.campaign_agents.as_ref(),
        agent: deps.agent.as_ref(),
    };
    let outcome = handle_job(ctx(deps, callback_base(deps)), conversations, &payload).await?;
    tracing::debug!(kind = ?payload.kind, ?outcome, "job handled");
    Ok(())
}

/// Drain the local queue once: receive up to `max` jobs, run them, acknowledge the ones that
/// succeeded. Returns how many were received.
///
/// # Errors
/// The queue could not be read.
pub async fn drain_queue_once(deps: &Deps, queue: &dyn JobQueue, max: usize) -> Result<usize, AppError> {
    let jobs = queue
        .receive(max, VISIBILITY)
        .await
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    let n = jobs.len();
    for job in jobs {
        let body = serde_json::to_string(&job.payload).unwrap_or_default();
        match run_job(deps, &body).await {
            Ok(()) => {
                if let Err(e) = queue.ack(&job.receipt).await {
                    tracing::warn!(error.message = %e, "could not acknowledge a job; it will be redelivered (harmless)");
                }
            }
            Err(e) => {
                tracing::warn!(error.message = %e, receive_count = job.receive_count, "job failed; left for redelivery")
            }
        }
    }
    Ok(n)
}

/// One processor tick with the given budget.
///
/// # Errors
/// The due index could not be read.
pub async fn run_processor(deps: &Deps, budget: Duration) -> Result<TickReport, AppError> {
    tick(deps, callback_base(deps), budget).await
}

/// One processor tick: due messages (`app::process_due`), then due campaign enrolments
/// (`app::campaigns::process_enrolments`) with what is left of `budget`, in one report.
///
/// # Errors
/// A due index could not be read.
pub async fn tick(deps: &Deps, base: &str, budget: Duration) -> Result<TickReport, AppError> {
    let c = ctx(deps, base);
    let started = c.clock.monotonic();
    let mut report = process_due(c, deps.queries.as_ref(), deps.retention.as_ref(), budget).await?;
    let left = budget.saturating_sub(c.clock.elapsed_since(started));
    let ports = crate::app::campaigns::CampaignPorts {
        ctx: c,
        campaigns: deps.campaigns.as_ref(),
        conversations: deps.conversations.as_ref(),
        queries: deps.queries.as_ref(),
        retell: deps.retell_chats.as_deref(),
    };
    let campaigns = crate::app::campaigns::process_enrolments(ports, left).await?;
    report.due_sent += campaigns.sent;
    report.rescheduled += campaigns.rescheduled;
    report.ended_no_response += campaigns.ended_no_response;
    report.items_read += campaigns.items_read;
    report.remaining |= campaigns.remaining;
    report.duration_ms = u64::try_from(c.clock.elapsed_since(started).as_millis()).unwrap_or(u64::MAX);
    if campaigns.items_read > 0 {
        tracing::info!(?campaigns, "processor tick: campaigns");
    }
    Ok(report)
}

#[cfg(feature = "aws")]
pub mod lambda {
    //! Lambda shapes: SQS batches with partial failure reporting, scheduled events, and the
    //! `Diagnostic` a failed invocation reports to the runtime.

    use super::{run_job, run_processor};
    use crate::app::AppError;
    use crate::wiring::Deps;
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
    use lambda_http::lambda_runtime::Diagnostic;

    /// The error class a failed invocation reports as its `errorType` (rt basic-error-thiserror):
    /// `Transient` (a dependency was unavailable: the same event may succeed on a retry),
    /// `Unexpected` (a bug or unknown failure), or the name of the input/state refusal. The
    /// message is the error's opaque `Display`; the cause chain is logged at the boundary.
    impl From<AppError> for Diagnostic {
        fn from(e: AppError) -> Self {
            let error_type = match &e {
                AppError::Validation { .. } => "Validation",
                AppError::Unauthorized => "Unauthorized",
                AppError::Forbidden => "Forbidden",
                AppError::NotFound => "NotFound",
                AppError::Conflict { .. } => "Conflict",
                AppError::Refused { .. } => "Refused",
                AppError::PayloadTooLarge(_) => "PayloadTooLarge",
                AppError::Transient(_) => "Transient",
                AppError::Unexpected(_) => "Unexpected",
            };
            Diagnostic {
                error_type: error_type.to_owned(),
                error_message: e.to_string(),
            }
        }
    }

    /// Retry consumer: run every record concurrently; report the failed ones so only they are
    /// redriven (`ReportBatchItemFailures`), and dead-lettered after `maxReceiveCount`.
    ///
    /// A record without a message id cannot be named in `batchItemFailures`, so it fails the
    /// whole batch (house style §5): the answer is one failure with an empty `itemIdentifier`,
    /// which Lambda treats as a complete batch failure (every record is redriven, and the bad
    /// one reaches the dead-letter queue after `maxReceiveCount`). No record of such a batch is
    /// run: each would be redelivered anyway.
    pub async fn handle_sqs(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        if event
            .records
            .iter()
            .any(|r| r.message_id.as_deref().is_none_or(str::is_empty))
        {
            tracing::error!(
                records = event.records.len(),
                "SQS record without a message id: failing the whole batch"
            );
            let mut whole_batch = BatchItemFailure::default();
            whole_batch.item_identifier = String::new();
            response.batch_item_failures = vec![whole_batch];
            return response;
        }
        let futures = event.records.into_iter().map(|record| async move {
            let id = record.message_id.unwrap_or_default();
            match run_job(deps, record.body.as_deref().unwrap_or("")).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(sqs_message_id = %id, error.message = %e, error.cause_chain = ?e, "job failed; reported for redrive");
                    Some(id)
                }
            }
        });
        let failed: Vec<Option<String>> = futures_util::future::join_all(futures).await;
        response.batch_item_failures = failed
            .into_iter()
            .flatten()
            .map(|id| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                f
            })
            .collect();
        response
    }

    /// Processor: one tick per scheduled event, within the function's time (budget 4 minutes of
    /// the 5-minute schedule, so ticks rarely overlap; overlap is harmless anyway).
    ///
    /// # Errors
    /// The due index could not be read: a [`Diagnostic`] of class `Transient` or `Unexpected`
    /// (not retried: template.yaml sets no asynchronous retries, and the next tick picks up what
    /// stays due).
    pub async fn handle_schedule(deps: &Deps) -> Result<serde_json::Value, Diagnostic> {
        match run_processor(deps, std::time::Duration::from_secs(240)).await {
            Ok(report) => Ok(serde_json::to_value(report).unwrap_or_default()),
            Err(e) => {
                tracing::error!(error.message = %e, error.cause_chain = ?e, "processor tick failed");
                Err(Diagnostic::from(e))
            }
        }
    }
}

#[cfg(all(test, feature = "aws", feature = "sqlite"))]
mod tests {
    use super::lambda::{handle_schedule, handle_sqs};
    use crate::adapters::sqlite::{SqliteJobQueue, SqliteStore};
    use crate::config::Config;
    use crate::testing::{CountingStore, FakeSmsProvider, ManualClock};
    use crate::wiring::Deps;
    use aws_lambda_events::event::sqs::SqsEvent;
    use std::sync::Arc;

    fn deps() -> (Deps, Arc<CountingStore>) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let store = Arc::new(CountingStore::new(Arc::new(
            SqliteStore::open_in_memory().expect("store"),
        )));
        let queue = Arc::new(SqliteJobQueue::open_in_memory(5, clock.clone()).expect("queue"));
        let config = Config::from_lookup(|_| None).expect("defaults");
        let provider = Arc::new(FakeSmsProvider::new(clock.clone()));
        (Deps::new(config, store.clone(), queue, provider, clock), store)
    }

    fn event(name: &str) -> SqsEvent {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("event file")).expect("SQS event")
    }

    #[tokio::test]
    async fn a_record_without_a_message_id_fails_the_whole_batch() {
        let (deps, store) = deps();
        let resp = handle_sqs(&deps, event("retry-consumer-missing-message-id.json")).await;
        // An empty itemIdentifier is Lambda's "complete failure": every record is redriven.
        assert_eq!(
            serde_json::to_value(&resp).expect("serialise"),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": ""}]})
        );
        assert_eq!(store.total_calls(), 0, "no record of a failing batch is run");
    }

    #[tokio::test]
    async fn a_batch_whose_records_all_have_ids_reports_only_the_failed_ones() {
        let (deps, _) = deps();
        let resp = handle_sqs(&deps, event("retry-consumer-malformed.json")).await;
        let ids: Vec<String> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(ids, ["c80e8021-a70a-42c7-a470-796e1186f753"]);
    }

    #[tokio::test]
    async fn a_failed_tick_is_a_diagnostic_that_names_its_class() {
        let (deps, store) = deps();
        store.fail_next("list_due", 1);
        let err = handle_schedule(&deps).await.expect_err("the due index is unreadable");
        assert_eq!(err.error_type, "Transient", "{err:?}");
        assert!(!err.error_message.contains("injected"), "opaque message: {err:?}");
        assert!(handle_schedule(&deps).await.is_ok(), "the next tick runs");
    }

    #[test]
    fn an_unexpected_error_is_classified_unexpected() {
        let d =
            lambda_http::lambda_runtime::Diagnostic::from(crate::app::AppError::Unexpected(anyhow::anyhow!("a bug")));
        assert_eq!(d.error_type, "Unexpected");
        assert_eq!(d.error_message, "internal error");
    }
}
