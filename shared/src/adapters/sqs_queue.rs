//! `SqsJobQueue`: the [`JobQueue`] on Amazon SQS (feature `aws`), plus the body parser the Lambda
//! retry consumer uses and a helper that creates a queue with its dead-letter queue.
//!
//! Dead-lettering is SQS's own: the queue's `RedrivePolicy` moves a message to the DLQ once its
//! receive count exceeds `maxReceiveCount` (template.yaml `RetryQueue`; in tests the pair made by
//! [`create_queue_pair`], checked by the queue contract suite). This adapter never moves messages
//! itself. SDK errors are kept whole as the source of `QueueError::Unexpected`, never stringified.

use crate::ports::{JobPayload, JobQueue, QueueError, QueueStats, ReceivedJob, MAX_DELAY};
use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use std::collections::HashMap;
use std::time::Duration;

/// Most messages one `ReceiveMessage` call may return (SQS limit).
const MAX_BATCH: usize = 10;

/// Longest visibility timeout SQS accepts: 12 hours.
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;

/// The queue's visibility timeout set by [`create_queue_pair`] (SQS's default).
const DEFAULT_VISIBILITY_SECS: u32 = 30;

/// The SQS-backed job queue.
#[derive(Debug, Clone)]
pub struct SqsJobQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: Option<String>,
}

impl SqsJobQueue {
    /// A queue at `queue_url`; `dead_letter_url`, when given, is the DLQ its redrive policy
    /// targets, read only for [`QueueStats::dead`].
    pub fn new(client: Client, queue_url: String, dead_letter_url: Option<String>) -> Self {
        Self {
            client,
            queue_url,
            dead_letter_url,
        }
    }
}

/// Parse an SQS message body (as sent by [`SqsJobQueue`]) into a job, e.g. a record of a Lambda
/// SQS event.
///
/// # Errors
/// `Malformed` when the body is not a JSON [`JobPayload`]; it can never succeed.
pub fn parse_record_body(body: &str) -> Result<JobPayload, QueueError> {
    serde_json::from_str(body).map_err(QueueError::Malformed)
}

/// Create `<name>-dlq`, then `<name>` redriving to it after `max_receive_count` receives, with a
/// 30 s visibility timeout; returns `(queue url, dead-letter queue url)`. For tests and local
/// tooling: production queues come from template.yaml.
///
/// # Errors
/// `Unexpected` when SQS refuses a call or answers without a URL or ARN.
pub async fn create_queue_pair(
    client: &Client,
    name: &str,
    max_receive_count: u32,
) -> Result<(String, String), QueueError> {
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .context("SQS CreateQueue (dead-letter queue)")
        .map_err(QueueError::Unexpected)?
        .queue_url
        .ok_or_else(|| QueueError::Unexpected(anyhow!("CreateQueue returned no dead-letter queue URL")))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("SQS GetQueueAttributes (dead-letter queue ARN)")
        .map_err(QueueError::Unexpected)?
        .attributes
        .and_then(|mut attrs| attrs.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Unexpected(anyhow!("GetQueueAttributes returned no QueueArn")))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count,
    })
    .to_string();
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            DEFAULT_VISIBILITY_SECS.to_string(),
        )
        .send()
        .await
        .context("SQS CreateQueue")
        .map_err(QueueError::Unexpected)?
        .queue_url
        .ok_or_else(|| QueueError::Unexpected(anyhow!("CreateQueue returned no queue URL")))?;
    Ok((url, dlq_url))
}

/// Whole seconds for an SQS timer: sub-second parts round up (never early), capped at `max`.
fn whole_seconds(d: Duration, max: u64) -> i32 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)).min(max);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// `DelaySeconds` for a delay: 0–900, rounded up.
fn delay_seconds(delay: Duration) -> i32 {
    whole_seconds(delay.min(MAX_DELAY), MAX_DELAY.as_secs())
}

/// A queue attribute as a count; a missing or non-numeric one is an error (we asked for it).
fn count(attrs: &HashMap<QueueAttributeName, String>, name: &QueueAttributeName) -> Result<u64, QueueError> {
    attrs
        .get(name)
        .ok_or_else(|| anyhow!("GetQueueAttributes did not return {name}"))
        .and_then(|v| v.parse::<u64>().with_context(|| format!("{name} is not a count")))
        .map_err(QueueError::Unexpected)
}

