//! Lambda `admin`: API Gateway HTTP API: the failed-message list, retry and removal, and
//! `POST /v1/processor/run`.

use lambda_http::{run, service_fn, Error};
use smsrelay::entrypoints::{lambda, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |req| async move {
        lambda::handle(deps, Routes::Admin, req).await
    }))
    .await
}
