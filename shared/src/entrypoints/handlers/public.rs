//! The `public` group (no auth): `GET /health` and `GET /openapi.json`.

use crate::app::health::quick_status;
use crate::entrypoints::http::{ctx, json_response};
use crate::entrypoints::openapi::{document_json, PublicHealth};
use crate::entrypoints::resources::timestamp;
use crate::wiring::Deps;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

/// `{"status", "version", "time"}` plus `extra`'s fields.
pub fn health_body(deps: &Deps, status: &str, extra: Option<Value>) -> Value {
    let mut body =
        json!({"status": status, "version": env!("CARGO_PKG_VERSION"), "time": timestamp(&deps.clock.now())});
    if let (Some(Value::Object(more)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.extend(more);
    }
    body
}

/// Liveness for anyone: reads only the dead letters and the processor heartbeat.
#[utoipa::path(get, path = "/health",
    responses((status = 200, description = "`ok` or `degraded`", body = PublicHealth)))]
pub async fn health(State(deps): State<Deps>) -> Response {
    let status = match quick_status(ctx(&deps, "")).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error.message = %e, "health check could not read its figures");
            "degraded"
        }
    };
    json_response(StatusCode::OK, &health_body(&deps, status, None))
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json() -> Response {
    let mut resp = Response::new(Body::from(document_json()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
