//! Conversations: one per (business number, lead phone) at a time, holding both directions in
//! order, and ending with one of six outcomes (docs/api.md "Campaigns, leads, conversations").
//!
//! The state machine is like `MessageStatus::transition`: `open` ⇄ `needs_human` → `ended`, and
//! an ended conversation stays ended (a later text opens a new one). Only a person may correct
//! the outcome of an ended conversation. Pure: times are passed in.

use super::{MessageId, PhoneNumber};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Our id of a conversation: `conv_<ULID>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConversationId(String);

/// An id that is not `conv_` followed by a ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a conversation id")]
pub struct InvalidConversationId;

impl ConversationId {
    /// A new id whose ULID encodes `now`.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        Self(format!(
            "conv_{}",
            ulid::Ulid::from_parts(ms, crate::domain::entropy::random::<u128>())
        ))
    }

    /// Parse an id given by a caller.
    ///
    /// # Errors
    /// [`InvalidConversationId`] unless `conv_` + a valid ULID.
    pub fn parse(raw: &str) -> Result<Self, InvalidConversationId> {
        let ulid = raw.strip_prefix("conv_").ok_or(InvalidConversationId)?;
        ulid::Ulid::from_string(ulid).map_err(|_| InvalidConversationId)?;
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConversationId {
    type Error = InvalidConversationId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<ConversationId> for String {
    fn from(value: ConversationId) -> Self {
        value.0
    }
}
impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Replies are expected; the agent (if any) answers.
    Open,
    /// The agent stopped; a person must answer.
    NeedsHuman,
    /// Over, with an outcome.
    Ended,
}

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An appointment was booked.
    Success,
    /// A lead worth following up.
    Qualified,
    /// Not a fit.
    Unqualified,
    /// Handed to a person.
    Escalated,
    /// The lead never answered.
    NoResponse,
    /// Opted out, wrong number, spam.
    Discarded,
}

impl Outcome {
    /// Every outcome, in api.md order.
    pub const ALL: [Self; 6] = [
        Self::Success,
        Self::Qualified,
        Self::Unqualified,
        Self::Escalated,
        Self::NoResponse,
        Self::Discarded,
    ];

    /// The wire name (`no_response`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Qualified => "qualified",
            Self::Unqualified => "unqualified",
            Self::Escalated => "escalated",
            Self::NoResponse => "no_response",
            Self::Discarded => "discarded",
        }
    }
}

/// Not one of the six outcome names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outcome must be one of success, qualified, unqualified, escalated, no_response, discarded")]
pub struct InvalidOutcome;

impl std::str::FromStr for Outcome {
    type Err = InvalidOutcome;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|o| o.as_str() == s).ok_or(InvalidOutcome)
    }
}

impl ConversationStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::NeedsHuman => "needs_human",
            Self::Ended => "ended",
        }
    }
}

/// Not one of the three status names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be one of open, needs_human, ended")]
pub struct InvalidConversationStatus;

impl std::str::FromStr for ConversationStatus {
    type Err = InvalidConversationStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Open, Self::NeedsHuman, Self::Ended]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or(InvalidConversationStatus)
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the lead.
    Inbound,
    /// To the lead.
    Outbound,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// Which way it went.
    pub direction: Direction,
    /// The text (inbound text as received; outbound as sent).
    pub body: String,
    /// When it was received or accepted for sending.
    pub at: DateTime<Utc>,
    /// Our message id (outbound, and inbound messages we stored), if any.
    pub message_id: Option<MessageId>,
    /// The provider's id (Twilio `MessageSid`, Retell `message_id`): turns are deduplicated on it.
    pub provider_ref: Option<String>,
}

/// An appointment the agent booked (`book_appointment`): the business's calendar hears of it
/// through `appointment.booked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// When it starts, RFC 3339 with the lead's offset, as the model gave it (validated).
    pub start: String,
    /// How long, in minutes.
    pub duration_minutes: u32,
    /// Anything the lead asked to note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// When it was booked.
    pub booked_at: DateTime<Utc>,
}

