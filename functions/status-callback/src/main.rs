//! Lambda `status-callback`: API Gateway HTTP API: POST /webhooks/twilio/status (Twilio status callbacks).
//! The routes are the `StatusCallback` entry of the shared route table (`smsrelay::entrypoints::routes`).

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::StatusCallback)).await
}
