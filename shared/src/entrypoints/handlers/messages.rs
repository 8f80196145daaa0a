//! The `send` group: `POST /v1/messages`, `GET /v1/messages[/{id}]`, cancel by id and by ref.

use super::{cursor_error, idempotent, parse_limit};
use crate::app::operations::{cancel_by_ref as cancel_by_ref_use_case, cancel_message as cancel_use_case};
use crate::app::send::{send_message, SendRequest};
use crate::app::AppError;
use crate::domain::{MessageId, MessageStatus, PhoneNumber, Ref};
use crate::entrypoints::extract::{JsonBody, PathId, QueryPairs};
use crate::entrypoints::http::{ctx, json_response, public_base, ApiError};
use crate::entrypoints::openapi::{CancelByRefBody, CanceledCount, SendMessageBody};
use crate::entrypoints::resources::{ErrorBody, MessagePage, MessageResource};
use crate::wiring::Deps;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};

/// Accept one message.
#[utoipa::path(post, path = "/v1/messages", request_body = SendMessageBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a repeat with the same body")),
    responses(
        (status = 202, description = "Accepted; `status` says what happened at once", body = MessageResource),
        (status = 400, description = "Invalid input, naming the field", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "The same Idempotency-Key is still in progress (`Retry-After`)", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable; nothing was accepted (`Retry-After`)", body = ErrorBody)))]
pub async fn post_message(
    State(deps): State<Deps>,
    headers: HeaderMap,
    body: JsonBody<SendRequest>,
) -> Result<Response, ApiError> {
    let cmd = body.value.validate(
        deps.config.default_region,
        &deps.config.default_sender,
        deps.clock.now(),
    )?;
    let base = public_base(&deps, &headers);
    let deps_ref = &deps;
    idempotent(&deps, &headers, &body.raw, "messages", || async move {
        let outcome = send_message(ctx(deps_ref, &base), cmd).await?;
        let mut resource = MessageResource::from(&outcome.message);
        resource.warning = outcome.warning;
        Ok((StatusCode::ACCEPTED, serde_json::to_value(resource).unwrap_or_default()))
    })
    .await
}

/// A recipient's messages, newest first.
#[utoipa::path(get, path = "/v1/messages",
    params(
        ("to" = String, Query, description = "Recipient (E.164 or national format)"),
        ("status" = Option<String>, Query, description = "Only messages with this status"),
        ("limit" = Option<u32>, Query, description = "1-200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses(
        (status = 200, description = "A page", body = MessagePage),
        (status = 400, description = "Missing or invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list_messages(State(deps): State<Deps>, query: QueryPairs) -> Result<Response, ApiError> {
    let to_raw = query
        .get("to")
        .ok_or_else(|| AppError::invalid("missing_field", "to", "`to` is required to list messages"))?;
    let to = PhoneNumber::parse(to_raw, deps.config.default_region)
        .map_err(|e| AppError::invalid("invalid_phone", "to", format!("`to` is not a valid phone number: {e}")))?;
    let status = query
        .get("status")
        .map(|s| {
            s.parse::<MessageStatus>()
                .map_err(|_| AppError::invalid("invalid_status", "status", "unknown status"))
        })
        .transpose()?;
    let limit = parse_limit(query.get("limit"))?;
    let page = deps
        .messages
        .list_messages_to(&to, status, limit, query.get("cursor"))
        .await
        .map_err(cursor_error)?;
    Ok(json_response(
        StatusCode::OK,
        &MessagePage {
            data: page.items.iter().map(MessageResource::from).collect(),
            has_more: page.next_cursor.is_some(),
            next_cursor: page.next_cursor,
        },
    ))
}

/// One message.
#[utoipa::path(get, path = "/v1/messages/{id}",
    params(("id" = String, Path, description = "`msg_` + ULID")),
    responses(
        (status = 200, description = "The message", body = MessageResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown message", body = ErrorBody)))]
pub async fn get_message(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let id = MessageId::parse(&id).map_err(|_| AppError::NotFound)?;
    let message = deps
        .messages
        .get_message(&id)
        .await
        .map_err(AppError::from)?
        .ok_or(AppError::NotFound)?;
    Ok(json_response(StatusCode::OK, &MessageResource::from(&message)))
}

/// Cancel one message not yet handed to the provider.
#[utoipa::path(post, path = "/v1/messages/{id}/cancel",
    params(("id" = String, Path, description = "`msg_` + ULID")),
    responses(
        (status = 200, description = "Canceled", body = MessageResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown message", body = ErrorBody),
        (status = 409, description = "`already_sent`: it was handed to the provider", body = ErrorBody)))]
pub async fn cancel_message(
    State(deps): State<Deps>,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let id = MessageId::parse(&id).map_err(|_| AppError::NotFound)?;
    let base = public_base(&deps, &headers);
    let m = cancel_use_case(ctx(&deps, &base), &id).await?;
    Ok(json_response(StatusCode::OK, &MessageResource::from(&m)))
}

/// The body of `POST /v1/messages/cancel`.
#[derive(Debug, serde::Deserialize)]
pub struct CancelByRef {
    /// The caller's entity.
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
}

/// Cancel every scheduled or queued message linked to an entity.
#[utoipa::path(post, path = "/v1/messages/cancel", request_body = CancelByRefBody,
    responses(
        (status = 200, description = "How many were canceled", body = CanceledCount),
        (status = 400, description = "Missing or invalid `ref`", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn cancel_by_ref(State(deps): State<Deps>, body: JsonBody<CancelByRef>) -> Result<Response, ApiError> {
    let reference = body
        .value
        .reference
        .filter(|r| !r.kind.is_empty() && !r.id.is_empty())
        .ok_or_else(|| AppError::invalid("missing_field", "ref", "`ref` with `type` and `id` is required"))?;
    let canceled = cancel_by_ref_use_case(ctx(&deps, ""), deps.queries.as_ref(), &reference).await?;
    Ok(json_response(StatusCode::OK, &CanceledCount { canceled }))
}
