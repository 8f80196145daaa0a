//! JSON shapes of the API's resources (docs/api.md), built from domain records. The types serialize
//! the responses AND describe them in the OpenAPI document, so the two cannot differ.

use crate::domain::{Message, Ref};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// RFC 3339 UTC with millisecond precision and a `Z` (kept here for callers of this path).
pub use crate::domain::timestamp;

/// Every status a message can have (docs/api.md).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    /// Waiting for its `send_at`.
    Scheduled,
    /// Accepted, not yet handed to the provider.
    Queued,
    /// Handed to the provider, answer not yet recorded.
    Sending,
    /// Accepted by the provider.
    Sent,
    /// The carrier could not deliver it.
    Undelivered,
    /// Permanent failure.
    Failed,
    /// Delivered to the handset.
    Delivered,
    /// Held by the per-recipient rate limit.
    RateLimited,
    /// The provider reported a status we do not know.
    Unknown,
    /// Canceled before it was sent.
    Canceled,
    /// Not sent: the recipient opted out.
    Suppressed,
}

/// The provider's error of the last attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderErrorResource {
    /// Twilio's numeric error code, e.g. 21211.
    pub code: u32,
    /// Human-readable text.
    pub message: String,
}

/// What a history entry without a status change records.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    /// The send time was moved (`reason`, the new `send_at`); the status stayed.
    Rescheduled,
}

/// Why a message was rescheduled.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RescheduleReasonName {
    /// The time fell inside the message's quiet hours.
    QuietHours,
}

/// One entry of the history: a status reached, or (with `event`) a deferral.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventResource {
    /// The status reached (for a deferral: the status it stayed in).
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    /// When it was recorded.
    pub at: String,
    /// Provider error code that came with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// `rescheduled` for a deferral; absent for a status change.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EventName>)]
    pub event: Option<&'static str>,
    /// Why it was rescheduled (with `event`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RescheduleReasonName>)]
    pub reason: Option<&'static str>,
    /// The new send time (with `event`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
}

/// A link to the caller's entity.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct RefResource {
    /// Entity type, e.g. `calendar_event`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Entity id.
    pub id: String,
}

impl From<&Ref> for RefResource {
    fn from(r: &Ref) -> Self {
        Self {
            kind: r.kind.clone(),
            id: r.id.clone(),
        }
    }
}

/// The message resource of docs/api.md.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageResource {
    /// `msg_` + ULID.
    pub id: String,
    /// Recipient, E.164.
    pub to: String,
    /// Sender: E.164 number or Messaging Service sid.
    pub from: String,
    /// The text.
    pub body: String,
    /// Current status.
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    /// The provider's last raw status.
    pub provider_status: Option<String>,
    /// Segments the body costs.
    pub segments: u32,
    /// `GSM-7` or `UCS-2`.
    #[schema(value_type = String)]
    pub encoding: crate::domain::Encoding,
    /// Provider id of the current attempt.
    pub provider_sid: Option<String>,
    /// Provider attempts made.
    pub attempts: u32,
    /// Last provider error.
    pub error: Option<ProviderErrorResource>,
    /// When it is to be sent, if scheduled.
    pub send_at: Option<String>,
    /// The caller's time (its `send_at`, or the acceptance time of an immediate send) when quiet
    /// hours moved `send_at`; `null` when nothing moved it.
    pub original_send_at: Option<String>,
    /// Link to the caller's entity.
    #[serde(rename = "ref")]
    pub reference: Option<RefResource>,
    /// Caller's metadata, as given.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// When it was accepted.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Status history, oldest first.
    pub events: Vec<EventResource>,
    /// Set when our last write failed after the provider accepted (the message is not lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl From<&Message> for MessageResource {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.as_str().to_owned(),
            to: m.to.as_str().to_owned(),
            from: m.from.clone(),
            body: m.body.as_str().to_owned(),
            status: m.status.as_str(),
            provider_status: m.provider_status.clone(),
            segments: m.segments,
            encoding: m.encoding,
            provider_sid: m.provider_sid.as_ref().map(|s| s.as_str().to_owned()),
            attempts: m.attempts,
            error: m.error.as_ref().map(|e| ProviderErrorResource {
                code: e.code,
                message: e.message.clone(),
            }),
            send_at: m.send_at.as_ref().map(timestamp),
            original_send_at: m.original_send_at.as_ref().map(timestamp),
            reference: m.reference.as_ref().map(RefResource::from),
            metadata: m.metadata.clone(),
            created_at: timestamp(&m.created_at),
            updated_at: timestamp(&m.updated_at),
            events: m
                .events
                .iter()
                .map(|e| EventResource {
                    status: e.status.as_str(),
                    at: timestamp(&e.at),
                    code: e.code,
                    event: e.rescheduled.map(|_| "rescheduled"),
                    reason: e.rescheduled.map(|r| r.reason.as_str()),
                    send_at: e.rescheduled.as_ref().map(|r| timestamp(&r.send_at)),
                })
                .collect(),
            warning: None,
        }
    }
}

/// The message resource of docs/api.md, as a JSON value.
pub fn message_resource(m: &Message) -> Value {
    serde_json::to_value(MessageResource::from(m)).unwrap_or_default()
}

