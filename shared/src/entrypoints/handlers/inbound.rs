//! The `inbound` group: what leads send. `POST /webhooks/twilio/inbound` (signed by Twilio, answered
//! in TwiML) and `POST /webhooks/retell` (signed by Retell, answered in JSON). Both only verify,
//! record and queue (`app::handle_inbound`, `app::handle_retell`): no model and no provider is
//! called here, so they answer within Twilio's 15 s and Retell's 10 s.

use crate::adapters::retell::verify_retell;
use crate::adapters::twilio::inbound::InboundSms;
use crate::adapters::twilio::twiml;
use crate::app::handle_inbound::{handle_inbound, InboundOutcome, InboundPorts, InboundText};
use crate::app::handle_retell::{handle_retell, RetellOutcome};
use crate::app::AppError;
use crate::domain::{ConsentChannel, RetellEvent, RetellWebhookError};
use crate::entrypoints::extract::TwilioForm;
use crate::entrypoints::http::{json_response, ApiError};
use crate::entrypoints::openapi::{InboundSmsForm, RetellAnswer};
use crate::entrypoints::resources::ErrorBody;
use crate::wiring::Deps;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The ports inbound handling uses, borrowed from the dependencies.
pub fn inbound_ports(deps: &Deps) -> InboundPorts<'_> {
    InboundPorts {
        consent: deps.consent.as_ref(),
        conversations: deps.conversations.as_ref(),
        queue: deps.queue.as_ref(),
        events: deps.events.as_ref(),
        enrolments: deps.enrolments.as_ref(),
    }
}

fn twiml_response(body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(twiml::CONTENT_TYPE));
    resp
}

/// A text from a lead to one of our Twilio numbers: STOP/START/HELP are honoured with evidence,
/// anything else becomes a turn of the pair's conversation. The same `MessageSid` twice stores
/// one message and gets the same answer.
#[utoipa::path(post, path = "/webhooks/twilio/inbound",
    request_body(content = InboundSmsForm, content_type = "application/x-www-form-urlencoded"),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature over the public URL and every parameter")),
    responses(
        (status = 200, description = "Recorded: empty TwiML, or the help text for HELP", body = String, content_type = "text/xml"),
        (status = 400, description = "A parameter the product needs is missing or invalid", body = ErrorBody),
        (status = 403, description = "Missing or invalid signature; nothing stored", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable; Twilio may retry, which is safe", body = ErrorBody)))]
pub async fn twilio_inbound(State(deps): State<Deps>, form: TwilioForm) -> Result<Response, ApiError> {
    let sms = InboundSms::from_params(&form.params.0, deps.config.default_region)
        .map_err(|e| AppError::invalid("invalid_parameter", e.field, e.to_string()))?;
    let text = InboundText {
        channel: ConsentChannel::Sms,
        provider_ref: sms.sid.as_str().to_owned(),
        from: sms.from,
        to: sms.to,
        body: sms.body,
        opt_out_type: sms.opt_out_type,
        at: deps.clock.now(),
    };
    let outcome = handle_inbound(inbound_ports(&deps), text, &deps.config.help_text).await?;
    tracing::info!(?outcome, "inbound text recorded");
    Ok(twiml_response(match outcome {
        InboundOutcome::Help { reply: Some(text) } => twiml::message(&text),
        _ => twiml::EMPTY.to_owned(),
    }))
}

/// Every Retell webhook, told apart by `event`: `chat_inbound` is answered with what we know of
/// the lead (`{}` when nothing), chat events record the chat's turns and outcome, pings get 200.
#[utoipa::path(post, path = "/webhooks/retell",
    request_body(content = serde_json::Value, content_type = "application/json"),
    params(("x-retell-signature" = String, Header, description = "`v=<ms>,d=<hex>`: HMAC-SHA256 of the raw body and the timestamp with the Retell API key, within 5 minutes")),
    responses(
        (status = 200, description = "Recorded (for `chat_inbound`: the agent, variables and metadata to use, or `{}`)", body = RetellAnswer),
        (status = 400, description = "Not JSON, or a known event without its fields", body = ErrorBody),
        (status = 403, description = "Missing, malformed, stale or wrong signature (or no Retell key configured); nothing stored", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable; Retell retries, which is safe", body = ErrorBody)))]
pub async fn retell(State(deps): State<Deps>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = deps.config.retell_api_key.as_ref().ok_or(AppError::Forbidden)?;
    let signature = headers
        .get("x-retell-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::Forbidden)?;
    let now = deps.clock.now();
    if let Err(e) = verify_retell(key.expose_secret(), &body, signature, now.timestamp_millis()) {
        tracing::info!(reason = %e, "Retell webhook refused");
        return Err(AppError::Forbidden.into());
    }
    let event = RetellEvent::parse(&body).map_err(|e| match e {
        RetellWebhookError::InvalidJson => AppError::Validation {
            code: "invalid_json",
            message: e.to_string(),
            field: None,
        },
        RetellWebhookError::Missing(field) => AppError::invalid("missing_field", field, e.to_string()),
    })?;
    let hash: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    let outcome = handle_retell(
        inbound_ports(&deps),
        deps.campaign_agents.as_ref(),
        event,
        &hash,
        deps.config.default_region,
        &deps.config.help_text,
        now,
    )
    .await?;
    tracing::info!(?outcome, "Retell webhook recorded");
    Ok(match outcome {
        RetellOutcome::Answer(answer) => json_response(StatusCode::OK, &answer),
        _ => json_response(StatusCode::OK, &json!({})),
    })
}
