//! The retry consumer's use case: one queued job = one claimed attempt (SQS in Lambda, the
//! SQLite queue locally). Idempotent: a redelivered or duplicated job finds the message no longer
//! `queued` and does nothing.

use super::agent_turn::{agent_turn, conversation_silent, ConversationPorts};
use super::attempt::{claim_attempt, enqueue_attempt, run_claimed, AttemptOutcome, Claim};
use super::pacing::ATTEMPT_HORIZON;
use super::{AppError, Ctx};
use crate::ports::{JobKind, JobPayload};

/// Handle one job. `Ok` means acknowledge it; `Err` means let the queue redeliver it. Send
/// attempts use the send pipeline's ports (`ctx`); conversation jobs (the agent's turn, a silent
/// conversation) also use `conversations` (the store, the campaign's agent, the agents).
///
/// # Errors
/// Store failures (transient: the job is redelivered, and dead-lettered after max receives).
pub async fn handle_job(
    ctx: Ctx<'_>,
    conversations: ConversationPorts<'_>,
    job: &JobPayload,
) -> Result<Option<AttemptOutcome>, AppError> {
    match job.kind {
        JobKind::SendAttempt => {
            let Some(message_id) = &job.message_id else {
                return Err(malformed("a send_attempt job needs a message_id"));
            };
            let now = ctx.clock.now();
            if job.not_before > now + chrono::Duration::seconds(1) {
                // Longer than one queue delay allows: chain the rest.
                let rest = (job.not_before - now).to_std().unwrap_or_default();
                enqueue_attempt(ctx, message_id, now, rest).await;
                return Ok(None);
            }
            match claim_attempt(ctx, message_id).await? {
                Claim::Claimed(c) => {
                    let (_, outcome, _) = run_claimed(ctx, c).await?;
                    Ok(Some(outcome))
                }
                Claim::Busy => {
                    // The sender's rate is booked (a batch is running): chain the job, claim nothing.
                    enqueue_attempt(ctx, message_id, now, ATTEMPT_HORIZON).await;
                    Ok(None)
                }
                Claim::Suppressed => Ok(Some(AttemptOutcome::Suppressed)),
                Claim::Skipped => Ok(Some(AttemptOutcome::Skipped)),
            }
        }
        JobKind::AgentTurn => {
            let Some(id) = job.conversation_id.as_ref() else {
                return Err(malformed("an agent_turn job needs a conversation_id"));
            };
            let outcome = agent_turn(ctx, conversations, id).await?;
            tracing::info!(conversation_id = %id, ?outcome, "agent turn");
            Ok(None)
        }
        JobKind::ConversationSilent => {
            let Some(id) = job.conversation_id.as_ref() else {
                return Err(malformed("a conversation_silent job needs a conversation_id"));
            };
            conversation_silent(ctx, conversations, id).await?;
            Ok(None)
        }
    }
}

/// A job that can never succeed: dead-lettered for inspection.
fn malformed(message: &str) -> AppError {
    AppError::Validation {
        code: "malformed_job",
        message: message.to_owned(),
        field: None,
    }
}
