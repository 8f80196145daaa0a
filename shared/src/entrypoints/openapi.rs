//! The OpenAPI 3.1 document, assembled from the route table ([`super::routes`]): every route's
//! `#[utoipa::path]` is registered by `routes!` together with its handler, so the document and
//! the routers cannot drift. Served at `GET /openapi.json` and committed as `docs/openapi.json`
//! (a test fails when the committed copy is stale).
//!
//! The types here only describe shapes that `app/` builds as JSON values (request DTOs, batch
//! results, the tick report, health); the resources built here are typed in [`super::resources`].

use super::resources::{ErrorBody, ErrorDetail, MessagePage, MessageResource, RefResource};
use super::routes::{api, Group};
use serde::Serialize;
use std::sync::LazyLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};

/// `POST /v1/messages` (unknown fields are ignored).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SendMessageBody {
    /// Recipient, E.164 or national format in the default region.
    to: String,
    /// The text, 1-1,600 characters.
    body: String,
    /// Sender override: E.164 number or Messaging Service sid.
    from: Option<String>,
    /// RFC 3339 time to send at.
    send_at: Option<String>,
    /// Local-time window in which it must not be sent.
    quiet_hours: Option<QuietHoursBody>,
    /// Link to the caller's entity.
    #[schema(rename = "ref")]
    reference: Option<RefResource>,
    /// Returned as given.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// A daily window in which nothing is sent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct QuietHoursBody {
    /// `HH:MM`, local.
    start: String,
    /// `HH:MM`, local.
    end: String,
    /// IANA zone, e.g. `America/New_York`.
    timezone: String,
}

/// `POST /v1/messages/cancel`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CancelByRefBody {
    /// The entity whose messages are canceled.
    #[schema(rename = "ref")]
    reference: RefResource,
}

/// How many messages a cancel-by-ref canceled.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanceledCount {
    /// Messages canceled.
    pub canceled: usize,
}

/// `POST /v1/batches`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchBody {
    /// At most 1,000 messages.
    #[schema(max_items = 1000)]
    messages: Vec<SendMessageBody>,
    /// Sender for every message that names none.
    from: Option<String>,
}

/// The error of one batch item.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchItemError {
    /// A snake_case code (rejected) or Twilio's numeric code (failed at the provider).
    #[schema(value_type = Object, schema_with = string_or_integer)]
    code: serde_json::Value,
    /// Human-readable text.
    message: String,
    /// The field at fault.
    field: Option<String>,
}

fn string_or_integer() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .build(),
    )
}

/// One item's outcome.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchItemResult {
    /// Position in the request.
    index: u32,
    /// Our id, unless rejected.
    message_id: Option<String>,
    /// `sent`, `queued`, `sending`, `failed`, `suppressed`, `rate_limited` or `rejected`.
    status: String,
    /// Provider id, once known.
    provider_sid: Option<String>,
    /// Why it was rejected or failed.
    error: Option<BatchItemError>,
    /// Set when the send succeeded but its record could not be written.
    warning: Option<String>,
}

/// The answer to `POST /v1/batches`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchAccepted {
    /// `bat_` + ULID.
    batch_id: String,
    /// Items in the request.
    total: u32,
    /// Accepted by the provider.
    sent: u32,
    /// Still to be sent (in the background).
    queued: u32,
    /// Failed at the provider.
    failed: u32,
    /// Refused at validation.
    rejected: u32,
    /// Not sent: opted out.
    suppressed: u32,
    /// Held by the rate limit.
    rate_limited: u32,
    /// Time spent answering.
    duration_ms: u64,
    /// One result per item, in order.
    results: Vec<BatchItemResult>,
}

/// `GET /v1/batches/{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BatchSummary {
    /// `bat_` + ULID.
    batch_id: String,
    /// Items in the batch.
    total: u32,
    /// Accepted by the provider.
    sent: u32,
    /// Not finished yet.
    queued: u32,
    /// Failed at the provider.
    failed: u32,
    /// Refused at validation.
    rejected: u32,
    /// Not sent: opted out.
    suppressed: u32,
    /// Held by the rate limit.
    rate_limited: u32,
    /// `in_progress` or `completed`.
    state: String,
    /// (failed + rejected) / total, three decimals.
    failure_rate: f64,
    /// Whether the failure-rate alert was raised.
    alerted: bool,
    /// When it was accepted.
    created_at: String,
}

