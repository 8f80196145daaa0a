//! `SlackAlerter`: the [`Alerter`] that posts to a Slack incoming webhook, as a Block Kit message
//! (header, summary, counts as fields, subject and time as context) with a plain `text` fallback.
//!
//! The webhook URL is a secret (anyone holding it can post to the channel): it must never reach a
//! log line or an error. reqwest errors are stripped of their URL (`without_url`) before they
//! become the source of an [`AlertError`]. An alert carries counts, never phone numbers or
//! message bodies, and this adapter adds none.

use crate::ports::{Alert, AlertError, AlertKind, Alerter};
use anyhow::anyhow;
use async_trait::async_trait;
use chrono::SecondsFormat;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;

/// Default total time for one webhook request (connect, send, response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most fields Slack accepts in one `section` block; more counts go into further sections.
const MAX_FIELDS_PER_SECTION: usize = 10;

/// Longest `text` Slack accepts in a `section` (3000) and in a field (2000); header text (150).
const MAX_SECTION_TEXT: usize = 3000;
const MAX_FIELD_TEXT: usize = 2000;
const MAX_HEADER_TEXT: usize = 150;

/// Most characters of Slack's error answer kept in an [`AlertError`] (they are short codes such as
/// `invalid_payload` or `no_service`).
const MAX_ERROR_BODY: usize = 200;

/// [`Alerter`] backed by a Slack incoming webhook.
#[derive(Debug, Clone)]
pub struct SlackAlerter {
    webhook_url: SecretString,
    http: reqwest::Client,
    timeout: Duration,
}

impl SlackAlerter {
    /// An alerter posting to `webhook_url` (`https://hooks.slack.com/services/…`) through `http`,
    /// with a total timeout of [`DEFAULT_TIMEOUT`] per alert.
    pub fn new(webhook_url: SecretString, http: reqwest::Client) -> Self {
        Self {
            webhook_url,
            http,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Use `timeout` as the total time allowed for each request instead of [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Alerter for SlackAlerter {
    /// # Errors
    /// [`AlertError`] when the request fails or times out, or Slack answers anything but
    /// `200 ok` (e.g. `400 invalid_payload`, `404 no_service`, a 5xx).
    async fn raise(&self, alert: &Alert) -> Result<(), AlertError> {
        let payload = message(alert);
        let resp = self
            .http
            .post(self.webhook_url.expose_secret())
            .json(&payload)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport_error(e, self.timeout))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| transport_error(e, self.timeout))?;
        if status != reqwest::StatusCode::OK || body.trim() != "ok" {
            return Err(AlertError(anyhow!(
                "Slack webhook answered {status}: {:?}",
                truncate(body.trim(), MAX_ERROR_BODY)
            )));
        }
        tracing::debug!(kind = alert.kind.as_str(), subject = %alert.subject, "alert posted to Slack");
        Ok(())
    }
}

/// A request failure without the webhook URL reqwest would otherwise put in its message.
fn transport_error(err: reqwest::Error, timeout: Duration) -> AlertError {
    let what = if err.is_timeout() {
        format!("Slack webhook did not answer within {timeout:?}")
    } else {
        "Slack webhook request failed".to_owned()
    };
    AlertError(anyhow::Error::new(err.without_url()).context(what))
}

/// The alert kind in words, for the header.
fn kind_title(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::BatchFailureRate => "Batch failure rate over threshold",
        AlertKind::ConsecutiveSendFailures => "Consecutive send failures",
        AlertKind::MessagesFailed => "Messages failed",
        AlertKind::DeadLetter => "Retry jobs dead-lettered",
        AlertKind::ProcessorNotRunning => "Processor not running",
        AlertKind::CallbacksMissing => "Delivery callbacks missing",
        AlertKind::ConversationEscalated => "Conversation needs a person",
    }
}

/// The webhook payload: `text` is the notification/fallback line, `blocks` the rendered message.
fn message(alert: &Alert) -> Value {
    let title = kind_title(alert.kind);
    let summary = escape(&alert.summary);
    let subject = escape(&alert.subject);
    let raised_at = alert.raised_at.to_rfc3339_opts(SecondsFormat::Secs, true);

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(title, MAX_HEADER_TEXT), "emoji": false},
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&summary, MAX_SECTION_TEXT)},
        }),
    ];
    let fields: Vec<Value> = alert
        .counts
        .iter()
        .map(|(name, value)| {
            let text = format!("*{}*\n{}", escape(name), escape(&display_value(value)));
            json!({"type": "mrkdwn", "text": truncate(&text, MAX_FIELD_TEXT)})
        })
        .collect();
    for chunk in fields.chunks(MAX_FIELDS_PER_SECTION) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": format!("*Subject:* {subject}")},
            {"type": "mrkdwn", "text": format!("*Raised:* {raised_at}")},
        ],
    }));
    json!({
        "text": truncate(&format!("{title} ({subject}): {summary}"), MAX_SECTION_TEXT),
        "blocks": blocks,
    })
}

