//! The `admin` group: the failed-message list, retry and removal, a processor tick on demand,
//! and `GET /v1/health` with metrics.

use super::{cursor_error, parse_limit, PROCESSOR_BUDGET};
use crate::app::health::health as health_use_case;
use crate::app::operations::{remove_failed as remove_use_case, retry_failed as retry_use_case};
use crate::app::AppError;
use crate::domain::MessageId;
use crate::entrypoints::extract::{PathId, QueryPairs};
use crate::entrypoints::handlers::public::health_body;
use crate::entrypoints::http::{ctx, json_response, public_base, ApiError};
use crate::entrypoints::openapi::{AdminHealth, TickReportBody};
use crate::entrypoints::resources::{ErrorBody, MessagePage, MessageResource};
use crate::wiring::Deps;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::json;

/// Failed and rate-limited messages, newest first.
#[utoipa::path(get, path = "/v1/failed-messages",
    params(
        ("limit" = Option<u32>, Query, description = "1-200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses(
        (status = 200, description = "A page", body = MessagePage),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list_failed(State(deps): State<Deps>, query: QueryPairs) -> Result<Response, ApiError> {
    let limit = parse_limit(query.get("limit"))?;
    let page = deps
        .queries
        .list_failed(limit, query.get("cursor"))
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

/// Take a message off the failed list (the record stays for audit).
#[utoipa::path(delete, path = "/v1/failed-messages/{id}",
    params(("id" = String, Path, description = "`msg_` + ULID")),
    responses(
        (status = 204, description = "Removed from the list"),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown message", body = ErrorBody)))]
pub async fn remove_failed(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let id = MessageId::parse(&id).map_err(|_| AppError::NotFound)?;
    remove_use_case(ctx(&deps, ""), &id).await?;
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

/// Send a failed message again with a fresh attempt budget.
#[utoipa::path(post, path = "/v1/failed-messages/{id}/retry",
    params(("id" = String, Path, description = "`msg_` + ULID")),
    responses(
        (status = 202, description = "Back to `queued`", body = MessageResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown, or not on the failed list", body = ErrorBody),
        (status = 422, description = "`recipient_opted_out`", body = ErrorBody)))]
pub async fn retry_failed(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let id = MessageId::parse(&id).map_err(|_| AppError::NotFound)?;
    let m = retry_use_case(ctx(&deps, ""), &id).await?;
    Ok(json_response(StatusCode::ACCEPTED, &MessageResource::from(&m)))
}

/// Run one processor tick now.
#[utoipa::path(post, path = "/v1/processor/run",
    responses(
        (status = 200, description = "What the tick did", body = TickReportBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable (`Retry-After`)", body = ErrorBody)))]
pub async fn run_processor(State(deps): State<Deps>, headers: HeaderMap) -> Result<Response, ApiError> {
    let base = public_base(&deps, &headers);
    let report = crate::entrypoints::jobs::tick(&deps, &base, PROCESSOR_BUDGET).await?;
    Ok(json_response(StatusCode::OK, &report))
}

/// Health with metrics and the alerts currently raised.
#[utoipa::path(get, path = "/v1/health",
    responses(
        (status = 200, description = "Status, metrics and alerts", body = AdminHealth),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable (`Retry-After`)", body = ErrorBody)))]
pub async fn v1_health(State(deps): State<Deps>) -> Result<Response, ApiError> {
    let h = health_use_case(ctx(&deps, ""), deps.queries.as_ref()).await?;
    let extra = json!({"metrics": h.metrics, "alerts": h.alerts});
    Ok(json_response(
        StatusCode::OK,
        &health_body(&deps, h.status, Some(extra)),
    ))
}

/// A phone's consent: opted in or out, with the history of every change and its proof.
#[utoipa::path(get, path = "/v1/consent/{phone}",
    params(("phone" = String, Path, description = "The phone, E.164 (`%2B14155550100`) or national format")),
    responses(
        (status = 200, description = "Status and history", body = crate::entrypoints::resources::ConsentResource),
        (status = 400, description = "Not a valid phone number", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn get_consent(State(deps): State<Deps>, PathId(raw): PathId) -> Result<Response, ApiError> {
    let phone = consent_phone(&deps, &raw)?;
    consent_response(&deps, &phone).await
}

/// The phone of a consent route.
fn consent_phone(deps: &Deps, raw: &str) -> Result<crate::domain::PhoneNumber, AppError> {
    crate::domain::PhoneNumber::parse(raw, deps.config.default_region).map_err(|e| {
        AppError::invalid(
            "invalid_phone",
            "phone",
            format!("`phone` is not a valid phone number: {e}"),
        )
    })
}

/// `POST /v1/consent/{phone}`.
#[derive(Debug, serde::Deserialize)]
pub struct ConsentChange {
    /// `opted_out` or `opted_in`.
    pub status: Option<String>,
}

/// The opt-out registry: an operator opts a phone out (or back in); the change is recorded in its
/// history with channel `api`, and an opt-out is honoured before the next send.
#[utoipa::path(post, path = "/v1/consent/{phone}", request_body = crate::entrypoints::openapi::ConsentChangeBody,
    params(("phone" = String, Path, description = "The phone, E.164 (`%2B14155550100`) or national format")),
    responses(
        (status = 200, description = "Status and history after the change", body = crate::entrypoints::resources::ConsentResource),
        (status = 400, description = "Invalid phone or status", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn post_consent(
    State(deps): State<Deps>,
    PathId(raw): PathId,
    body: crate::entrypoints::extract::JsonBody<ConsentChange>,
) -> Result<Response, ApiError> {
    use crate::domain::{ConsentChannel, ConsentEvidence, ConsentStatus};
    let phone = consent_phone(&deps, &raw)?;
    let status = match body.value.status.as_deref() {
        Some("opted_out") => ConsentStatus::OptedOut,
        Some("opted_in") => ConsentStatus::OptedIn,
        Some(_) => {
            return Err(AppError::invalid("invalid_status", "status", "`status` must be opted_out or opted_in").into())
        }
        None => return Err(AppError::invalid("missing_field", "status", "`status` is required").into()),
    };
    let evidence = ConsentEvidence {
        status,
        at: deps.clock.now(),
        keyword: None,
        channel: ConsentChannel::Api,
        message_sid: None,
    };
    crate::app::consent::record_consent(deps.consent.as_ref(), &phone, &evidence)
        .await
        .map_err(AppError::from)?;
    consent_response(&deps, &phone).await
}

/// A phone's consent resource (200).
async fn consent_response(deps: &Deps, phone: &crate::domain::PhoneNumber) -> Result<Response, ApiError> {
    let opted_out = deps.consent.opt_out_of(phone).await.map_err(AppError::from)?.is_some();
    let history = deps.consent.consent_history(phone).await.map_err(AppError::from)?;
    Ok(json_response(
        StatusCode::OK,
        &crate::entrypoints::resources::ConsentResource::new(phone, opted_out, &history),
    ))
}
