//! The Lambda cold-start path, for real: `Deps::from_env()` reads the environment as a deployed
//! function would (table, queue, event bus, a Secrets Manager reference for the API key), builds
//! its SDK clients through `AWS_ENDPOINT_URL_*` pointed at DynamoDB Local and the moto emulator,
//! and then serves a request through the `send` function's handler.
//!
//! One test in its own binary, because it sets process environment variables.

use serde_json::{json, Value};
use smsrelay::entrypoints::{lambda, Routes};
use smsrelay::wiring::Deps;

fn moto() -> String {
    std::env::var("SMSRELAY_TEST_SQS_URL").expect("SMSRELAY_TEST_SQS_URL is not set: run scripts/test.sh")
}

#[tokio::test]
async fn deps_from_env_builds_the_lambda_wiring_and_serves_a_send() {
    // Given the resources a deployment creates…
    let store = smsrelay::testing::dynamodb_local_store().await;
    let sdk_conf = |b: aws_sdk_sqs::config::Builder| {
        b.behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(moto())
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .build()
    };
    let sqs = aws_sdk_sqs::Client::from_conf(sdk_conf(
        aws_sdk_sqs::config::Builder::new().http_client(smsrelay::wiring::aws_http_client()),
    ));
    let name = format!("smsrelay-wiring-{}", ulid::Ulid::new().to_string().to_lowercase());
    let (queue_url, dlq_url) = smsrelay::adapters::sqs_queue::create_queue_pair(&sqs, &name, 5)
        .await
        .expect("queues");
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .endpoint_url(moto())
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .build(),
    );
    sm.create_secret()
        .name(&name)
        .secret_string(r#"{"api_key": "from-secrets-manager"}"#)
        .send()
        .await
        .expect("secret");

    // …and the environment template.yaml gives a function (SDK endpoints aside).
    let ddb = std::env::var("SMSRELAY_TEST_DYNAMODB_URL").expect("SMSRELAY_TEST_DYNAMODB_URL");
    let vars = [
        ("AWS_REGION", "us-east-1".to_owned()),
        // DynamoDB Local keeps one database per access key: the same one the table was made with.
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", ddb),
        ("AWS_ENDPOINT_URL_SQS", moto()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto()),
        ("SMSRELAY_TABLE", store.table().to_owned()),
        ("SMSRELAY_QUEUE_URL", queue_url),
        ("SMSRELAY_DLQ_URL", dlq_url),
        ("SMSRELAY_API_KEY_SECRET", format!("{name}#api_key")),
        (
            "SMSRELAY_PUBLIC_URL",
            "https://abc123.execute-api.us-east-1.amazonaws.com".to_owned(),
        ),
    ];
    for (k, v) in &vars {
        // This binary runs only this test, so no other thread reads the environment meanwhile.
        std::env::set_var(k, v);
    }

    // When the function starts cold…
    let deps = Deps::from_env().await.expect("cold start wiring");

    // …its API key is the secret's value, and a send is recorded in the table.
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/send-post-message.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("event"),
    )
    .expect("json");
    event["headers"]["authorization"] = json!("Bearer from-secrets-manager");
    let req = lambda_http::request::from_str(&event.to_string()).expect("event parses");
    let resp = lambda::handle(&deps, Routes::Send, req).await.expect("handler");
    let body = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        _ => String::new(),
    };
    assert_eq!(resp.status(), 202, "{body}");
    let sent: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        sent["status"], "sent",
        "the simulator (no Twilio credentials) accepted it: {sent}"
    );
    let id = smsrelay::domain::MessageId::parse(sent["id"].as_str().expect("id")).expect("id");
    assert!(store_has(&store, &id).await, "the record is in the DynamoDB table");

    // The old default key is refused.
    event["headers"]["authorization"] = json!("Bearer dev-key");
    let req = lambda_http::request::from_str(&event.to_string()).expect("event parses");
    assert_eq!(
        lambda::handle(&deps, Routes::Send, req)
            .await
            .expect("handler")
            .status(),
        401
    );
}

async fn store_has(store: &smsrelay::adapters::dynamodb::DynamoMessageStore, id: &smsrelay::domain::MessageId) -> bool {
    use smsrelay::ports::MessageStore;
    store.get_message(id).await.expect("get").is_some()
}
