//! Message statuses and their ranks: the rule that a message never moves backwards.
//!
//! Twilio does not guarantee callback order, and retries them, so a late `sent` may arrive after
//! `delivered`. Every status carries a rank; [`MessageStatus::transition`] accepts a change only if
//! it raises the rank. The few deliberate moves down (a retry re-queues an `undelivered` message,
//! an operator retries a `failed` one) go through [`MessageStatus::requeue`], never through callbacks.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a message is in its life (docs/design.md, "A message's life").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for its `send_at`.
    Scheduled,
    /// Accepted by us, waiting for a (next) provider attempt.
    Queued,
    /// Recorded before the provider is called; outcome of the attempt not yet known.
    Sending,
    /// Accepted by the provider (Twilio `queued`/`accepted`/`sending`/`sent`).
    Sent,
    /// The carrier reported it could not deliver (may be retried if the code allows).
    Undelivered,
    /// Could not be sent: permanent provider error, or attempts exhausted. Listed for an operator.
    Failed,
    /// The handset has it.
    Delivered,
    /// Held because the recipient's hourly limit was reached. Listed for an operator.
    RateLimited,
    /// Provider never confirmed a final status within its own window.
    Unknown,
    /// Canceled before it was handed to the provider.
    Canceled,
    /// Not sent because the recipient opted out.
    Suppressed,
}

/// A status change that the rank rule refuses (out of order or duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status cannot move from {from} to {to}")]
pub struct InvalidTransition {
    /// Current status.
    pub from: MessageStatus,
    /// Refused status.
    pub to: MessageStatus,
}

/// A status name we do not know (e.g. from a provider payload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message status")]
pub struct UnknownStatus;

impl MessageStatus {
    /// Every status, for exhaustive tests and listings.
    pub const ALL: [MessageStatus; 11] = [
        Self::Scheduled,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Undelivered,
        Self::Failed,
        Self::Delivered,
        Self::RateLimited,
        Self::Unknown,
        Self::Canceled,
        Self::Suppressed,
    ];

    /// The rank: a status may only be replaced by one of strictly higher rank.
    ///
    /// `undelivered` and `failed` share a rank so neither overwrites the other; `delivered` is
    /// above both (a late failure report never undoes a delivery receipt). Statuses that end a
    /// message without a provider send rank highest: nothing a callback says can revive them.
    pub fn rank(self) -> u8 {
        match self {
            Self::Scheduled => 0,
            Self::Queued | Self::RateLimited => 10,
            Self::Sending => 20,
            Self::Sent => 30,
            Self::Unknown => 35,
            Self::Undelivered | Self::Failed => 40,
            Self::Delivered => 50,
            Self::Canceled | Self::Suppressed => 100,
        }
    }

    /// Accept `next` only if it raises the rank.
    ///
    /// # Errors
    /// [`InvalidTransition`] when `next` does not rank above `self` (duplicate or out of order).
    pub fn transition(self, next: MessageStatus) -> Result<MessageStatus, InvalidTransition> {
        if next.rank() > self.rank() {
            Ok(next)
        } else {
            Err(InvalidTransition { from: self, to: next })
        }
    }

    /// Whether a fresh attempt may move this message back to `queued` (retry or operator action).
    pub fn can_requeue(self) -> bool {
        matches!(
            self,
            Self::Undelivered | Self::Failed | Self::RateLimited | Self::Unknown
        )
    }

    /// Not yet handed to the provider: it can still be canceled.
    pub fn is_cancelable(self) -> bool {
        matches!(self, Self::Scheduled | Self::Queued | Self::RateLimited)
    }

