//! Lambda `campaigns`: API Gateway HTTP API: /v1/campaigns… (create, replace, get, list, report),
//! /v1/leads (enrol, step 1 at once), /v1/enrollments… (get, resume) and /v1/conversations… (a
//! phone's conversations, one conversation, a person's reply, the outcome). The routes are the
//! `Campaigns` entry of the shared route table.

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::Campaigns)).await
}
