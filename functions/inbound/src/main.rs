//! Lambda `inbound`: API Gateway HTTP API: POST /webhooks/twilio/inbound (Twilio incoming
//! messages) and POST /webhooks/retell (Retell chat webhooks). Verify, record, queue; never a
//! model call. The routes are the `Inbound` entry of the shared route table.

use lambda_http::{run, Error};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    run(router(deps, Routes::Inbound)).await
}
