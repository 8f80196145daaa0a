//! Middleware written once for every route group: request size limits and the body read
//! (414, 431, 413, 408, 400), the bearer key on `/v1` (401), the 404 / 405 fallbacks and the one
//! log line per refused request. All answers are in the docs/api.md error shape.

use super::extract::authorize;
use super::http::{error_body, ApiError, Refusal};
use crate::app::AppError;
use crate::config::{Config, Scope, MAX_BODY_BYTES};
use crate::wiring::Deps;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;

/// Longest path and query accepted (longer → 414).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes accepted, names and values together (more → 431).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The limits the body layer enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body (413 above).
    pub max_body: usize,
    /// How long the whole body may take to arrive (408 after).
    pub body_timeout: Duration,
}

impl Limits {
    /// docs/api.md's 256 KiB and `SMSRELAY_REQUEST_TIMEOUT`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_body: MAX_BODY_BYTES,
            body_timeout: config.request_timeout,
        }
    }
}

/// Check the URI and header sizes, then read the whole body within the size limit and the
/// timeout, so handlers get a complete body or the client a clear error: 413 over the limit,
/// 408 (and the connection closed) when the body stalls, 400 when it is malformed (a bad chunk).
pub async fn read_body(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return error_body(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request URI is over {} KiB", MAX_URI_BYTES / 1024),
            None,
        );
    }
    let header_bytes: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return error_body(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!("the request headers are over {} KiB", MAX_HEADER_BYTES / 1024),
            None,
        );
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(limits.body_timeout, Limited::new(body, limits.max_body).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return ApiError(AppError::PayloadTooLarge(format!(
                "request body is over {} KiB",
                limits.max_body / 1024
            )))
            .into_response();
        }
        Ok(Err(_)) => {
            return error_body(
                StatusCode::BAD_REQUEST,
                "invalid_request_body",
                "the request body is malformed (bad chunk or length)",
                None,
            );
        }
        Err(_elapsed) => {
            let mut resp = error_body(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!("the request body did not arrive within {:?}", limits.body_timeout),
                None,
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// `/v1` routes need `Authorization: Bearer <api key>` (401 otherwise) of a scope that allows
/// the route (403 `insufficient_scope` otherwise: a `send` key on an admin route).
pub async fn require_api_key(State((deps, needed)): State<(Deps, Scope)>, req: Request, next: Next) -> Response {
    match authorize(&deps.config, req.headers()) {
        Ok(scope) if scope.allows(needed) => next.run(req).await,
        Ok(scope) => error_body(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            &format!(
                "this API key has the {} scope; this route needs {}",
                scope.name(),
                needed.name()
            ),
            None,
        ),
        Err(e) => ApiError(e).into_response(),
    }
}

/// Unknown path: 404 in the error shape.
pub async fn not_found() -> ApiError {
    ApiError(AppError::NotFound)
}

/// Known path, other method: 405 in the error shape (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method) -> Response {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("{method} is not allowed here"),
        None,
    )
}

/// Run the handler to its end even if the client goes away. hyper drops a connection's future
/// when its client disconnects (or the request timeout answers first); a send dropped between
/// the provider's answer and its record would sit `sending` until reconciliation (measured: a
/// dozen messages each time wrk stopped). The handler runs as a task of its own and the
/// connection only waits for it, as a store call runs to its end whoever still waits
/// (`adapters::sqlite::conn::Db::call`).
pub async fn run_to_completion(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error.message = %e, "request handler failed");
            error_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the request failed; it may have been partly applied",
                None,
            )
        }
    }
}

/// Log each refused request once, with its method and path (never its body or query).
pub async fn log_refusals(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    if let Some(r) = resp.extensions().get::<Refusal>() {
        if r.severe {
            tracing::error!(%method, path, status = resp.status().as_u16(), error.message = %r.message, error.cause_chain = ?r.chain, "request failed");
        } else {
            tracing::info!(%method, path, status = resp.status().as_u16(), error.message = %r.message, "request refused");
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tower::ServiceExt as _;

    /// An error that counts how often it is formatted (anyhow's `Debug` shows its `Display`).
    struct Counted(Arc<AtomicUsize>);
    impl std::fmt::Display for Counted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fetch_add(1, Ordering::SeqCst);
            f.write_str("the disk caught fire")
        }
    }
    impl std::fmt::Debug for Counted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Display::fmt(self, f)
        }
    }
    impl std::error::Error for Counted {}

    /// A 500 through `log_refusals` under a subscriber at `level`: what it logged, and how often
    /// the error was formatted.
    async fn failed_request(level: tracing::level_filters::LevelFilter) -> (String, usize) {
        let formatted = Arc::new(AtomicUsize::new(0));
        let counter = formatted.clone();
        let fail = move || {
            let error = Counted(counter.clone());
            async move { ApiError(AppError::Unexpected(anyhow::Error::new(error))) }
        };
        let app = axum::Router::new()
            .route("/fail", axum::routing::get(fail))
            .layer(axum::middleware::from_fn(log_refusals));
        let lines = crate::telemetry::Buffer::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let req = Request::builder().uri("/fail").body(Body::empty()).expect("request");
        let resp = app.oneshot(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        (lines.text(), formatted.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_failed_request_logs_its_cause_chain_once() {
        let (text, formatted) = failed_request(tracing::level_filters::LevelFilter::INFO).await;
        assert!(text.contains("request failed"), "{text}");
        assert!(
            text.contains("the disk caught fire"),
            "the chain is in the line: {text}"
        );
        assert_eq!(formatted, 1, "{text}");
    }

    #[tokio::test]
    async fn a_failed_request_formats_no_chain_when_errors_are_not_logged() {
        let (text, formatted) = failed_request(tracing::level_filters::LevelFilter::OFF).await;
        assert!(text.is_empty(), "{text}");
        assert_eq!(formatted, 0, "a chain nobody reads is not formatted");
    }
}
