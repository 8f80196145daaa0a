//! Lambda `batch`: API Gateway HTTP API: `POST /v1/batches` (up to 1,000 messages, per-item results)
//! and `GET /v1/batches/{id}`.

use lambda_http::{run, service_fn, Error};
use smsrelay::entrypoints::{lambda, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |req| async move {
        lambda::handle(deps, Routes::Batch, req).await
    }))
    .await
}
