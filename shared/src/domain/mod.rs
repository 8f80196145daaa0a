//! Pure domain types and rules: no I/O, no async, no AWS.

pub mod agent;
pub mod area_code_zone;
pub mod campaign;
pub mod consent;
pub mod conversation;
pub mod duration;
pub mod entropy;
pub mod keyword;
pub mod message;
pub mod message_body;
pub mod phone_number;
pub mod retell_webhook;
pub mod retry_policy;
pub mod schedule;
pub mod status;
pub mod time_format;

pub use agent::{asks_for_person, AgentSpec, AgentSpecError, ScriptedRule};
pub use area_code_zone::zone_for_area_code;
pub use campaign::{
    Campaign, CampaignError, CampaignQuietHours, Enrolment, EnrolmentId, EnrolmentStatus, Lead, Step, Template,
    Variable,
};
pub use consent::{current_status, ConsentChannel, ConsentEvidence, ConsentStatus};
pub use conversation::{
    Appointment, Conversation, ConversationError, ConversationId, ConversationStatus, Direction, InvalidConversationId,
    Outcome, Turn,
};
pub use duration::{parse_duration, InvalidDuration};
pub use keyword::Keyword;
pub use message::{
    Message, MessageError, MessageId, ProviderSid, Ref, RefError, RescheduleReason, Rescheduled, StatusEvent,
    MAX_REF_CHARS,
};
pub use message_body::{Encoding, MessageBody, MessageBodyError};
pub use phone_number::{PhoneNumber, PhoneNumberError, Region};
pub use retell_webhook::{RetellChat, RetellEvent, RetellTurn, RetellWebhookError};
pub use schedule::{parse_instant, InvalidInstant, QuietHours, QuietHoursError};
pub use status::MessageStatus;
pub use time_format::timestamp;
