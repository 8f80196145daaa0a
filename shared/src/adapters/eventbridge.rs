//! `EventBridgePublisher`: the [`EventPublisher`] on Amazon EventBridge (feature `aws`), and
//! `EventBridgeAlerter`, which raises alerts as `alert.raised` events through it.
//!
//! Every event becomes one `PutEvents` entry with `Source = smsrelay` on the configured bus, sent
//! at most [`MAX_ENTRIES_PER_CALL`] per call. `PutEvents` answers 200 even when some entries were
//! rejected, so `FailedEntryCount` and each entry's `ErrorCode` are always checked: rejected
//! entries are sent once more, and those rejected again are reported by index in
//! [`PublishError::failed`]. Whole-call failures are left to the SDK's own retry policy and are
//! never stringified (the SDK error is the source). Details are sent as given: the port forbids
//! full phone numbers and bodies in them.

use crate::ports::{Alert, AlertError, Alerter, DomainEvent, EventPublisher, PublishError};
use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

/// `Source` of every event smsrelay publishes (rules match on it).
pub const SOURCE: &str = "smsrelay";

/// `detail-type` of the events [`EventBridgeAlerter`] publishes.
pub const ALERT_RAISED: &str = "alert.raised";

/// Most entries one `PutEvents` call accepts (EventBridge limit).
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// [`EventPublisher`] backed by EventBridge `PutEvents`.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
}

/// One entry of a chunk: its index in the published slice and what is sent for it.
struct Pending {
    index: usize,
    entry: PutEventsRequestEntry,
}

/// An entry EventBridge rejected, with the reason it gave.
struct Rejected {
    pending: Pending,
    code: String,
}

impl EventBridgePublisher {
    /// A publisher putting events on the bus `bus_name` (a name or ARN; `default` is the
    /// account's default bus).
    pub fn new(client: Client, bus_name: String) -> Self {
        Self { client, bus_name }
    }

    fn entry(&self, event: &DomainEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(&event.detail_type)
            .detail(event.detail.to_string())
            .event_bus_name(&self.bus_name)
            .time(AwsDateTime::from_secs_and_nanos(
                event.at.timestamp(),
                event.at.timestamp_subsec_nanos(),
            ))
            .build()
    }

    /// One `PutEvents` call: the entries it rejected, or the whole call's failure.
    async fn put(&self, batch: Vec<Pending>) -> Result<Vec<Rejected>, (Vec<Pending>, anyhow::Error)> {
        let sent = self
            .client
            .put_events()
            .set_entries(Some(batch.iter().map(|p| p.entry.clone()).collect()))
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            Err(e) => return Err((batch, anyhow::Error::new(e).context("EventBridge PutEvents"))),
        };
        // `FailedEntryCount` is only a summary: each entry's `ErrorCode` decides, and an entry the
        // answer has no result for counts as rejected.
        let results = output.entries();
        let mut rejected = Vec::new();
        for (position, pending) in batch.into_iter().enumerate() {
            let code = match results.get(position) {
                Some(result) => match result.error_code() {
                    Some(code) => {
                        tracing::warn!(
                            index = pending.index,
                            error_code = code,
                            error_message = result.error_message().unwrap_or_default(),
                            "EventBridge rejected an event"
                        );
                        code.to_owned()
                    }
                    None => continue,
                },
                None => {
                    tracing::warn!(index = pending.index, "EventBridge returned no result for an event");
                    "NoResult".to_owned()
                }
            };
            rejected.push(Rejected { pending, code });
        }
        if usize::try_from(output.failed_entry_count()).ok() != Some(rejected.len()) {
            tracing::warn!(
                failed_entry_count = output.failed_entry_count(),
                rejected = rejected.len(),
                "EventBridge FailedEntryCount disagrees with its entries; the entries were trusted"
            );
        }
        Ok(rejected)
    }

    /// Put one chunk, then its rejected entries once more. Returns the indexes that did not make
    /// it and, if a call failed as a whole, its error.
    async fn put_chunk(&self, chunk: Vec<Pending>) -> (Vec<Rejected>, Option<anyhow::Error>) {
        let rejected = match self.put(chunk).await {
            Ok(rejected) => rejected,
            Err((batch, e)) => return (fail_all(batch, "CallFailed"), Some(e)),
        };
        if rejected.is_empty() {
            return (rejected, None);
        }
        let retry: Vec<Pending> = rejected.into_iter().map(|r| r.pending).collect();
        tracing::info!(entries = retry.len(), "retrying rejected EventBridge entries once");
        match self.put(retry).await {
            Ok(rejected) => (rejected, None),
            Err((batch, e)) => (
                fail_all(batch, "CallFailed"),
                Some(e.context("retrying rejected entries")),
            ),
        }
    }
}

