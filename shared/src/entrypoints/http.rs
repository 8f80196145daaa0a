//! The single mapping from `AppError` (and HTTP-level refusals) to a response in the docs/api.md error
//! shape `{"error": {"code", "message", "field"}}`, plus the small helpers every handler shares.
//!
//! Order of checks on every request (see `routes::router`): URI / header size (414 / 431) → body
//! read within the size limit and the timeout (413 / 408 / 400) → route (404 / 405) → auth:
//! bearer key (401) or provider signature (403) → parse (400) → use case. Nothing reaches the
//! store or the provider before all of them pass.

use super::resources::{ErrorBody, ErrorDetail};
use super::routes::{router, Routes};
use super::strict_json::JsonError;
use crate::app::{AppError, Ctx};
use crate::wiring::Deps;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde::Serialize;
use std::borrow::Cow;
use tower::ServiceExt;

/// A request with its whole body.
pub type HttpRequest = Request<Bytes>;
/// A response with its whole body.
pub type HttpResponse = http::Response<Bytes>;

/// Handle one buffered request with the routes of `routes`, through the same router Lambda and
/// smsrelay-local serve (tests call this). Never panics and never answers 500 for bad input.
pub async fn handle(deps: &Deps, routes: Routes, req: HttpRequest) -> HttpResponse {
    let resp = match router(deps.clone(), routes).oneshot(req.map(Body::from)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            tracing::warn!(error.message = %e, "response body could not be read");
            Bytes::new()
        }
    };
    http::Response::from_parts(parts, bytes)
}

/// A use-case error on its way to the client; handlers return `Result<_, ApiError>`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<JsonError> for ApiError {
    fn from(e: JsonError) -> Self {
        Self(AppError::Validation {
            code: e.code,
            message: e.message,
            field: e.field.map(Cow::Owned),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = error_response(&self.0);
        let severe = matches!(self.0, AppError::Transient(_) | AppError::Unexpected(_));
        let message = self.0.to_string();
        resp.extensions_mut().insert(Refusal {
            severe,
            message,
            chain: Cause(severe.then(|| std::sync::Arc::new(self.0))),
        });
        resp
    }
}

/// Attached to error responses so the logging layer can log them once, with method and path.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// A 5xx: logged as an error with its cause chain.
    pub severe: bool,
    /// The error's text.
    pub message: String,
    /// The error (severe only), logged as its `Debug` chain.
    pub chain: Cause,
}

/// A severe error's cause, formatted (`Debug`: the error and its sources) only when its log line
/// is written: a 503 per request while the store is down does not format a chain nobody reads.
#[derive(Clone, Default)]
pub struct Cause(Option<std::sync::Arc<AppError>>);

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(e) => write!(f, "{e:?}"),
            None => Ok(()),
        }
    }
}

/// A JSON response.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An error in the docs/api.md shape.
pub fn error_body(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut resp = json_response(
        status,
        &ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
                field: field.map(str::to_owned),
            },
        },
    );
    resp.extensions_mut().insert(Refusal {
        severe: status.is_server_error(),
        message: message.to_owned(),
        chain: Cause::default(),
    });
    resp
}

/// The one mapping from `AppError` to status and body (docs/api.md "Errors"). Only a 503 and a 409
/// `request_in_progress` carry `Retry-After`: trying again later can succeed for them alone.
pub fn error_response(e: &AppError) -> Response {
    let (status, code, field): (StatusCode, &str, Option<&str>) = match e {
        AppError::Validation { code, field, .. } => (StatusCode::BAD_REQUEST, code, field.as_deref()),
        AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
        AppError::Forbidden => (StatusCode::FORBIDDEN, "invalid_signature", None),
        AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
        AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code, None),
        AppError::Refused { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code, None),
        AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
        AppError::Transient(_) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", None),
        AppError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
    };
    let mut resp = error_body(status, code, &e.to_string(), field);
    let retry = match e {
        AppError::Transient(_) => true,
        AppError::Conflict { code, .. } => *code == "request_in_progress",
        _ => false,
    };
    if retry {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Borrow the use-case context from the dependencies.
pub fn ctx<'a>(deps: &'a Deps, base: &'a str) -> Ctx<'a> {
    deps.ctx(base)
}

/// The base URL the provider calls (and signs): the configured public URL, else what the request says.
pub fn public_base(deps: &Deps, headers: &HeaderMap) -> String {
    if let Some(u) = &deps.config.public_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("https");
    format!("{proto}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_request_in_progress_and_503_carry_retry_after() {
        let conflict = |code| AppError::Conflict {
            code,
            message: "x".to_owned(),
        };
        assert!(error_response(&conflict("request_in_progress"))
            .headers()
            .contains_key(header::RETRY_AFTER));
        assert!(!error_response(&conflict("already_sent"))
            .headers()
            .contains_key(header::RETRY_AFTER));
        let transient = AppError::Transient(crate::ports::StoreError::Throttled);
        assert!(error_response(&transient).headers().contains_key(header::RETRY_AFTER));
        assert!(!error_response(&AppError::NotFound)
            .headers()
            .contains_key(header::RETRY_AFTER));
    }
}