    /// Map a Twilio `MessageStatus` / `status` value onto ours. `None` for values that say
    /// nothing about an outbound message (`receiving`, `received`).
    pub fn from_twilio(value: &str) -> Option<MessageStatus> {
        Some(match value {
            "accepted" | "queued" | "sending" | "sent" | "scheduled" => Self::Sent,
            "delivered" | "read" | "partially_delivered" => Self::Delivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::RateLimited => "rate_limited",
            Self::Unknown => "unknown",
            Self::Canceled => "canceled",
            Self::Suppressed => "suppressed",
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or(UnknownStatus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn late_sent_never_overwrites_delivered() {
        assert!(MessageStatus::Delivered.transition(MessageStatus::Sent).is_err());
    }

    #[test]
    fn delivered_overrides_a_failure_report_but_not_the_reverse() {
        assert_eq!(
            MessageStatus::Undelivered.transition(MessageStatus::Delivered),
            Ok(MessageStatus::Delivered)
        );
        assert!(MessageStatus::Delivered.transition(MessageStatus::Undelivered).is_err());
        assert!(MessageStatus::Failed.transition(MessageStatus::Undelivered).is_err());
    }

    #[test]
    fn a_duplicate_status_is_refused() {
        for s in MessageStatus::ALL {
            assert!(s.transition(s).is_err(), "{s} -> {s} must be refused");
        }
    }

    #[test]
    fn the_forward_path_is_accepted_step_by_step() {
        let path = [
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Delivered,
        ];
        let mut cur = MessageStatus::Scheduled;
        for next in path {
            cur = cur.transition(next).expect("forward step");
        }
        assert_eq!(cur, MessageStatus::Delivered);
    }

    #[test]
    fn nothing_revives_a_canceled_or_suppressed_message() {
        for end in [MessageStatus::Canceled, MessageStatus::Suppressed] {
            for s in MessageStatus::ALL {
                assert!(end.transition(s).is_err());
            }
        }
    }

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse::<MessageStatus>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).expect("json"), format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn twilio_statuses_map_onto_ours() {
        assert_eq!(MessageStatus::from_twilio("queued"), Some(MessageStatus::Sent));
        assert_eq!(MessageStatus::from_twilio("delivered"), Some(MessageStatus::Delivered));
        assert_eq!(
            MessageStatus::from_twilio("undelivered"),
            Some(MessageStatus::Undelivered)
        );
        assert_eq!(MessageStatus::from_twilio("received"), None);
    }

    fn any_status() -> impl Strategy<Value = MessageStatus> {
        prop::sample::select(MessageStatus::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn callbacks_in_any_order_never_move_a_message_backwards(
            start in any_status(),
            events in prop::collection::vec(any_status(), 0..30),
        ) {
            let mut cur = start;
            for &next in &events {
                let before = cur;
                match cur.transition(next) {
                    Ok(s) => {
                        prop_assert_eq!(s, next);
                        prop_assert!(s.rank() > before.rank());
                        cur = s;
                    }
                    Err(e) => {
                        prop_assert_eq!(e, InvalidTransition { from: before, to: next });
                        prop_assert!(next.rank() <= before.rank());
                    }
                }
            }
            // Whatever the order, the message ends at the highest rank it was told about.
            let top = events.iter().map(|s| s.rank()).chain([start.rank()]).max().unwrap_or(0);
            prop_assert_eq!(cur.rank(), top);
        }

        #[test]
        fn status_names_and_twilio_values_parse_only_their_own(raw in prop_oneof![
            any::<String>(),
            prop::sample::select(vec![
                "accepted", "queued", "sending", "sent", "scheduled", "delivered", "read", "partially_delivered",
                "undelivered", "failed", "canceled", "receiving", "received", "rate_limited", "suppressed", "unknown",
            ]).prop_map(str::to_owned),
        ]) {
            match raw.parse::<MessageStatus>() {
                Ok(s) => prop_assert_eq!(s.as_str(), raw.as_str()),
                Err(_) => prop_assert!(MessageStatus::ALL.iter().all(|s| s.as_str() != raw)),
            }
            if let Some(s) = MessageStatus::from_twilio(&raw) {
                // A provider callback can only report what the provider does.
                prop_assert!(matches!(
                    s,
                    MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Undelivered | MessageStatus::Failed | MessageStatus::Canceled
                ));
            }
        }
    }
}