fn fail_all(batch: Vec<Pending>, code: &str) -> Vec<Rejected> {
    batch
        .into_iter()
        .map(|pending| Rejected {
            pending,
            code: code.to_owned(),
        })
        .collect()
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    /// Puts the events in calls of at most [`MAX_ENTRIES_PER_CALL`]; every chunk is tried even
    /// when an earlier one failed.
    ///
    /// # Errors
    /// [`PublishError`] with the indexes rejected twice (or in a call that failed as a whole);
    /// its source is the first whole-call failure, or else a list of the entries' error codes.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        let mut rejected = Vec::new();
        let mut call_error = None;
        let mut next_index = 0usize;
        for chunk in events.chunks(MAX_ENTRIES_PER_CALL) {
            let pending = chunk
                .iter()
                .map(|event| {
                    let index = next_index;
                    next_index += 1;
                    Pending {
                        index,
                        entry: self.entry(event),
                    }
                })
                .collect();
            let (chunk_rejected, error) = self.put_chunk(pending).await;
            rejected.extend(chunk_rejected);
            if call_error.is_none() {
                call_error = error;
            }
        }
        if rejected.is_empty() {
            return Ok(());
        }
        let failed: Vec<usize> = rejected.iter().map(|r| r.pending.index).collect();
        let source = call_error.unwrap_or_else(|| {
            let codes: Vec<String> = rejected
                .iter()
                .map(|r| format!("#{} {}", r.pending.index, r.code))
                .collect();
            anyhow!("EventBridge rejected entries twice: {}", codes.join(", "))
        });
        Err(PublishError {
            failed,
            source: Some(source),
        })
    }
}

/// [`Alerter`] that publishes each alert as an `alert.raised` event (detail = the alert as JSON,
/// time = when it was raised), for rules that route alerts to SNS, PagerDuty and the like.
#[derive(Debug, Clone)]
pub struct EventBridgeAlerter {
    publisher: EventBridgePublisher,
}

impl EventBridgeAlerter {
    /// Publish alerts through `publisher` (and so on its bus).
    pub fn new(publisher: EventBridgePublisher) -> Self {
        Self { publisher }
    }
}

/// The `alert.raised` event for `alert`.
///
/// # Errors
/// When the alert cannot be serialized (it always can: its fields are strings, numbers and JSON).
fn alert_event(alert: &Alert) -> Result<DomainEvent, AlertError> {
    let detail = serde_json::to_value(alert)
        .context("serializing the alert")
        .map_err(AlertError)?;
    Ok(DomainEvent {
        detail_type: ALERT_RAISED.to_owned(),
        detail,
        at: alert.raised_at,
    })
}

#[async_trait]
impl Alerter for EventBridgeAlerter {
    /// # Errors
    /// [`AlertError`] when EventBridge did not accept the event.
    async fn raise(&self, alert: &Alert) -> Result<(), AlertError> {
        let event = alert_event(alert)?;
        self.publisher
            .publish(std::slice::from_ref(&event))
            .await
            .map_err(|e| AlertError(anyhow::Error::new(e).context("publishing alert.raised")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::AlertKind;
    use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
    use chrono::{TimeZone, Utc};

    fn publisher() -> EventBridgePublisher {
        let config = aws_sdk_eventbridge::config::Builder::new()
            .http_client(crate::wiring::aws_http_client())
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "unit-tests"))
            .build();
        EventBridgePublisher::new(Client::from_conf(config), "smsrelay-bus".to_owned())
    }

    #[test]
    fn an_entry_carries_source_bus_type_detail_and_time() {
        let at =
            Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).single().expect("time") + chrono::Duration::milliseconds(250);
        let entry = publisher().entry(&DomainEvent {
            detail_type: "message.delivered".to_owned(),
            detail: serde_json::json!({"message_id": "msg_1", "status": "delivered"}),
            at,
        });
        assert_eq!(entry.source(), Some("smsrelay"));
        assert_eq!(entry.event_bus_name(), Some("smsrelay-bus"));
        assert_eq!(entry.detail_type(), Some("message.delivered"));
        let detail: serde_json::Value = serde_json::from_str(entry.detail().expect("detail")).expect("json");
        assert_eq!(detail["status"], "delivered");
        let time = entry.time().expect("time");
        assert_eq!(time.secs(), at.timestamp());
        assert_eq!(time.subsec_nanos(), 250_000_000);
    }

    #[test]
    fn an_alert_event_is_alert_raised_with_the_alert_as_detail() {
        let raised_at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).single().expect("time");
        let alert = Alert {
            kind: AlertKind::ProcessorNotRunning,
            subject: "processor".to_owned(),
            summary: "no run for 10 minutes".to_owned(),
            counts: [("minutes_since_run".to_owned(), serde_json::json!(10))]
                .into_iter()
                .collect(),
            raised_at,
        };
        let event = alert_event(&alert).expect("event");
        assert_eq!(event.detail_type, "alert.raised");
        assert_eq!(event.at, raised_at);
        assert_eq!(event.detail["kind"], "processor_not_running");
        assert_eq!(event.detail["subject"], "processor");
        assert_eq!(event.detail["counts"]["minutes_since_run"], 10);
    }
}
