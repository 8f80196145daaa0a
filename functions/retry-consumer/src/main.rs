//! Lambda `retry-consumer`: SQS retry queue (ReportBatchItemFailures; dead-letter queue after
//! maxReceiveCount). One job = one claimed provider attempt.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use smsrelay::entrypoints::jobs::lambda::handle_sqs;
use smsrelay::wiring::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    smsrelay::telemetry::init();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(handle_sqs(deps, event.payload).await)
    }))
    .await
}
