//! The retry consumer's use case: one queued job = one claimed attempt (SQS in Lambda, the
//! SQLite queue locally). Idempotent: a redelivered or duplicated job finds the message no longer
//! `queued` and does nothing.

use super::attempt::{claim_attempt, enqueue_attempt, run_attempt, AttemptOutcome, Claim};
use super::{AppError, Ctx};
use crate::ports::{JobKind, JobPayload};

/// Handle one job. `Ok` means acknowledge it; `Err` means let the queue redeliver it.
///
/// # Errors
/// Store failures (transient: the job is redelivered, and dead-lettered after max receives).
pub async fn handle_job(ctx: Ctx<'_>, job: &JobPayload) -> Result<Option<AttemptOutcome>, AppError> {
    match job.kind {
        JobKind::SendAttempt => {
            let now = ctx.clock.now();
            if job.not_before > now + chrono::Duration::seconds(1) {
                // Longer than one queue delay allows: chain the rest.
                let rest = (job.not_before - now).to_std().unwrap_or_default();
                enqueue_attempt(ctx, &job.message_id, now, rest).await;
                return Ok(None);
            }
            match claim_attempt(ctx, &job.message_id).await? {
                Claim::Claimed(m) => {
                    let (_, outcome, _) = run_attempt(ctx, *m).await?;
                    Ok(Some(outcome))
                }
                Claim::Suppressed => Ok(Some(AttemptOutcome::Suppressed)),
                Claim::Skipped => Ok(Some(AttemptOutcome::Skipped)),
            }
        }
    }
}
