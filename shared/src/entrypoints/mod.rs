//! Entrypoints: the HTTP route table shared by every Lambda function and `smsrelay-local`, the
//! layers and extractors every route uses, the OpenAPI document built from the table, and the
//! non-HTTP entrypoints (jobs). Handlers live here (not in the binaries) so tests can call them.
//!
//! - [`routes`]: groups, the table, `router(deps, Routes::X)`, `route_table()`.
//! - [`handlers`]: one file per group, each handler with its `#[utoipa::path]`.
//! - [`extract`], [`layers`], [`strict_json`]: auth, signatures, strict JSON, limits, timeouts.
//! - [`http`]: the single `AppError` → response mapping; [`resources`]: typed response bodies.
//! - [`openapi`]: the document served at `GET /openapi.json`; [`lambda`]: the Lambda adapter.

pub mod console;
pub mod extract;
pub mod handlers;
pub mod http;
pub mod jobs;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod layers;
pub mod openapi;
pub mod resources;
pub mod routes;
pub mod strict_json;

pub use self::http::{handle, HttpRequest, HttpResponse};
pub use routes::{route_table, router, Group, Route, Routes};
