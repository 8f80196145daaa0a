//! Lambda `status-callback`: API Gateway HTTP API: POST /webhooks/twilio/status (Twilio status callbacks).

use lambda_http::{run, service_fn, Error};
use smsrelay::entrypoints::{lambda, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |req| async move {
        lambda::handle(deps, Routes::StatusCallback, req).await
    }))
    .await
}
