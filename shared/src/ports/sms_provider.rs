//! The SMS provider port: create a message, fetch its state. Twilio or the simulator stand behind it.

use crate::domain::{MessageBody, PhoneNumber, ProviderSid};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A phone number (Twilio form field `From`).
    Number(PhoneNumber),
    /// A Messaging Service (`MG…`, Twilio form field `MessagingServiceSid`).
    MessagingService(String),
}

impl Sender {
    /// Parse a configured or requested sender: `MG…` is a Messaging Service, anything else must be E.164.
    ///
    /// # Errors
    /// The phone-number error when it is neither.
    pub fn parse(raw: &str) -> Result<Self, crate::domain::PhoneNumberError> {
        if raw.starts_with("MG") && raw.len() == 34 && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self::MessagingService(raw.to_owned()))
        } else {
            PhoneNumber::parse_e164(raw).map(Self::Number)
        }
    }

    /// The sender as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Number(n) => n.as_str(),
            Self::MessagingService(s) => s,
        }
    }
}

/// One create-message request.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    /// Recipient.
    pub to: PhoneNumber,
    /// Sender.
    pub from: Sender,
    /// Text.
    pub body: MessageBody,
    /// Where the provider posts status callbacks (carries our message id in its query).
    pub status_callback: String,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderAccepted {
    /// Provider's id.
    pub sid: ProviderSid,
    /// Provider's raw initial status (`queued`, `accepted`, …).
    pub status: String,
    /// Segments reported by the provider, if any.
    pub segments: Option<u32>,
}

/// The provider's view of one message (fetch or list).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderMessage {
    /// Provider's id.
    pub sid: ProviderSid,
    /// Recipient as the provider reports it.
    pub to: String,
    /// Sender as the provider reports it.
    pub from: String,
    /// Text.
    pub body: String,
    /// Raw status.
    pub status: String,
    /// Error code for failed/undelivered.
    pub error_code: Option<u32>,
    /// Error text.
    pub error_message: Option<String>,
    /// Creation time at the provider.
    pub date_created: Option<DateTime<Utc>>,
}

/// Why a provider call failed, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A permanent refusal (invalid number, opted out, not permitted …): never retried.
    #[error("provider rejected the message (code {code})")]
    Rejected {
        /// Provider error code.
        code: u32,
        /// Provider's message.
        message: String,
    },
    /// Too many requests (HTTP 429 / 20429): the request was not processed; safe to retry.
    #[error("provider rate limited the request")]
    RateLimited {
        /// Delay the provider asked for, if it said.
        retry_after: Option<Duration>,
    },
    /// A temporary failure (network, timeout, 5xx, queue overflow). `maybe_sent` is true when the
    /// request may have reached the provider (timeout, 5xx): reconcile before resending.
    #[error("temporary provider failure: {reason}")]
    Transient {
        /// Provider error code, if one came back.
        code: Option<u32>,
        /// What happened (no phone numbers).
        reason: String,
        /// Whether the provider may have processed the request anyway.
        maybe_sent: bool,
    },
    /// The provider does not know the message (fetch of an unknown sid).
    #[error("provider has no such message")]
    NotFound,
    /// Something we did not expect (unparseable response, bad credentials …).
    #[error("unexpected provider failure")]
    Unexpected(#[source] anyhow::Error),
}

/// Provider refusals that lie with the sender, not the recipient: 21606 and 21212 (the From
/// number cannot send / is invalid), 30007 (carrier filtering of the sender's traffic) and 30034
/// (the sender's A2P 10DLC registration).
const SENDER_SIDE_CODES: [u32; 4] = [21606, 21212, 30007, 30034];

impl ProviderError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }

    /// Whether the failure lies with the sender or the system rather than with one recipient
    /// or throttling: a [`SENDER_SIDE_CODES`] refusal, a provider outage, timeout or network
    /// failure (`Transient`), bad credentials or an unreadable answer (`Unexpected`). Only these
    /// count toward a sender's consecutive-failure alert; 21211 (invalid To) and 21610 (opted
    /// out) do not.
    pub fn is_sender_side(&self) -> bool {
        match self {
            Self::Rejected { code, .. } => SENDER_SIDE_CODES.contains(code),
            Self::Transient { .. } | Self::Unexpected(_) => true,
            Self::RateLimited { .. } | Self::NotFound => false,
        }
    }
}

/// Sends SMS and reports on them.
#[async_trait]
pub trait SmsProvider: Send + Sync {
    /// Create (send) one message.
    ///
    /// # Errors
    /// A classified [`ProviderError`].
    async fn send(&self, sms: &OutboundSms) -> Result<ProviderAccepted, ProviderError>;

    /// Fetch one message by sid.
    ///
    /// # Errors
    /// `NotFound` for an unknown sid, otherwise a classified [`ProviderError`].
    async fn fetch(&self, sid: &ProviderSid) -> Result<ProviderMessage, ProviderError>;

    /// Messages sent to `to` from `from` created no earlier than one minute before `since`
    /// (messages without a readable creation date are kept), newest first, at most `limit`, for
    /// reconciling an attempt whose outcome we never recorded.
    ///
    /// # Errors
    /// A classified [`ProviderError`].
    async fn list_sent(
        &self,
        to: &PhoneNumber,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ProviderMessage>, ProviderError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rejected(code: u32) -> ProviderError {
        ProviderError::Rejected {
            code,
            message: String::new(),
        }
    }

    #[test]
    fn recipient_side_refusals_are_not_the_senders_fault() {
        assert!(!rejected(21211).is_sender_side());
        assert!(!rejected(21610).is_sender_side());
        assert!(!ProviderError::RateLimited { retry_after: None }.is_sender_side());
    }

    #[test]
    fn sender_and_system_failures_count_against_the_sender() {
        for code in [21606, 21212, 30007, 30034] {
            assert!(rejected(code).is_sender_side(), "{code}");
        }
        let timeout = ProviderError::Transient {
            code: None,
            reason: "timeout".to_owned(),
            maybe_sent: true,
        };
        assert!(timeout.is_sender_side());
        let server = ProviderError::Transient {
            code: Some(20500),
            reason: "500".to_owned(),
            maybe_sent: true,
        };
        assert!(server.is_sender_side());
        assert!(ProviderError::Unexpected(anyhow::anyhow!("authentication failed")).is_sender_side());
    }

    proptest! {
        #[test]
        fn a_sender_is_a_messaging_service_sid_or_an_e164_number_and_keeps_its_text(raw in prop_oneof![
            any::<String>(),
            "MG[0-9a-fA-F]{30,34}",
            "MG[0-9a-f]{31}[^0-9a-zA-Z]",
            "\\+1[2-9][0-9]{2}[2-9][0-9]{6}",
            "\\+?[0-9 ]{8,16}",
        ]) {
            let service = raw.len() == 34 && raw.starts_with("MG") && raw.bytes().all(|b| b.is_ascii_alphanumeric());
            match Sender::parse(&raw) {
                Ok(Sender::MessagingService(s)) => {
                    prop_assert!(service);
                    prop_assert_eq!(s, raw);
                }
                Ok(Sender::Number(n)) => {
                    prop_assert!(!service);
                    prop_assert_eq!(n.as_str(), raw.as_str());
                }
                Err(e) => {
                    prop_assert!(!service);
                    prop_assert_eq!(Err(e), PhoneNumber::parse_e164(&raw).map(|_| ()));
                }
            }
        }
    }
}
