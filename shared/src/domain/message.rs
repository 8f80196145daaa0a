//! The message record: one per message, from acceptance to handset delivery.
//!
//! Ids are ULIDs (`msg_` + 26 Crockford base-32 characters), so they sort by creation time.
//! The record carries its own status history (`events`) and an optimistic-concurrency
//! `version` that every store write checks, so two writers can never both win.

use super::{Encoding, MessageBody, MessageStatus, PhoneNumber};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Our id of a message: `msg_<ULID>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

/// An id that is not `msg_` followed by a ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a message id")]
pub struct InvalidMessageId;

impl MessageId {
    /// A new id whose ULID encodes `now` (so ids sort by creation time).
    pub fn generate(now: DateTime<Utc>) -> Self {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let ulid = ulid::Ulid::from_parts(ms, crate::domain::entropy::random::<u128>());
        Self(format!("msg_{ulid}"))
    }

    /// The id of a message that must exist at most once per `seed` (an agent's reply to one
    /// inbound turn): the ULID's time is `at`, its random part a hash of `seed`, so a redelivered
    /// job derives the same id and the store's conditional create refuses a second message.
    pub fn derived(at: DateTime<Utc>, seed: &str) -> Self {
        use sha2::Digest;
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let digest = sha2::Sha256::digest(seed.as_bytes());
        let mut low = [0u8; 16];
        low.copy_from_slice(&digest[..16]);
        let ulid = ulid::Ulid::from_parts(ms, u128::from_be_bytes(low));
        Self(format!("msg_{ulid}"))
    }

    /// Parse an id given by a caller or a callback URL.
    ///
    /// # Errors
    /// [`InvalidMessageId`] unless `msg_` + a valid ULID.
    pub fn parse(raw: &str) -> Result<Self, InvalidMessageId> {
        let ulid = raw.strip_prefix("msg_").ok_or(InvalidMessageId)?;
        ulid::Ulid::from_string(ulid).map_err(|_| InvalidMessageId)?;
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageId {
    type Error = InvalidMessageId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<MessageId> for String {
    fn from(value: MessageId) -> Self {
        value.0
    }
}
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The provider's id of a message (Twilio `SM…`/`MM…`, 34 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderSid(String);

/// A provider sid that is empty, too long, or has characters outside `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a provider message sid")]
pub struct InvalidProviderSid;

impl ProviderSid {
    /// Parse a sid from a provider response or callback.
    ///
    /// # Errors
    /// [`InvalidProviderSid`] for an empty, overlong (> 64) or non-alphanumeric value: it becomes
    /// part of a store key, so nothing else is let through.
    pub fn parse(raw: &str) -> Result<Self, InvalidProviderSid> {
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(InvalidProviderSid);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The sid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ProviderSid {
    type Error = InvalidProviderSid;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<ProviderSid> for String {
    fn from(value: ProviderSid) -> Self {
        value.0
    }
}
impl fmt::Display for ProviderSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link to the caller's own entity (e.g. a calendar event), used for cancel-by-ref.
///
/// Deserialising does not validate (stored records are read back as they are); every place that
/// takes a `Ref` from a caller checks it with [`Ref::validate`], so sends and cancels accept the
/// same refs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Entity type, e.g. `calendar_event`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Entity id.
    pub id: String,
}

/// Most characters a ref's `type` or `id` may have.
pub const MAX_REF_CHARS: usize = 256;

/// Why a ref was rejected. Never carries the ref itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// `type` or `id` is empty.
    #[error("`ref` needs a non-empty `type` and `id`")]
    Empty,
    /// `type` or `id` is over [`MAX_REF_CHARS`] characters.
    #[error("`ref` `type` and `id` may have at most 256 characters each")]
    TooLong,
    /// `type` or `id` contains a control character (they become part of store keys).
    #[error("`ref` `type` and `id` may not contain control characters")]
    ControlCharacter,
}

impl Ref {
    /// A validated ref.
    ///
    /// # Errors
    /// As [`Ref::validate`].
    pub fn parse(kind: impl Into<String>, id: impl Into<String>) -> Result<Self, RefError> {
        let r = Self {
            kind: kind.into(),
            id: id.into(),
        };
        r.validate()?;
        Ok(r)
    }

