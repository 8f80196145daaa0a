//! Lambda adapter: API Gateway HTTP API (payload 2.0) events in, the shared router, responses out.

use super::http::{handle as handle_http, Routes};
use crate::wiring::Deps;
use bytes::Bytes;
use lambda_http::{Body, Error, Request, Response};

/// Handle one API Gateway request with the routes of one function.
///
/// `lambda_http` has already decoded `isBase64Encoded` bodies (API Gateway base64-encodes
/// form-encoded Twilio callbacks), so the router sees the raw bytes the provider signed.
///
/// # Errors
/// Never in practice: every failure becomes an HTTP error response.
pub async fn handle(deps: &Deps, routes: Routes, req: Request) -> Result<Response<Body>, Error> {
    let (parts, body) = req.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(s) => Bytes::from(s),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let resp = handle_http(deps, routes, http::Request::from_parts(parts, bytes)).await;
    let (parts, body) = resp.into_parts();
    let body = match String::from_utf8(body.to_vec()) {
        Ok(s) if s.is_empty() => Body::Empty,
        Ok(s) => Body::Text(s),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    Ok(Response::from_parts(parts, body))
}
