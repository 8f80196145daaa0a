//! Lambda `campaigns`: API Gateway HTTP API: /v1/conversations… (a phone's conversations, one
//! conversation, a person's reply, the outcome). The routes are the `Campaigns` entry of the
//! shared route table; campaigns, leads and enrolments join it with issue #11.

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::Campaigns)).await
}