    /// Check a ref a caller gave: `type` and `id` each 1 to [`MAX_REF_CHARS`] characters, no
    /// control characters.
    ///
    /// # Errors
    /// [`RefError::Empty`], [`RefError::TooLong`] or [`RefError::ControlCharacter`].
    pub fn validate(&self) -> Result<(), RefError> {
        for part in [&self.kind, &self.id] {
            if part.is_empty() {
                return Err(RefError::Empty);
            }
            // Bytes bound characters from above: only long texts need counting.
            if part.len() > MAX_REF_CHARS && part.chars().count() > MAX_REF_CHARS {
                return Err(RefError::TooLong);
            }
            if part.chars().any(char::is_control) {
                return Err(RefError::ControlCharacter);
            }
        }
        Ok(())
    }
}

/// The provider's error for a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    /// Provider error code (Twilio's numeric code, e.g. 21211).
    pub code: u32,
    /// Human-readable text (never contains the full recipient number).
    pub message: String,
}

/// One entry of a message's history: a status reached, or (with `rescheduled`) a deferral of
/// its send time while the status stayed what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// The status reached (for a deferral: the status it stayed in).
    pub status: MessageStatus,
    /// When we recorded it.
    pub at: DateTime<Utc>,
    /// Provider error code that came with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// Set when this entry records a deferral rather than a status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduled: Option<Rescheduled>,
}

/// Why a message's send time was moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RescheduleReason {
    /// The time fell inside the quiet hours that apply to the message.
    QuietHours,
}

impl RescheduleReason {
    /// snake_case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuietHours => "quiet_hours",
        }
    }
}

/// A deferral: the send time was moved to `send_at` for `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rescheduled {
    /// Why.
    pub reason: RescheduleReason,
    /// The new send time.
    pub send_at: DateTime<Utc>,
}

/// The one record of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Our id.
    pub id: MessageId,
    /// Recipient.
    pub to: PhoneNumber,
    /// Sender: an E.164 number or a Messaging Service SID (`MG…`).
    pub from: String,
    /// The text.
    pub body: MessageBody,
    /// Current status.
    pub status: MessageStatus,
    /// Provider's last reported raw status (e.g. `queued`, `sent`, `delivered`).
    #[serde(default)]
    pub provider_status: Option<String>,
    /// Segments the body costs.
    pub segments: u32,
    /// Body encoding.
    pub encoding: Encoding,
    /// Provider id of the current attempt, once known.
    #[serde(default)]
    pub provider_sid: Option<ProviderSid>,
    /// Provider attempts made (an attempt counts from the moment it is recorded `sending`).
    pub attempts: u32,
    /// Last provider error.
    #[serde(default)]
    pub error: Option<MessageError>,
    /// When it is to be sent, if scheduled.
    #[serde(default)]
    pub send_at: Option<DateTime<Utc>>,
    /// The caller's time (its `send_at`, or the acceptance time of an immediate send), once a
    /// deferral moved `send_at`; the first deferral sets it and later ones keep it.
    #[serde(default)]
    pub original_send_at: Option<DateTime<Utc>>,
    /// When the current attempt was started (recorded `sending`), for reconciliation.
    #[serde(default)]
    pub attempt_started_at: Option<DateTime<Utc>>,
    /// When the processor should next look at it: the scheduled time, the next retry, the
    /// reconciliation deadline of a `sending` attempt, or the status-poll time of a `sent` one.
    /// `None` once nothing more is expected. Stores index it (the due index).
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    /// Whether it is on the failed list (failed or rate-limited, and not yet retried or removed
    /// by an operator). Stores index it.
    #[serde(default)]
    pub failed_listed: bool,
    /// Provider sids of earlier attempts: their late callbacks are recorded but change nothing.
    #[serde(default)]
    pub previous_sids: Vec<ProviderSid>,
    /// The batch it was accepted in, if any (batch counters are updated as it finishes).
    #[serde(default)]
    pub batch_id: Option<String>,
    /// Quiet hours that apply to this message when it fires (scheduled traffic).
    #[serde(default)]
    pub quiet_hours: Option<super::QuietHours>,
    /// The StatusCallback URL given to the provider (fixed at acceptance, reused by every attempt,
    /// so queue consumers without an HTTP request still sign up the right public URL).
    #[serde(default)]
    pub status_callback: Option<String>,
    /// Caller's entity link.
    #[serde(default, rename = "ref")]
    pub reference: Option<Ref>,
    /// Caller's metadata, returned as given.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Status history, oldest first.
    pub events: Vec<StatusEvent>,
    /// Optimistic-concurrency version: every successful store write increments it by one.
    pub version: u64,
}

