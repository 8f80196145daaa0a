//! Lambda `batch`: API Gateway HTTP API: `POST /v1/batches` (up to 1,000 messages, per-item results) and `GET /v1/batches/{id}`.
//! The routes are the `Batch` entry of the shared route table (`smsrelay::entrypoints::routes`).

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::Batch)).await
}
