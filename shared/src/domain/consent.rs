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

/// The status a history leads to: its latest entry's, or opted in when there is none. Entries at
/// the same instant opt out (the safe reading), so the answer never depends on the order given.
pub fn current_status(history: &[ConsentEvidence]) -> ConsentStatus {
    history
        .iter()
        .max_by_key(|e| (e.at, e.status == ConsentStatus::OptedOut))
        .map_or(ConsentStatus::OptedIn, |e| e.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

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
    fn an_opt_out_and_an_opt_in_at_the_same_instant_opt_out_in_either_order() {
        // Found by `the_status_is_the_latest_entrys_whatever_the_order_given`: `max_by_key` took
        // the last of equal times, so the order the store returned them in decided.
        let both = [entry(ConsentStatus::OptedOut, 5), entry(ConsentStatus::OptedIn, 5)];
        assert_eq!(current_status(&both), ConsentStatus::OptedOut);
        let both = [entry(ConsentStatus::OptedIn, 5), entry(ConsentStatus::OptedOut, 5)];
        assert_eq!(current_status(&both), ConsentStatus::OptedOut);
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

    fn any_entry() -> impl Strategy<Value = ConsentEvidence> {
        (
            any::<bool>(),
            0i64..6,
            prop::sample::select(vec![
                ConsentChannel::Sms,
                ConsentChannel::Retell,
                ConsentChannel::ProviderError,
                ConsentChannel::Api,
            ]),
            prop::option::of("SM[0-9]{1,2}"),
        )
            .prop_map(|(out, min, channel, message_sid)| {
                let status = if out {
                    ConsentStatus::OptedOut
                } else {
                    ConsentStatus::OptedIn
                };
                ConsentEvidence {
                    channel,
                    message_sid,
                    ..entry(status, min)
                }
            })
    }

    proptest! {
        #[test]
        fn the_status_is_the_latest_entrys_whatever_the_order_given(
            history in prop::collection::vec(any_entry(), 0..8),
            rotate in any::<usize>(),
        ) {
            let mut reordered = history.clone();
            reordered.reverse();
            if !reordered.is_empty() {
                let len = reordered.len();
                reordered.rotate_left(rotate % len);
            }
            let status = current_status(&history);
            prop_assert_eq!(current_status(&reordered), status);
            match history.iter().map(|e| e.at).max() {
                None => prop_assert_eq!(status, ConsentStatus::OptedIn),
                Some(latest) => prop_assert!(history.iter().any(|e| e.at == latest && e.status == status)),
            }
        }

        #[test]
        fn two_entries_share_a_dedupe_key_exactly_when_they_are_the_same_event(a in any_entry(), b in any_entry()) {
            let same = match (&a.message_sid, &b.message_sid) {
                (Some(x), Some(y)) => x == y,
                (None, None) => a.at.timestamp_millis() == b.at.timestamp_millis() && a.channel == b.channel && a.status == b.status,
                _ => false,
            };
            prop_assert_eq!(a.dedupe_key() == b.dedupe_key(), same);
        }
    }
}