impl Message {
    /// A new record for a message accepted now, in `status` (usually `sending` or `scheduled`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: MessageId,
        to: PhoneNumber,
        from: String,
        body: MessageBody,
        status: MessageStatus,
        reference: Option<Ref>,
        metadata: serde_json::Map<String, serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Self {
        let (encoding, segments): (Encoding, u32) = (body.encoding(), body.segments());
        Self {
            id,
            to,
            from,
            body,
            status,
            provider_status: None,
            segments,
            encoding,
            provider_sid: None,
            attempts: 0,
            error: None,
            send_at: None,
            original_send_at: None,
            attempt_started_at: None,
            due_at: None,
            failed_listed: false,
            previous_sids: Vec::new(),
            status_callback: None,
            quiet_hours: None,
            batch_id: None,
            reference,
            metadata,
            created_at: now,
            updated_at: now,
            events: vec![StatusEvent {
                status,
                at: now,
                code: None,
                rescheduled: None,
            }],
            version: 0,
        }
    }

    /// Move to `next` if the rank rule allows it, appending one history event.
    /// Returns whether anything changed (a refused move is not an error: callbacks arrive out of order).
    pub fn advance(&mut self, next: MessageStatus, code: Option<u32>, now: DateTime<Utc>) -> bool {
        match self.status.transition(next) {
            Ok(next) => {
                self.status = next;
                self.updated_at = now;
                self.events.push(StatusEvent {
                    status: next,
                    at: now,
                    code,
                    rescheduled: None,
                });
                true
            }
            Err(_) => false,
        }
    }

    /// Deliberately set a status outside the rank rule (a fresh attempt, an operator action),
    /// appending one history event.
    pub fn reset_to(&mut self, status: MessageStatus, now: DateTime<Utc>) {
        self.status = status;
        self.updated_at = now;
        self.events.push(StatusEvent {
            status,
            at: now,
            code: None,
            rescheduled: None,
        });
    }

