//! The `batch` group: `POST /v1/batches` and `GET /v1/batches/{id}`.

use super::{idempotent, BATCH_BUDGET};
use crate::app::send::SendRequest;
use crate::app::send_batch::{batch_summary, send_batch, BatchRequest};
use crate::app::AppError;
use crate::entrypoints::extract::{JsonBody, PathId};
use crate::entrypoints::http::{ctx, json_response, public_base, ApiError};
use crate::entrypoints::openapi::{BatchAccepted, BatchBody, BatchSummary};
use crate::entrypoints::resources::ErrorBody;
use crate::entrypoints::strict_json;
use crate::wiring::Deps;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};

/// Accept up to 1,000 messages, with a result per item.
#[utoipa::path(post, path = "/v1/batches", request_body = BatchBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a repeat with the same body")),
    responses(
        (status = 200, description = "A result per item; items not finished in time are `queued`", body = BatchAccepted),
        (status = 400, description = "Malformed body or missing `messages`", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "The same Idempotency-Key is still in progress (`Retry-After`)", body = ErrorBody),
        (status = 413, description = "Over 1,000 messages or 256 KiB", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 503, description = "Temporarily unavailable; nothing was accepted (`Retry-After`)", body = ErrorBody)))]
pub async fn post_batch(
    State(deps): State<Deps>,
    headers: HeaderMap,
    body: JsonBody<BatchRequest>,
) -> Result<Response, ApiError> {
    // Items are parsed one by one in the use case (a bad item is rejected alone), so their
    // shape is checked here: an item, or a struct inside it, given as an array is a 400.
    if let Some(items) = body.tree.get("messages").and_then(|m| m.as_array()) {
        for (index, item) in items.iter().enumerate() {
            strict_json::check_shape::<SendRequest>(item, &format!("messages[{index}]"))?;
        }
    }
    let base = public_base(&deps, &headers);
    let deps_ref = &deps;
    let request = body.value;
    idempotent(&deps, &headers, &body.raw, "batches", || async move {
        let out = send_batch(ctx(deps_ref, &base), request, BATCH_BUDGET).await?;
        Ok((StatusCode::OK, out))
    })
    .await
}

/// Counts by status of one batch.
#[utoipa::path(get, path = "/v1/batches/{id}",
    params(("id" = String, Path, description = "`bat_` + ULID")),
    responses(
        (status = 200, description = "The batch's counts", body = BatchSummary),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown batch", body = ErrorBody)))]
pub async fn get_batch(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let summary = batch_summary(ctx(&deps, ""), &id).await?.ok_or(AppError::NotFound)?;
    Ok(json_response(StatusCode::OK, &summary))
}
