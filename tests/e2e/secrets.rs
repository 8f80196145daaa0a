//! Secrets come from Secrets Manager (on the moto emulator): references in, values out.

use secrecy::ExposeSecret;
use smsrelay::adapters::secrets::{resolve_secrets, SecretError};
use smsrelay::config::Config;
use std::collections::HashMap;

async fn client() -> aws_sdk_secretsmanager::Client {
    let endpoint = std::env::var("SMSRELAY_TEST_SQS_URL")
        .expect("SMSRELAY_TEST_SQS_URL is not set: run scripts/test.sh, which starts the AWS emulator");
    let conf = aws_sdk_secretsmanager::config::Builder::new()
        .http_client(smsrelay::wiring::aws_http_client())
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

#[tokio::test]
async fn api_key_twilio_token_and_slack_url_are_read_from_one_json_secret() {
    let sm = client().await;
    let name = format!("smsrelay-{}", ulid::Ulid::new().to_string().to_lowercase());
    sm.create_secret()
        .name(&name)
        .secret_string(r#"{"api_key": "live-key-1", "api_keys": "admin:live-key-2,send:form-key", "twilio_auth_token": "tok-2", "slack_webhook_url": "https://hooks.slack.test/T/B/x"}"#)
        .send()
        .await
        .expect("create secret");
    let refs: HashMap<&str, String> = [
        ("SMSRELAY_API_KEY_SECRET", format!("{name}#api_key")),
        ("SMSRELAY_API_KEYS_SECRET", format!("{name}#api_keys")),
        ("TWILIO_AUTH_TOKEN_SECRET", format!("{name}#twilio_auth_token")),
        ("SLACK_WEBHOOK_URL_SECRET", format!("{name}#slack_webhook_url")),
        ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000".to_owned()),
    ]
    .into_iter()
    .collect();
    let env = |k: &str| refs.get(k).cloned();
    let resolved = resolve_secrets(&sm, env).await.expect("resolve");
    assert!(resolved.get("SMSRELAY_API_KEY").is_some());
    // The configuration reads the values, as the Lambda wiring gives them, never a placeholder.
    let cfg = Config::from_lookup(resolved.lookup(env)).expect("valid once resolved");
    assert_eq!(cfg.api_key.expose_secret(), "live-key-1");
    let keys: Vec<(&str, &str)> = cfg
        .api_keys
        .iter()
        .map(|k| (k.scope.name(), k.key.expose_secret()))
        .collect();
    assert_eq!(
        keys,
        [("admin", "live-key-1"), ("admin", "live-key-2"), ("send", "form-key")],
        "the single key and the scoped list, both from the secret"
    );
    assert_eq!(cfg.twilio.as_ref().expect("twilio").auth_token.expose_secret(), "tok-2");
    assert_eq!(
        cfg.slack_webhook_url.as_ref().expect("slack").expose_secret(),
        "https://hooks.slack.test/T/B/x"
    );
}

#[tokio::test]
async fn a_missing_secret_or_key_is_an_error_that_names_the_reference_not_a_value() {
    let sm = client().await;
    let name = format!("smsrelay-{}", ulid::Ulid::new().to_string().to_lowercase());
    sm.create_secret()
        .name(&name)
        .secret_string(r#"{"api_key": "k"}"#)
        .send()
        .await
        .expect("create");
    let missing_key = format!("{name}#nope");
    let err = resolve_secrets(&sm, |k| (k == "SMSRELAY_API_KEY_SECRET").then(|| missing_key.clone()))
        .await
        .expect_err("no such key");
    assert!(matches!(err, SecretError::Missing { .. }));
    let err = resolve_secrets(&sm, |k| {
        (k == "SMSRELAY_API_KEY_SECRET").then(|| "does-not-exist".to_owned())
    })
    .await
    .expect_err("no such secret");
    assert!(matches!(err, SecretError::Fetch { .. }));
    assert!(err.to_string().contains("does-not-exist"));
}