impl SqsJobQueue {
    async fn counts(&self, url: &str, names: &[QueueAttributeName]) -> Result<u64, QueueError> {
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .context("SQS GetQueueAttributes")
            .map_err(QueueError::Unexpected)?
            .attributes
            .unwrap_or_default();
        names
            .iter()
            .try_fold(0u64, |sum, name| Ok(sum.saturating_add(count(&attrs, name)?)))
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, payload: &JobPayload, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(payload)
            .context("serializing job payload")
            .map_err(QueueError::Unexpected)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds(delay))
            .send()
            .await
            .context("SQS SendMessage")
            .map_err(QueueError::Unexpected)?;
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedJob>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.min(MAX_BATCH)).unwrap_or(1))
            .visibility_timeout(whole_seconds(visibility, MAX_VISIBILITY_SECS))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .context("SQS ReceiveMessage")
            .map_err(QueueError::Unexpected)?;
        let mut jobs = Vec::new();
        for message in out.messages.unwrap_or_default() {
            // SQS always sends these; a message without them could not be acked or reported.
            let (Some(message_id), Some(receipt)) = (message.message_id, message.receipt_handle) else {
                tracing::error!("SQS message without a message id or receipt handle; skipped");
                continue;
            };
            let receive_count = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|v| v.parse::<u32>().ok());
            let Some(receive_count) = receive_count else {
                tracing::error!(sqs_message_id = %message_id, "SQS message without ApproximateReceiveCount; skipped");
                continue;
            };
            // A malformed body can never succeed: leave it hidden, and the redrive policy moves it
            // to the DLQ after maxReceiveCount receives (never log the body itself).
            match parse_record_body(message.body.as_deref().unwrap_or_default()) {
                Ok(payload) => jobs.push(ReceivedJob {
                    receipt,
                    message_id,
                    payload,
                    receive_count,
                }),
                Err(e) => tracing::error!(
                    sqs_message_id = %message_id,
                    receive_count,
                    error.message = %e,
                    error.cause_chain = ?e,
                    "skipping an SQS message whose body is not a job"
                ),
            }
        }
        Ok(jobs)
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .context("SQS DeleteMessage")
            .map_err(QueueError::Unexpected)?;
        Ok(())
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let pending = self
            .counts(
                &self.queue_url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                ],
            )
            .await?;
        let dead = match &self.dead_letter_url {
            Some(url) => {
                self.counts(url, &[QueueAttributeName::ApproximateNumberOfMessages])
                    .await?
            }
            None => 0,
        };
        Ok(QueueStats { pending, dead })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_rounds_sub_seconds_up_and_caps_at_900() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(delay_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(delay_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(delay_seconds(Duration::from_secs(900)), 900);
        assert_eq!(delay_seconds(Duration::from_millis(899_500)), 900);
        assert_eq!(delay_seconds(Duration::from_secs(86_400)), 900);
        assert_eq!(delay_seconds(Duration::MAX), 900);
    }

    #[test]
    fn visibility_rounds_up_and_caps_at_twelve_hours() {
        assert_eq!(whole_seconds(Duration::from_millis(1500), MAX_VISIBILITY_SECS), 2);
        assert_eq!(whole_seconds(Duration::from_secs(100_000), MAX_VISIBILITY_SECS), 43_200);
        assert_eq!(whole_seconds(Duration::MAX, MAX_VISIBILITY_SECS), 43_200);
    }

    #[test]
    fn record_body_round_trips_and_garbage_is_malformed() {
        let body = r#"{"kind":"send_attempt","message_id":"msg_01J0000000000000000000000X","not_before":"2026-03-01T12:00:00Z"}"#;
        let job = parse_record_body(body).expect("a valid body");
        assert_eq!(
            job.message_id.as_ref().map(|m| m.as_str()),
            Some("msg_01J0000000000000000000000X")
        );
        assert_eq!(
            parse_record_body(&serde_json::to_string(&job).expect("serialize")).expect("round trip"),
            job
        );
        for bad in [
            "",
            "not json",
            r#"{"kind":"send_attempt"}"#,
            &body.replace("msg_", "sms_"),
        ] {
            assert!(matches!(parse_record_body(bad), Err(QueueError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn counts_need_every_attribute_asked_for() {
        let mut attrs = HashMap::new();
        attrs.insert(QueueAttributeName::ApproximateNumberOfMessages, "7".to_owned());
        assert_eq!(
            count(&attrs, &QueueAttributeName::ApproximateNumberOfMessages).expect("a count"),
            7
        );
        assert!(count(&attrs, &QueueAttributeName::ApproximateNumberOfMessagesDelayed).is_err());
        attrs.insert(QueueAttributeName::ApproximateNumberOfMessagesDelayed, "x".to_owned());
        assert!(count(&attrs, &QueueAttributeName::ApproximateNumberOfMessagesDelayed).is_err());
    }
}
