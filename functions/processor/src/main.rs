//! Lambda `processor`: EventBridge rule `rate(5 minutes)`. Due retries, reconciliation of
//! unconfirmed attempts, status polling; what the budget does not reach stays due. A failed tick
//! answers a `Diagnostic` whose `errorType` names the class (`Transient`, `Unexpected`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use smsrelay::entrypoints::jobs::lambda::handle_schedule;
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(
        move |_event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| handle_schedule(deps),
    ))
    .await
}