/// A count as a person reads it: strings without quotes, a breakdown (an object, e.g. failures
/// by error code) as `key: value` pairs, everything else as JSON.
fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", display_value(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters (links, mentions): escape them so
/// a summary can neither break the formatting nor ping a channel.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters (not bytes), ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn alert(counts: serde_json::Map<String, Value>) -> Alert {
        Alert {
            kind: AlertKind::BatchFailureRate,
            subject: "batch_01J0000000000000000000000X".to_owned(),
            summary: "12 of 40 messages failed (30% > 10%)".to_owned(),
            counts,
            raised_at: Utc
                .with_ymd_and_hms(2024, 5, 1, 12, 30, 0)
                .single()
                .expect("valid time"),
        }
    }

    fn counts(pairs: &[(&str, Value)]) -> serde_json::Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn message_has_header_summary_fields_and_context() {
        let msg = message(&alert(counts(&[("failed", json!(12)), ("total", json!(40))])));
        let blocks = msg["blocks"].as_array().expect("blocks");
        let types: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
        assert_eq!(types, ["header", "section", "section", "context"]);
        assert_eq!(blocks[0]["text"]["text"], "Batch failure rate over threshold");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        assert_eq!(blocks[2]["fields"][0]["text"], "*failed*\n12");
        assert_eq!(blocks[2]["fields"][1]["text"], "*total*\n40");
        assert_eq!(blocks[3]["elements"][1]["text"], "*Raised:* 2024-05-01T12:30:00Z");
        assert_eq!(
            msg["text"],
            "Batch failure rate over threshold (batch_01J0000000000000000000000X): 12 of 40 messages failed (30% &gt; 10%)"
        );
    }

    #[test]
    fn a_breakdown_reads_as_pairs() {
        let msg = message(&alert(counts(&[("failed_by_code", json!({"21211": 6, "30007": 1}))])));
        assert_eq!(
            msg["blocks"][2]["fields"][0]["text"],
            "*failed_by_code*\n21211: 6, 30007: 1"
        );
    }

    #[test]
    fn the_titles_say_what_happened() {
        assert_eq!(kind_title(AlertKind::MessagesFailed), "Messages failed");
        assert!(!kind_title(AlertKind::MessagesFailed).contains("dead"));
        assert_eq!(kind_title(AlertKind::DeadLetter), "Retry jobs dead-lettered");
    }

    #[test]
    fn no_counts_means_no_fields_section() {
        let msg = message(&alert(serde_json::Map::new()));
        let types: Vec<&str> = msg["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["type"].as_str())
            .collect();
        assert_eq!(types, ["header", "section", "context"]);
    }

    #[test]
    fn more_than_ten_counts_are_split_over_sections() {
        let many: Vec<(String, Value)> = (0..13).map(|i| (format!("c{i:02}"), json!(i))).collect();
        let msg = message(&alert(many.into_iter().collect()));
        let blocks = msg["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[2]["fields"].as_array().map(Vec::len), Some(10));
        assert_eq!(blocks[3]["fields"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn mrkdwn_control_characters_are_escaped() {
        let mut a = alert(counts(&[("note", json!("<!channel>"))]));
        a.summary = "<!here> & <https://evil|click>".to_owned();
        let msg = message(&a);
        let text = msg.to_string();
        assert!(!text.contains("<!"), "unescaped mention in {text}");
        assert_eq!(
            msg["blocks"][1]["text"]["text"],
            "&lt;!here&gt; &amp; &lt;https://evil|click&gt;"
        );
        assert_eq!(msg["blocks"][2]["fields"][0]["text"], "*note*\n&lt;!channel&gt;");
    }

    #[test]
    fn every_kind_has_a_title_that_fits_a_header() {
        for kind in [
            AlertKind::BatchFailureRate,
            AlertKind::ConsecutiveSendFailures,
            AlertKind::MessagesFailed,
            AlertKind::DeadLetter,
            AlertKind::ProcessorNotRunning,
            AlertKind::CallbacksMissing,
        ] {
            let title = kind_title(kind);
            assert!(!title.is_empty() && title.len() <= MAX_HEADER_TEXT);
        }
    }

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
    }

    #[test]
    fn debug_output_does_not_show_the_webhook_url() {
        let alerter = SlackAlerter::new(
            SecretString::from("https://hooks.slack.com/services/T000/B000/XXXX"),
            crate::wiring::plain_http_client(),
        );
        assert!(!format!("{alerter:?}").contains("XXXX"));
    }
}
