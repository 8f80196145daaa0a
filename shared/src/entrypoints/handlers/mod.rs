//! Route handlers, one file per function group; each carries its `#[utoipa::path]`, which is
//! both the route's place in the table (`routes!`) and its OpenAPI description. Handlers stay
//! thin: extract, call one use case, shape the answer.

pub mod admin;
pub mod batches;
pub mod campaigns;
pub mod conversations;
pub mod inbound;
pub mod local;
pub mod messages;
pub mod public;
pub mod webhooks;

use super::http::ApiError;
use crate::app::AppError;
use crate::ports::{Begin, SavedResponse};
use crate::wiring::Deps;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long `POST /v1/batches` sends before leaving the rest to the retry queue (API Gateway
/// answers within 29 s).
const BATCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// How long `POST /v1/processor/run` may work before leaving the rest for the next tick.
const PROCESSOR_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Run `work` under the request's `Idempotency-Key`, if it has one (docs/api.md "Conventions"):
/// a repeat with the same body replays the first response (`Idempotent-Replayed: true`), a
/// different body is 422 `idempotency_key_reused`, a repeat while the first runs is 409.
/// Input is validated before this is called, so a 400 never claims a key.
async fn idempotent<F, Fut>(
    deps: &Deps,
    headers: &HeaderMap,
    raw_body: &[u8],
    scope: &str,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, Value), AppError>>,
{
    let Some(raw) = headers.get("idempotency-key") else {
        let (status, body) = work().await?;
        return Ok(json_bytes(status, Bytes::from(body.to_string())));
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            AppError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })?;
    let key = format!("{scope}:{key}");
    let hash: String = Sha256::digest(raw_body).iter().map(|b| format!("{b:02x}")).collect();
    let now = deps.clock.now();
    match deps.idempotency.begin(&key, &hash, now).await.map_err(AppError::from)? {
        Begin::Replay(saved) => {
            let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
            let mut resp = json_bytes(status, Bytes::from(saved.body));
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
        Begin::InProgress => Err(AppError::Conflict {
            code: "request_in_progress",
            message: "a request with this Idempotency-Key is still in progress".to_owned(),
        }
        .into()),
        Begin::Mismatch => Err(AppError::Refused {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request body".to_owned(),
        }
        .into()),
        Begin::Started => match work().await {
            Ok((status, body)) => {
                let text = body.to_string();
                let saved = SavedResponse {
                    status: status.as_u16(),
                    body: text.clone(),
                };
                if let Err(e) = deps.idempotency.complete(&key, &hash, &saved, deps.clock.now()).await {
                    tracing::error!(error.message = %e, "could not save the idempotent response; a repeat will wait for the lease");
                }
                Ok(json_bytes(status, Bytes::from(text)))
            }
            Err(e) => {
                if let Err(re) = deps.idempotency.release(&key).await {
                    tracing::warn!(error.message = %re, "could not release the idempotency key");
                }
                Err(e.into())
            }
        },
    }
}

/// `?limit=` is 1–200, default 50 (docs/api.md "Lists").
fn parse_limit(raw: Option<&str>) -> Result<usize, AppError> {
    match raw {
        None => Ok(50),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => Ok(n),
            _ => Err(AppError::invalid(
                "invalid_limit",
                "limit",
                "`limit` must be between 1 and 200",
            )),
        },
    }
}

fn cursor_error(e: crate::ports::StoreError) -> AppError {
    match e {
        crate::ports::StoreError::Corrupt(_) => AppError::invalid("invalid_cursor", "cursor", "cursor is not valid"),
        other => AppError::from(other),
    }
}
