//! The `local` group, served only by smsrelay-local while the simulator stands in for Twilio:
//! `POST /v1/simulator/inbound` makes the simulator post a signed inbound webhook to this server,
//! as Twilio would when a handset texts one of our numbers.

use crate::adapters::twilio::inbound::{inbound_params, post_signed_inbound};
use crate::adapters::twilio::SIMULATOR_ACCOUNT_SID;
use crate::app::AppError;
use crate::domain::PhoneNumber;
use crate::entrypoints::extract::JsonBody;
use crate::entrypoints::http::{json_response, public_base, ApiError};
use crate::entrypoints::openapi::{SimulatedInbound, SimulatorInboundBody};
use crate::entrypoints::resources::ErrorBody;
use crate::wiring::Deps;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

/// `POST /v1/simulator/inbound`.
#[derive(Debug, Deserialize)]
pub struct SimulatorInboundRequest {
    /// The handset's number.
    pub from: Option<String>,
    /// Our number it texts (default: the default sender).
    pub to: Option<String>,
    /// What it texts.
    pub body: Option<String>,
}

/// Most characters of a simulated text (Twilio's inbound limit).
const MAX_INBOUND_CHARS: usize = 1600;

/// The simulator posts a signed inbound webhook to this server, as Twilio would; the answer is
/// what the webhook said (TwiML).
#[utoipa::path(post, path = "/v1/simulator/inbound", request_body = SimulatorInboundBody,
    responses(
        (status = 200, description = "Posted; the webhook's status and TwiML answer", body = SimulatedInbound),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Real Twilio is configured: there is no simulator to text from", body = ErrorBody),
        (status = 503, description = "The webhook could not be reached", body = ErrorBody)))]
pub async fn simulator_inbound(
    State(deps): State<Deps>,
    headers: HeaderMap,
    body: JsonBody<SimulatorInboundRequest>,
) -> Result<Response, ApiError> {
    if deps.config.twilio.is_some() {
        return Err(AppError::NotFound.into());
    }
    let req = body.value;
    let region = deps.config.default_region;
    let from = req
        .from
        .ok_or_else(|| AppError::invalid("missing_field", "from", "`from` is required"))
        .and_then(|f| {
            PhoneNumber::parse(&f, region).map_err(|e| {
                AppError::invalid(
                    "invalid_phone",
                    "from",
                    format!("`from` is not a valid phone number: {e}"),
                )
            })
        })?;
    let to = match req.to {
        Some(t) => PhoneNumber::parse(&t, region)
            .map_err(|e| AppError::invalid("invalid_phone", "to", format!("`to` is not a valid phone number: {e}")))?
            .as_str()
            .to_owned(),
        None => match &deps.config.default_sender {
            crate::ports::Sender::Number(n) => n.as_str().to_owned(),
            crate::ports::Sender::MessagingService(_) => {
                return Err(AppError::invalid(
                    "missing_field",
                    "to",
                    "`to` is required when the default sender is a Messaging Service",
                )
                .into())
            }
        },
    };
    let text = req
        .body
        .ok_or_else(|| AppError::invalid("missing_field", "body", "`body` is required"))?;
    if text.chars().count() > MAX_INBOUND_CHARS {
        return Err(AppError::invalid("invalid_body", "body", "`body` is over 1600 characters").into());
    }
    let sid = format!("SM{:032x}", rand::random::<u128>());
    let params = inbound_params(&sid, SIMULATOR_ACCOUNT_SID, from.as_str(), &to, &text);
    let url = format!("{}/webhooks/twilio/inbound", public_base(&deps, &headers));
    let http = crate::wiring::http_client().map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    let (status, twiml) = post_signed_inbound(&http, &deps.config.webhook_auth_token(), &url, &params)
        .await
        .map_err(|e| AppError::Transient(crate::ports::StoreError::Unexpected(anyhow::Error::new(e))))?;
    Ok(json_response(
        StatusCode::OK,
        &SimulatedInbound {
            message_sid: sid,
            status,
            twiml,
        },
    ))
}