/// What one processor tick did.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TickReportBody {
    /// Queued or scheduled messages sent.
    due_sent: u32,
    /// Messages moved to a later time.
    rescheduled: u32,
    /// Unconfirmed attempts reconciled with the provider.
    reconciled: u32,
    /// Sent messages whose status was polled.
    polled: u32,
    /// Conversations ended for no response.
    ended_no_response: u32,
    /// Due items read.
    items_read: u32,
    /// Whether work was left for the next tick.
    remaining: bool,
    /// How long the tick took.
    duration_ms: u64,
}

/// `GET /health`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PublicHealth {
    /// `ok` or `degraded`.
    status: String,
    /// Build version.
    version: String,
    /// Server time.
    time: String,
}

/// `GET /v1/health`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AdminHealth {
    /// `ok` or `degraded`.
    status: String,
    /// Build version.
    version: String,
    /// Server time.
    time: String,
    /// `pending_retries`, `dead_letters`, `failed_last_24h`, `sent_last_hour`, `delivery_rate_24h`,
    /// `processor_last_run_at`, `processor_lag_seconds`, `unconfirmed_over_5m`, ….
    #[schema(value_type = Object)]
    metrics: serde_json::Value,
    /// Alerts currently raised (snake_case kinds).
    alerts: Vec<String>,
}

/// A Twilio status callback (form fields; others are accepted and ignored).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct StatusCallbackForm {
    /// Twilio's message sid (`SmsSid` is accepted too).
    MessageSid: String,
    /// Twilio's status (`SmsStatus` is accepted too).
    MessageStatus: String,
    /// Twilio's error code, when failed or undelivered.
    ErrorCode: Option<String>,
    /// Twilio's error text.
    ErrorMessage: Option<String>,
}

/// A Twilio incoming message (form fields; the others Twilio sends are accepted, signed and ignored).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct InboundSmsForm {
    /// Twilio's message sid (`SmsSid` is accepted too): the dedupe key.
    MessageSid: String,
    /// The lead's number.
    From: String,
    /// Our number.
    To: String,
    /// The text (up to 1,600 characters; empty for a picture).
    Body: Option<String>,
    /// `STOP`, `START` or `HELP` when Twilio's Advanced Opt-Out handled it.
    OptOutType: Option<String>,
}

/// The answer to a Retell webhook: for `chat_inbound`, what Retell should use (absent fields:
/// Retell's own defaults); for every other event `{}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RetellAnswer {
    /// The agent, variables and metadata for the chat.
    #[schema(value_type = Option<Object>)]
    chat_inbound: Option<serde_json::Value>,
}

/// `POST /v1/conversations/{id}/messages`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConversationReplyBody {
    /// The text, 1-1,600 characters.
    body: String,
}

/// `POST /v1/conversations/{id}/outcome`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OutcomeBody {
    /// `success`, `qualified`, `unqualified`, `escalated`, `no_response` or `discarded`.
    outcome: String,
    /// Why, in words (at most 1,000 characters).
    reason: Option<String>,
}

/// `POST /v1/consent/{phone}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsentChangeBody {
    /// `opted_out` or `opted_in`.
    status: String,
}

/// `POST /v1/simulator/inbound`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SimulatorInboundBody {
    /// The handset's number.
    from: String,
    /// Our number it texts (default: the default sender).
    to: Option<String>,
    /// What it texts.
    body: String,
}

/// What the simulated inbound webhook answered.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SimulatedInbound {
    /// The `MessageSid` the simulator gave the text.
    pub message_sid: String,
    /// The webhook's HTTP status.
    pub status: u16,
    /// The webhook's TwiML answer.
    pub twiml: String,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "smsrelay", description = "Reliable SMS sending over Twilio: the HTTP contract of docs/api.md."),
    components(schemas(ErrorBody, ErrorDetail, MessageResource, MessagePage)),
    modifiers(&BearerScheme)
)]
struct Base;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole API's document: every group's routes, tagged with their group.
pub fn document() -> Document {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for group in Group::ALL {
        doc.merge(api(group).into_openapi());
    }
    doc
}

static DOCUMENT_JSON: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));

/// [`document`] as pretty JSON (built once), as served and committed.
pub fn document_json() -> String {
    DOCUMENT_JSON.clone()
}