/// A conversation record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The lead's phone.
    pub phone: PhoneNumber,
    /// Our number the lead talks to.
    pub business_number: PhoneNumber,
    /// The campaign that started it, if any.
    pub campaign_id: Option<String>,
    /// Where it stands.
    pub status: ConversationStatus,
    /// How it ended (set when `status` is `ended`, and `escalated` while it `needs_human` after an
    /// escalation).
    pub outcome: Option<Outcome>,
    /// Why, in words.
    pub outcome_reason: Option<String>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Both directions, in order.
    pub turns: Vec<Turn>,
    /// The appointment booked in it, if any (stores keep the whole record as one document, so
    /// older records without it read as `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<Appointment>,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, checked by every store write.
    pub version: u64,
}

/// A change the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    /// The conversation has ended; only a person may set its outcome again.
    #[error("the conversation has ended")]
    Ended,
}

impl Conversation {
    /// A new open conversation of `phone` with `business_number`.
    pub fn open(
        phone: PhoneNumber,
        business_number: PhoneNumber,
        campaign_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: ConversationId::generate(now),
            phone,
            business_number,
            campaign_id,
            status: ConversationStatus::Open,
            outcome: None,
            outcome_reason: None,
            ended_at: None,
            turns: Vec::new(),
            appointment: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether it has not ended.
    pub fn is_open(&self) -> bool {
        self.status != ConversationStatus::Ended
    }

    /// Append a turn unless one with the same `provider_ref` (or the same outbound message id) is
    /// there already. Returns whether it was added. An ended conversation takes no new turns.
    ///
    /// # Errors
    /// [`ConversationError::Ended`].
    pub fn append(&mut self, turn: Turn) -> Result<bool, ConversationError> {
        if !self.is_open() {
            return Err(ConversationError::Ended);
        }
        let duplicate = self.turns.iter().any(|t| {
            (turn.provider_ref.is_some() && t.provider_ref == turn.provider_ref)
                || (turn.message_id.is_some() && t.message_id == turn.message_id && t.direction == turn.direction)
        });
        if duplicate {
            return Ok(false);
        }
        self.updated_at = self.updated_at.max(turn.at);
        // Keep turns in time order even when a late event carries an earlier time.
        let at = self.turns.partition_point(|t| t.at <= turn.at);
        self.turns.insert(at, turn);
        Ok(true)
    }

    /// The agent stops; a person must answer.
    ///
    /// # Errors
    /// [`ConversationError::Ended`].
    pub fn hand_to_human(&mut self, now: DateTime<Utc>) -> Result<(), ConversationError> {
        if !self.is_open() {
            return Err(ConversationError::Ended);
        }
        self.status = ConversationStatus::NeedsHuman;
        self.updated_at = now;
        Ok(())
    }

    /// The lead asked for a person or the agent called `escalate_to_human`: the agent stops
    /// (`needs_human`) and the outcome reads `escalated` until a person ends or corrects it.
    /// Returns whether anything changed (escalating twice changes nothing).
    ///
    /// # Errors
    /// [`ConversationError::Ended`].
    pub fn escalate(&mut self, reason: impl Into<String>, now: DateTime<Utc>) -> Result<bool, ConversationError> {
        if !self.is_open() {
            return Err(ConversationError::Ended);
        }
        if self.status == ConversationStatus::NeedsHuman && self.outcome == Some(Outcome::Escalated) {
            return Ok(false);
        }
        self.status = ConversationStatus::NeedsHuman;
        self.outcome = Some(Outcome::Escalated);
        self.outcome_reason = Some(reason.into());
        self.updated_at = now;
        Ok(true)
    }

    /// End with `outcome`. Ending is sticky: an ended conversation refuses (use
    /// [`Conversation::correct_outcome`] for a person's correction).
    ///
    /// # Errors
    /// [`ConversationError::Ended`].
    pub fn end(
        &mut self,
        outcome: Outcome,
        reason: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), ConversationError> {
        if !self.is_open() {
            return Err(ConversationError::Ended);
        }
        self.correct_outcome(outcome, reason, now);
        Ok(())
    }

    /// A person sets or corrects the outcome; the conversation is ended either way.
    pub fn correct_outcome(&mut self, outcome: Outcome, reason: impl Into<String>, now: DateTime<Utc>) {
        self.status = ConversationStatus::Ended;
        self.outcome = Some(outcome);
        self.outcome_reason = Some(reason.into());
        self.ended_at.get_or_insert(now);
        self.updated_at = now;
    }

    /// When the lead last wrote, if ever.
    pub fn last_inbound_at(&self) -> Option<DateTime<Utc>> {
        self.turns
            .iter()
            .rev()
            .find(|t| t.direction == Direction::Inbound)
            .map(|t| t.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Region;
    use chrono::TimeZone;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).single().unwrap_or_default() + chrono::Duration::minutes(min)
    }

    fn convo() -> Conversation {
        let phone = PhoneNumber::parse("+14155550100", Region::US).unwrap_or_else(|e| panic!("{e}"));
        let ours = PhoneNumber::parse("+14155550199", Region::US).unwrap_or_else(|e| panic!("{e}"));
        Conversation::open(phone, ours, Some("roof-leads".to_owned()), at(0))
    }

    fn inbound(body: &str, min: i64, sid: &str) -> Turn {
        Turn {
            direction: Direction::Inbound,
            body: body.to_owned(),
            at: at(min),
            message_id: None,
            provider_ref: Some(sid.to_owned()),
        }
    }

    #[test]
    fn turns_are_kept_in_time_order_and_deduplicated_by_provider_ref() {
        let mut c = convo();
        assert_eq!(c.append(inbound("second", 5, "SM2")), Ok(true));
        assert_eq!(c.append(inbound("first", 1, "SM1")), Ok(true));
        assert_eq!(c.append(inbound("second again", 9, "SM2")), Ok(false));
        let bodies: Vec<&str> = c.turns.iter().map(|t| t.body.as_str()).collect();
        assert_eq!(bodies, ["first", "second"]);
        assert_eq!(c.last_inbound_at(), Some(at(5)));
    }

    #[test]
    fn ending_is_sticky_and_refuses_new_turns() {
        let mut c = convo();
        assert_eq!(c.end(Outcome::Discarded, "opted out (STOP)", at(3)), Ok(()));
        assert_eq!(c.status, ConversationStatus::Ended);
        assert_eq!(c.end(Outcome::Success, "booked", at(4)), Err(ConversationError::Ended));
        assert_eq!(c.append(inbound("hi", 5, "SM9")), Err(ConversationError::Ended));
        assert_eq!(c.outcome, Some(Outcome::Discarded));
        assert_eq!(c.ended_at, Some(at(3)));
    }

    #[test]
    fn a_person_may_correct_an_ended_outcome_without_moving_the_end_time() {
        let mut c = convo();
        assert_eq!(c.end(Outcome::NoResponse, "silent", at(3)), Ok(()));
        c.correct_outcome(Outcome::Qualified, "called us instead", at(10));
        assert_eq!(c.outcome, Some(Outcome::Qualified));
        assert_eq!(c.ended_at, Some(at(3)));
        assert_eq!(c.updated_at, at(10));
    }

    #[test]
    fn outcome_and_status_names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
            assert_eq!(serde_json::to_value(o).ok(), Some(serde_json::json!(o.as_str())));
        }
        assert!("booked".parse::<Outcome>().is_err());
        assert_eq!(
            "needs_human".parse::<ConversationStatus>(),
            Ok(ConversationStatus::NeedsHuman)
        );
    }

    #[test]
    fn conversation_ids_parse_only_their_own_shape() {
        let id = ConversationId::generate(at(0));
        assert_eq!(ConversationId::parse(id.as_str()), Ok(id));
        assert!(ConversationId::parse("msg_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_err());
        assert!(ConversationId::parse("conv_nope").is_err());
    }

    // ---- properties ----

    use proptest::prelude::*;

    /// One thing that can happen to a conversation.
    #[derive(Debug, Clone)]
    enum Op {
        Append {
            direction: Direction,
            minute: i64,
            message_id: Option<u8>,
            provider_ref: Option<u8>,
        },
        HandToHuman(i64),
        End(Outcome, i64),
        Correct(Outcome, i64),
    }

    fn message_id(n: u8) -> Option<MessageId> {
        MessageId::parse(&format!(
            "msg_01ARZ3NDEKTSV4RRFFQ69G5FA{}",
            ["V", "W", "X", "Y"][usize::from(n % 4)]
        ))
        .ok()
    }

    fn any_op() -> impl Strategy<Value = Op> {
        let outcome = prop::sample::select(Outcome::ALL.to_vec());
        prop_oneof![
            6 => (any::<bool>(), -30i64..120, prop::option::of(0u8..4), prop::option::of(0u8..6)).prop_map(
                |(inbound, minute, message_id, provider_ref)| Op::Append {
                    direction: if inbound { Direction::Inbound } else { Direction::Outbound },
                    minute,
                    message_id,
                    provider_ref,
                }
            ),
            1 => (-30i64..120).prop_map(Op::HandToHuman),
            2 => (outcome.clone(), -30i64..120).prop_map(|(o, m)| Op::End(o, m)),
            1 => (outcome, -30i64..120).prop_map(|(o, m)| Op::Correct(o, m)),
        ]
    }

    fn turn_of(direction: Direction, minute: i64, message_id_n: Option<u8>, provider_ref: Option<u8>) -> Turn {
        Turn {
            direction,
            body: format!("t{minute}"),
            at: at(minute),
            message_id: message_id_n.and_then(message_id),
            provider_ref: provider_ref.map(|n| format!("SM{n}")),
        }
    }

    /// Apply `op`, returning whether the state machine accepted it.
    fn apply(c: &mut Conversation, op: &Op) -> Result<Option<bool>, ConversationError> {
        match op {
            Op::Append {
                direction,
                minute,
                message_id,
                provider_ref,
            } => c
                .append(turn_of(*direction, *minute, *message_id, *provider_ref))
                .map(Some),
            Op::HandToHuman(m) => c.hand_to_human(at(*m)).map(|()| None),
            Op::End(o, m) => c.end(*o, "ended", at(*m)).map(|()| None),
            Op::Correct(o, m) => {
                c.correct_outcome(*o, "a person's correction", at(*m));
                Ok(None)
            }
        }
    }

    fn check_invariants(c: &Conversation) -> Result<(), TestCaseError> {
        let ended = c.status == ConversationStatus::Ended;
        prop_assert_eq!(ended, c.outcome.is_some());
        prop_assert_eq!(ended, c.ended_at.is_some());
        prop_assert_eq!(ended, c.outcome_reason.is_some());
        prop_assert_eq!(c.is_open(), !ended);
        prop_assert!(c.turns.windows(2).all(|w| w[0].at <= w[1].at), "turns out of order");
        for (i, a) in c.turns.iter().enumerate() {
            for b in &c.turns[i + 1..] {
                prop_assert!(
                    a.provider_ref.is_none() || a.provider_ref != b.provider_ref,
                    "duplicate provider ref"
                );
                prop_assert!(
                    a.message_id.is_none() || a.message_id != b.message_id || a.direction != b.direction,
                    "duplicate message id"
                );
            }
        }
        let latest_inbound = c
            .turns
            .iter()
            .filter(|t| t.direction == Direction::Inbound)
            .map(|t| t.at)
            .max();
        prop_assert_eq!(c.last_inbound_at(), latest_inbound);
        Ok(())
    }

    proptest! {
        #[test]
        fn an_ended_conversation_stays_ended_under_anything_but_a_correction(ops in prop::collection::vec(any_op(), 0..40)) {
            let mut c = convo();
            let mut ended_at = None;
            for op in &ops {
                let before = c.clone();
                let result = apply(&mut c, op);
                if let Some(first_end) = ended_at {
                    if let Op::Correct(o, m) = op {
                        // A person's correction: still ended, new outcome, same end time, same turns.
                        prop_assert_eq!(c.status, ConversationStatus::Ended);
                        prop_assert_eq!(c.outcome, Some(*o));
                        prop_assert_eq!(c.ended_at, Some(first_end));
                        prop_assert_eq!(c.updated_at, at(*m));
                        prop_assert_eq!(&c.turns, &before.turns);
                    } else {
                        prop_assert_eq!(result, Err(ConversationError::Ended));
                        prop_assert_eq!(&c, &before, "a refused {:?} changed the conversation", op);
                    }
                } else {
                    match op {
                        Op::Append { .. } => prop_assert!(result.is_ok()),
                        Op::HandToHuman(_) => {
                            prop_assert_eq!(result, Ok(None));
                            prop_assert_eq!(c.status, ConversationStatus::NeedsHuman);
                        }
                        Op::End(o, m) | Op::Correct(o, m) => {
                            prop_assert_eq!(result, Ok(None));
                            prop_assert_eq!((c.status, c.outcome, c.ended_at), (ConversationStatus::Ended, Some(*o), Some(at(*m))));
                            ended_at = Some(at(*m));
                        }
                    }
                }
                check_invariants(&c)?;
            }
        }

        #[test]
        fn append_adds_exactly_the_turns_not_seen_before(ops in prop::collection::vec(any_op(), 0..40)) {
            let mut c = convo();
            for op in &ops {
                let (before, was_open) = (c.turns.clone(), c.is_open());
                let result = apply(&mut c, op);
                if let Op::Append { direction, minute, message_id, provider_ref } = op {
                    if !was_open {
                        prop_assert_eq!(result, Err(ConversationError::Ended));
                        continue;
                    }
                    let turn = turn_of(*direction, *minute, *message_id, *provider_ref);
                    let seen = before.iter().any(|t| {
                        (turn.provider_ref.is_some() && t.provider_ref == turn.provider_ref)
                            || (turn.message_id.is_some() && t.message_id == turn.message_id && t.direction == turn.direction)
                    });
                    prop_assert_eq!(result, Ok(Some(!seen)));
                    prop_assert_eq!(c.turns.len(), before.len() + usize::from(!seen));
                    if !seen {
                        prop_assert!(c.turns.contains(&turn));
                        prop_assert!(c.updated_at >= turn.at);
                    }
                }
                check_invariants(&c)?;
            }
        }

        #[test]
        fn a_conversation_round_trips_through_json(ops in prop::collection::vec(any_op(), 0..20)) {
            let mut c = convo();
            // Refusals (after the end) leave it as it was; the JSON must hold whatever state results.
            let _results: Vec<_> = ops.iter().map(|op| apply(&mut c, op)).collect();
            let json = serde_json::to_string(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: Conversation = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, c);
        }

        #[test]
        fn names_and_ids_parse_only_their_own_shape(raw in any::<String>(), ms in 0i64..4_102_444_800_000) {
            prop_assert_eq!(raw.parse::<Outcome>().ok(), Outcome::ALL.into_iter().find(|o| o.as_str() == raw));
            prop_assert_eq!(raw.parse::<ConversationStatus>().is_ok(), ["open", "needs_human", "ended"].contains(&raw.as_str()));
            if ConversationId::parse(&raw).is_ok() {
                prop_assert!(raw.starts_with("conv_") && raw.len() == 31);
            }
            let id = ConversationId::generate(DateTime::from_timestamp_millis(ms).unwrap_or_default());
            prop_assert_eq!(ConversationId::parse(id.as_str()), Ok(id));
        }
    }
}
