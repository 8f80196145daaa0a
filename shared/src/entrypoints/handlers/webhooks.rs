//! The `status-callback` group: `POST /webhooks/twilio/status`, signed by Twilio.

use crate::app::record_status::{record_status, StatusCallback};
use crate::app::AppError;
use crate::domain::{MessageId, ProviderSid};
use crate::entrypoints::extract::TwilioForm;
use crate::entrypoints::http::{ctx, ApiError};
use crate::entrypoints::openapi::StatusCallbackForm;
use crate::entrypoints::resources::ErrorBody;
use crate::wiring::Deps;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};

/// Twilio's empty TwiML answer.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";

/// A Twilio status callback; 200 also for a duplicate or an unknown `MessageSid`.
#[utoipa::path(post, path = "/webhooks/twilio/status",
    request_body(content = StatusCallbackForm, content_type = "application/x-www-form-urlencoded"),
    params(
        ("X-Twilio-Signature" = String, Header, description = "Twilio's signature over the URL and the form"),
        ("message_id" = Option<String>, Query, description = "Our id, set in the StatusCallback URL")),
    responses(
        (status = 200, description = "Recorded (empty TwiML)", body = String, content_type = "text/xml"),
        (status = 400, description = "Missing or invalid parameter", body = ErrorBody),
        (status = 403, description = "Missing or invalid signature; nothing stored", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable; Twilio retries", body = ErrorBody)))]
pub async fn twilio_status(State(deps): State<Deps>, form: TwilioForm) -> Result<Response, ApiError> {
    let get = |k: &str| form.params.get(k).map(str::to_owned);
    let sid_raw = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or_else(|| AppError::invalid("missing_field", "MessageSid", "MessageSid is required"))?;
    let sid = ProviderSid::parse(&sid_raw)
        .map_err(|_| AppError::invalid("invalid_sid", "MessageSid", "MessageSid is not valid"))?;
    let status = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .ok_or_else(|| AppError::invalid("missing_field", "MessageStatus", "MessageStatus is required"))?;
    let error_code = match get("ErrorCode").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| AppError::invalid("invalid_error_code", "ErrorCode", "ErrorCode must be a number"))?,
        ),
        None => None,
    };
    let cb = StatusCallback {
        message_id: form.query.get("message_id").and_then(|v| MessageId::parse(v).ok()),
        sid,
        status,
        error_code,
        error_message: get("ErrorMessage"),
    };
    let outcome = record_status(ctx(&deps, &form.base), cb)
        .await
        .map_err(AppError::from)?;
    tracing::info!(?outcome, "status callback applied");
    let mut resp = Response::new(Body::from(EMPTY_TWIML));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    Ok(resp)
}
