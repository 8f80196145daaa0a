//! Lambda `send`: API Gateway HTTP API: POST /v1/messages, GET /v1/messages[/{id}], cancels, GET /health, GET /openapi.json.
//! The routes are the `Send` entry of the shared route table (`smsrelay::entrypoints::routes`).

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::Send)).await
}
