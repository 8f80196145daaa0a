//! Lambda `admin`: API Gateway HTTP API: the failed-message list, retry and removal, `POST /v1/processor/run`, `GET /v1/health`.
//! The routes are the `Admin` entry of the shared route table (`smsrelay::entrypoints::routes`).

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::Admin)).await
}