    /// Move the send time to `to` for `reason`, visibly: the caller's time is kept as
    /// `original_send_at` (the current `send_at`, or `now` for a message that had none, i.e. an
    /// immediate send), `due_at` follows, `updated_at` is `now`, and one `rescheduled` entry
    /// is appended to the history. The status does not change.
    pub fn reschedule(&mut self, to: DateTime<Utc>, reason: RescheduleReason, now: DateTime<Utc>) {
        if self.original_send_at.is_none() {
            self.original_send_at = Some(self.send_at.unwrap_or(now));
        }
        self.send_at = Some(to);
        self.due_at = Some(to);
        self.updated_at = now;
        self.events.push(StatusEvent {
            status: self.status,
            at: now,
            code: None,
            rescheduled: Some(Rescheduled { reason, send_at: to }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn scheduled(send_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Message {
        let to = PhoneNumber::parse_e164("+14155550100").expect("number");
        let body = MessageBody::parse("hi".to_owned()).expect("body");
        let id = MessageId::generate(now);
        let mut m = Message::new(
            id,
            to,
            "+15005550006".into(),
            body,
            MessageStatus::Scheduled,
            None,
            Default::default(),
            now,
        );
        m.send_at = send_at;
        m
    }

    #[test]
    fn a_deferral_keeps_the_callers_time_moves_updated_at_and_is_one_history_entry() {
        let created = utc("2026-11-22T06:59:00Z");
        let asked = utc("2026-11-22T07:00:05Z");
        let mut m = scheduled(Some(asked), created);
        let (now, to) = (utc("2026-11-22T07:00:05Z"), utc("2026-11-22T13:00:00Z"));
        m.reschedule(to, RescheduleReason::QuietHours, now);
        assert_eq!(
            (m.send_at, m.due_at, m.original_send_at),
            (Some(to), Some(to), Some(asked))
        );
        assert_eq!((m.status, m.updated_at), (MessageStatus::Scheduled, now));
        let last = m.events.last().expect("event");
        assert_eq!(last.status, MessageStatus::Scheduled, "the status did not change");
        assert_eq!(last.at, now);
        assert_eq!(
            last.rescheduled,
            Some(Rescheduled {
                reason: RescheduleReason::QuietHours,
                send_at: to
            })
        );
        assert_eq!(m.events.len(), 2);

        // A second deferral keeps the caller's time, not the first deferral's.
        let later = utc("2026-11-23T13:00:00Z");
        m.reschedule(later, RescheduleReason::QuietHours, to);
        assert_eq!((m.send_at, m.original_send_at), (Some(later), Some(asked)));
    }

    #[test]
    fn deferring_an_immediate_send_keeps_the_acceptance_time_as_the_callers_time() {
        let now = utc("2026-11-22T07:00:00Z");
        let mut m = scheduled(None, now);
        m.reschedule(utc("2026-11-22T13:00:00Z"), RescheduleReason::QuietHours, now);
        assert_eq!(m.original_send_at, Some(now));
    }

    #[test]
    fn a_history_entry_without_a_deferral_reads_and_writes_as_before() {
        let json = r#"{"status":"sent","at":"2026-11-22T07:00:00Z"}"#;
        let e: StatusEvent = serde_json::from_str(json).expect("an older entry reads back");
        assert_eq!(e.rescheduled, None);
        assert!(!serde_json::to_string(&e).expect("json").contains("rescheduled"));
    }

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let t1 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let t2 = t1 + chrono::Duration::milliseconds(1);
        let a = MessageId::generate(t1);
        let b = MessageId::generate(t2);
        assert!(a < b);
        assert_eq!(MessageId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn ids_without_the_prefix_or_with_junk_are_rejected() {
        assert!(MessageId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").is_err());
        assert!(MessageId::parse("msg_not-a-ulid").is_err());
        assert!(MessageId::parse("msg_").is_err());
    }

    fn text(n: usize) -> String {
        "é".repeat(n)
    }

    #[test]
    fn a_ref_of_up_to_256_characters_each_is_accepted() {
        assert!(Ref::parse("calendar_event", "evt_123").is_ok());
        assert!(Ref::parse(text(256), text(256)).is_ok());
        assert!(Ref::parse("a", "b").is_ok());
    }

    #[test]
    fn a_ref_over_256_characters_is_rejected_whichever_part() {
        assert_eq!(Ref::parse("job", "x".repeat(257)), Err(RefError::TooLong));
        assert_eq!(Ref::parse("job", "x".repeat(200_000)), Err(RefError::TooLong));
        assert_eq!(Ref::parse(text(257), "evt"), Err(RefError::TooLong));
    }

    #[test]
    fn a_ref_with_an_empty_part_is_rejected() {
        assert_eq!(Ref::parse("", "evt"), Err(RefError::Empty));
        assert_eq!(Ref::parse("job", ""), Err(RefError::Empty));
    }

    #[test]
    fn a_ref_with_a_control_character_is_rejected() {
        // U+001F is the separator of the canceled-ref key: `a\u{1f}b` + `c` must not alias `a` + `b\u{1f}c`.
        assert_eq!(Ref::parse("a\u{1f}b", "c"), Err(RefError::ControlCharacter));
        assert_eq!(Ref::parse("job", "evt\u{0}"), Err(RefError::ControlCharacter));
    }

    #[test]
    fn deserialising_a_ref_keeps_it_as_stored_and_validate_judges_it() {
        let long = format!(r#"{{"type": "job", "id": "{}"}}"#, "x".repeat(300));
        let r: Ref = serde_json::from_str(&long).expect("any stored ref reads back");
        assert_eq!(r.validate(), Err(RefError::TooLong));
    }

    #[test]
    fn provider_sids_with_key_separators_are_rejected() {
        assert!(ProviderSid::parse("SM1342fe1b2c904d1ab04f0fc7a58abca9").is_ok());
        assert!(ProviderSid::parse("SM#1").is_err());
        assert!(ProviderSid::parse("").is_err());
    }

    proptest! {
        #[test]
        fn validate_accepts_exactly_the_non_empty_control_free_parts_up_to_256_characters(
            kind in "\\PC{0,300}|[a-z]{250,260}",
            id in "\\PC{0,300}|[\\x00-\\x7f]{0,10}",
        ) {
            let ok = |p: &str| !p.is_empty() && p.chars().count() <= MAX_REF_CHARS && !p.chars().any(char::is_control);
            let r = Ref { kind: kind.clone(), id: id.clone() };
            prop_assert_eq!(r.validate().is_ok(), ok(&kind) && ok(&id));
            prop_assert_eq!(Ref::parse(kind, id).is_ok(), r.validate().is_ok());
        }
    }
}
