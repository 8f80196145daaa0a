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
    let outcome = handle_job(ctx(deps, callback_base(deps)), &payload).await?;
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
    process_due(
        ctx(deps, callback_base(deps)),
        deps.queries.as_ref(),
        deps.retention.as_ref(),
        budget,
    )
    .await
}

#[cfg(feature = "aws")]
pub mod lambda {
    //! Lambda shapes: SQS batches with partial failure reporting, scheduled events.

    use super::{run_job, run_processor};
    use crate::wiring::Deps;
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

    /// Retry consumer: run every record concurrently; report the failed ones so only they are
    /// redriven (`ReportBatchItemFailures`), and dead-lettered after `maxReceiveCount`.
    pub async fn handle_sqs(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
        let futures = event.records.into_iter().map(|record| async move {
            let Some(id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
                tracing::error!("SQS record without a message id");
                return None;
            };
            match run_job(deps, record.body.as_deref().unwrap_or("")).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(sqs_message_id = %id, error.message = %e, error.cause_chain = ?e, "job failed; reported for redrive");
                    Some(id)
                }
            }
        });
        let failed: Vec<Option<String>> = futures_util::future::join_all(futures).await;
        let mut response = SqsBatchResponse::default();
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
    /// The due index could not be read (Lambda retries the scheduled event).
    pub async fn handle_schedule(deps: &Deps) -> Result<serde_json::Value, crate::app::AppError> {
        let report = run_processor(deps, std::time::Duration::from_secs(240)).await?;
        Ok(serde_json::to_value(report).unwrap_or_default())
    }
}
