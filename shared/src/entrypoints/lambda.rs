//! Lambda adapter: API Gateway HTTP API (payload 2.0) events through the group's router.
//!
//! A binary runs `lambda_http::run(entrypoints::router(deps, Routes::Send))` (the runtime's
//! `http-axum` example). `lambda_http` has already decoded `isBase64Encoded` bodies (API Gateway
//! base64-encodes form-encoded Twilio callbacks), so the router sees the raw bytes the provider
//! signed. [`handle`] does the same for one event, for tests.

use super::routes::{router, Routes};
use crate::wiring::Deps;
use http_body_util::BodyExt;
use lambda_http::{Body, Error, Request, Response};
use tower::ServiceExt;

/// Handle one API Gateway request with the routes of one function.
///
/// # Errors
/// Never in practice: every failure becomes an HTTP error response.
pub async fn handle(deps: &Deps, routes: Routes, req: Request) -> Result<Response<Body>, Error> {
    let resp = match router(deps.clone(), routes).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(s) if s.is_empty() => Body::Empty,
        Ok(s) => Body::Text(s),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Ok(Response::from_parts(parts, body))
}
