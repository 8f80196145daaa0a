//! The `campaigns` group, conversation routes: a phone's conversations, one conversation with
//! both directions in order, a person's reply through the send pipeline, and setting the outcome.
//! (Campaigns, leads and enrolments are in `handlers::campaigns`.)

use super::{cursor_error, parse_limit};
use crate::app::conversations::{conversation_turns, reply_as_person, set_outcome};
use crate::app::AppError;
use crate::domain::{ConversationId, ConversationStatus, MessageBody, Outcome, PhoneNumber};
use crate::entrypoints::extract::{JsonBody, PathId, QueryPairs};
use crate::entrypoints::http::{ctx, json_response, public_base, ApiError};
use crate::entrypoints::openapi::{ConversationReplyBody, OutcomeBody};
use crate::entrypoints::resources::{ConversationPage, ConversationResource, ErrorBody, MessageResource};
use crate::ports::ConversationFilter;
use crate::wiring::Deps;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

fn conversation_id(raw: &str) -> Result<ConversationId, AppError> {
    ConversationId::parse(raw).map_err(|_| AppError::NotFound)
}

async fn resource(deps: &Deps, c: &crate::domain::Conversation) -> Result<ConversationResource, AppError> {
    let turns = conversation_turns(deps.messages.as_ref(), c).await?;
    Ok(ConversationResource::new(c, &turns))
}

/// A phone's conversations (with any of our numbers), newest first.
#[utoipa::path(get, path = "/v1/conversations",
    params(
        ("phone" = String, Query, description = "The lead's phone (E.164 or national format)"),
        ("status" = Option<String>, Query, description = "`open`, `needs_human` or `ended`"),
        ("outcome" = Option<String>, Query, description = "One of the six outcomes"),
        ("limit" = Option<u32>, Query, description = "1-200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses(
        (status = 200, description = "A page", body = ConversationPage),
        (status = 400, description = "Missing or invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list_conversations(State(deps): State<Deps>, query: QueryPairs) -> Result<Response, ApiError> {
    let raw = query
        .get("phone")
        .ok_or_else(|| AppError::invalid("missing_field", "phone", "`phone` is required to list conversations"))?;
    let phone = PhoneNumber::parse(raw, deps.config.default_region).map_err(|e| {
        AppError::invalid(
            "invalid_phone",
            "phone",
            format!("`phone` is not a valid phone number: {e}"),
        )
    })?;
    let filter = ConversationFilter {
        status: query
            .get("status")
            .map(|s| s.parse::<ConversationStatus>())
            .transpose()
            .map_err(|e| AppError::invalid("invalid_status", "status", e.to_string()))?,
        outcome: query
            .get("outcome")
            .map(|s| s.parse::<Outcome>())
            .transpose()
            .map_err(|e| AppError::invalid("invalid_outcome", "outcome", e.to_string()))?,
    };
    let limit = parse_limit(query.get("limit"))?;
    let page = deps
        .conversations
        .list_conversations(&phone, filter, limit, query.get("cursor"))
        .await
        .map_err(cursor_error)?;
    let mut data = Vec::with_capacity(page.items.len());
    for c in &page.items {
        data.push(resource(&deps, c).await?);
    }
    Ok(json_response(
        StatusCode::OK,
        &ConversationPage {
            data,
            has_more: page.next_cursor.is_some(),
            next_cursor: page.next_cursor,
        },
    ))
}

/// One conversation, both directions in order.
#[utoipa::path(get, path = "/v1/conversations/{id}",
    params(("id" = String, Path, description = "`conv_` + ULID")),
    responses(
        (status = 200, description = "The conversation", body = ConversationResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody)))]
pub async fn get_conversation(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let id = conversation_id(&id)?;
    let c = deps
        .conversations
        .get_conversation(&id)
        .await
        .map_err(AppError::from)?
        .ok_or(AppError::NotFound)?;
    Ok(json_response(StatusCode::OK, &resource(&deps, &c).await?))
}

/// `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize)]
pub struct ReplyRequest {
    /// The text.
    pub body: Option<String>,
}

/// A person replies: the text goes through the send pipeline (consent, limits, status tracking),
/// is linked to the conversation, and the agent stays quiet from then on.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", request_body = ConversationReplyBody,
    params(("id" = String, Path, description = "`conv_` + ULID")),
    responses(
        (status = 202, description = "Accepted; the message resource (`status` says what happened)", body = MessageResource),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "The conversation has ended", body = ErrorBody)))]
pub async fn post_conversation_message(
    State(deps): State<Deps>,
    headers: HeaderMap,
    PathId(id): PathId,
    body: JsonBody<ReplyRequest>,
) -> Result<Response, ApiError> {
    let raw = body
        .value
        .body
        .ok_or_else(|| AppError::invalid("missing_field", "body", "`body` is required"))?;
    let text = MessageBody::parse(raw).map_err(|e| AppError::invalid("invalid_body", "body", e.to_string()))?;
    let id = conversation_id(&id)?;
    let base = public_base(&deps, &headers);
    let (_, sent) = reply_as_person(ctx(&deps, &base), deps.conversations.as_ref(), &id, text).await?;
    let mut resource = MessageResource::from(&sent.message);
    resource.warning = sent.warning;
    Ok(json_response(StatusCode::ACCEPTED, &resource))
}

/// `POST /v1/conversations/{id}/outcome`.
#[derive(Debug, Deserialize)]
pub struct OutcomeRequest {
    /// One of the six outcomes.
    pub outcome: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
}

/// Most characters of an outcome reason.
const MAX_REASON_CHARS: usize = 1000;

/// A person sets or corrects the outcome; the conversation is ended either way.
#[utoipa::path(post, path = "/v1/conversations/{id}/outcome", request_body = OutcomeBody,
    params(("id" = String, Path, description = "`conv_` + ULID")),
    responses(
        (status = 200, description = "The ended conversation", body = ConversationResource),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody)))]
pub async fn post_conversation_outcome(
    State(deps): State<Deps>,
    PathId(id): PathId,
    body: JsonBody<OutcomeRequest>,
) -> Result<Response, ApiError> {
    let outcome = body
        .value
        .outcome
        .ok_or_else(|| AppError::invalid("missing_field", "outcome", "`outcome` is required"))?
        .parse::<Outcome>()
        .map_err(|e| AppError::invalid("invalid_outcome", "outcome", e.to_string()))?;
    let reason = body.value.reason.unwrap_or_else(|| "set by a person".to_owned());
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "invalid_reason",
            "reason",
            format!("`reason` must be at most {MAX_REASON_CHARS} characters without control characters"),
        )
        .into());
    }
    let id = conversation_id(&id)?;
    let c = set_outcome(deps.conversations.as_ref(), &id, outcome, reason, deps.clock.now()).await?;
    Ok(json_response(StatusCode::OK, &resource(&deps, &c).await?))
}