/// A page of messages (docs/api.md "Lists").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessagePage {
    /// The messages, newest first.
    pub data: Vec<MessageResource>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `?cursor=` for the next page.
    pub next_cursor: Option<String>,
}

/// `{"error": {...}}` (docs/api.md "Errors").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// snake_case code, e.g. `invalid_phone`.
    pub code: String,
    /// Human-readable text; never echoes a phone number or a body.
    pub message: String,
    /// The field at fault (a dotted path such as `quiet_hours.timezone`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One message of a conversation (docs/api.md "Campaigns, leads, conversations").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnResource {
    /// `inbound` (from the lead) or `outbound`.
    pub direction: &'static str,
    /// The text.
    pub body: String,
    /// When it was received or accepted.
    pub at: String,
    /// Our message id, for outbound messages sent through the pipeline.
    pub message_id: Option<String>,
}

/// The appointment an agent booked in a conversation (`book_appointment`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppointmentResource {
    /// Start, RFC 3339 with the lead's offset.
    pub start: String,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// Notes, if any.
    pub notes: Option<String>,
    /// When it was booked.
    pub booked_at: String,
}

/// A conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationResource {
    /// `conv_` + ULID.
    pub id: String,
    /// The lead's phone.
    pub phone: String,
    /// Our number.
    pub business_number: String,
    /// The campaign that started it, if any.
    pub campaign_id: Option<String>,
    /// `open`, `needs_human` or `ended`.
    pub status: &'static str,
    /// One of the six outcomes once ended.
    pub outcome: Option<&'static str>,
    /// Why, in words.
    pub outcome_reason: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// When it was opened.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// The appointment booked in it, if any.
    pub appointment: Option<AppointmentResource>,
    /// Both directions, in order.
    pub messages: Vec<TurnResource>,
}

impl ConversationResource {
    /// The resource of `c` with `turns` (its turns joined with its outbound messages).
    pub fn new(c: &crate::domain::Conversation, turns: &[crate::domain::Turn]) -> Self {
        Self {
            id: c.id.as_str().to_owned(),
            phone: c.phone.as_str().to_owned(),
            business_number: c.business_number.as_str().to_owned(),
            campaign_id: c.campaign_id.clone(),
            status: c.status.as_str(),
            outcome: c.outcome.map(crate::domain::Outcome::as_str),
            outcome_reason: c.outcome_reason.clone(),
            ended_at: c.ended_at.as_ref().map(timestamp),
            created_at: timestamp(&c.created_at),
            updated_at: timestamp(&c.updated_at),
            appointment: c.appointment.as_ref().map(|a| AppointmentResource {
                start: a.start.clone(),
                duration_minutes: a.duration_minutes,
                notes: a.notes.clone(),
                booked_at: timestamp(&a.booked_at),
            }),
            messages: turns
                .iter()
                .map(|t| TurnResource {
                    direction: match t.direction {
                        crate::domain::Direction::Inbound => "inbound",
                        crate::domain::Direction::Outbound => "outbound",
                    },
                    body: t.body.clone(),
                    at: timestamp(&t.at),
                    message_id: t.message_id.as_ref().map(|m| m.as_str().to_owned()),
                })
                .collect(),
        }
    }
}

/// A page of conversations, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationPage {
    /// The conversations.
    pub data: Vec<ConversationResource>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `?cursor=` for the next page.
    pub next_cursor: Option<String>,
}

/// One entry of a phone's consent history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentEntryResource {
    /// `opted_in` or `opted_out`.
    pub status: &'static str,
    /// When.
    pub at: String,
    /// The keyword texted, when a keyword caused it.
    pub keyword: Option<String>,
    /// `sms`, `retell`, `provider_error` (Twilio 21610) or `api`.
    pub channel: &'static str,
    /// The provider's message id that proves it.
    pub message_sid: Option<String>,
}

/// `GET /v1/consent/{phone}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentResource {
    /// The phone.
    pub phone: String,
    /// `opted_in` or `opted_out`.
    pub status: &'static str,
    /// Every change, oldest first.
    pub history: Vec<ConsentEntryResource>,
}

fn consent_status(s: crate::domain::ConsentStatus) -> &'static str {
    match s {
        crate::domain::ConsentStatus::OptedIn => "opted_in",
        crate::domain::ConsentStatus::OptedOut => "opted_out",
    }
}

impl ConsentResource {
    /// The resource of `phone` from its opt-out state and history.
    pub fn new(
        phone: &crate::domain::PhoneNumber,
        opted_out: bool,
        history: &[crate::domain::ConsentEvidence],
    ) -> Self {
        use crate::domain::ConsentChannel;
        Self {
            phone: phone.as_str().to_owned(),
            status: if opted_out { "opted_out" } else { "opted_in" },
            history: history
                .iter()
                .map(|e| ConsentEntryResource {
                    status: consent_status(e.status),
                    at: timestamp(&e.at),
                    keyword: e.keyword.clone(),
                    channel: match e.channel {
                        ConsentChannel::Sms => "sms",
                        ConsentChannel::Retell => "retell",
                        ConsentChannel::ProviderError => "provider_error",
                        ConsentChannel::Api => "api",
                    },
                    message_sid: e.message_sid.clone(),
                })
                .collect(),
        }
    }
}
