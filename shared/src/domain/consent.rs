//! Consent evidence: every opt-out and opt-in of a phone, with what proves it (docs/api.md
//! `GET /v1/consent/{phone}`). A STOP typed on a handset, Twilio's 21610 on a send, a START and
//! the registry API each add one entry; the latest entry decides the status. Pure.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a phone may be texted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// May be texted (the default for a phone with no history).
    OptedIn,
    /// Must not be texted.
    OptedOut,
}

/// Where a consent change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentChannel {
    /// A keyword texted to a Twilio number (inbound webhook).
    Sms,
    /// A keyword seen by Retell on a Retell number.
    Retell,
    /// Twilio refused a send with 21610 (the recipient had replied STOP).
    ProviderError,
    /// The opt-out registry API / an operator.
    Api,
}

/// One entry of a phone's consent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvidence {
    /// The status this entry sets.
    pub status: ConsentStatus,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The keyword as texted (`STOP`, `START`, …), when a keyword caused it.
    pub keyword: Option<String>,
    /// Where it came from.
    pub channel: ConsentChannel,
    /// The provider's message id that carries the proof (`MessageSid` of the STOP, or of the
    /// refused send for a 21610).
    pub message_sid: Option<String>,
}

impl ConsentEvidence {
    /// What makes two entries the same (a redelivered webhook): the provider's message id when
    /// there is one, else the time (milliseconds), channel and status.
    pub fn dedupe_key(&self) -> String {
        match &self.message_sid {
            Some(sid) => format!("sid:{sid}"),
            None => format!(
                "at:{}:{}:{}",
                self.at.timestamp_millis(),
                serde_json::to_value(self.channel)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                serde_json::to_value(self.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// The status a history leads to: its latest entry's, or opted in when there is none.
pub fn current_status(history: &[ConsentEvidence]) -> ConsentStatus {
    history
        .iter()
        .max_by_key(|e| e.at)
        .map_or(ConsentStatus::OptedIn, |e| e.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(status: ConsentStatus, min: i64) -> ConsentEvidence {
        ConsentEvidence {
            status,
            at: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).single().unwrap_or_default()
                + chrono::Duration::minutes(min),
            keyword: None,
            channel: ConsentChannel::Sms,
            message_sid: None,
        }
    }

    #[test]
    fn entries_with_a_sid_are_the_same_whatever_their_time() {
        let mut a = entry(ConsentStatus::OptedOut, 1);
        a.message_sid = Some("SM1".to_owned());
        let mut b = entry(ConsentStatus::OptedOut, 9);
        b.message_sid = Some("SM1".to_owned());
        assert_eq!(a.dedupe_key(), b.dedupe_key());
        assert_ne!(
            entry(ConsentStatus::OptedOut, 1).dedupe_key(),
            entry(ConsentStatus::OptedIn, 1).dedupe_key()
        );
        assert_ne!(
            entry(ConsentStatus::OptedOut, 1).dedupe_key(),
            entry(ConsentStatus::OptedOut, 2).dedupe_key()
        );
    }

    #[test]
    fn no_history_means_opted_in() {
        assert_eq!(current_status(&[]), ConsentStatus::OptedIn);
    }

    #[test]
    fn the_latest_entry_wins_whatever_the_order_given() {
        let history = [entry(ConsentStatus::OptedIn, 10), entry(ConsentStatus::OptedOut, 1)];
        assert_eq!(current_status(&history), ConsentStatus::OptedIn);
        let history = [entry(ConsentStatus::OptedIn, 1), entry(ConsentStatus::OptedOut, 10)];
        assert_eq!(current_status(&history), ConsentStatus::OptedOut);
    }
}
