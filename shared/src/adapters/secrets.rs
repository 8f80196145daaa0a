//! Secrets from AWS Secrets Manager, read once per cold start. Environment variables carry only
//! secret *references* (`<secret id or ARN>` or `<secret id or ARN>#<json key>`), never values;
//! template.yaml passes names. Values land in `SecretString`s and are never logged.

use crate::config::Config;
use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;
use std::collections::HashMap;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager refused or failed (the reference is named, never the value).
    #[error("secret {reference} could not be read")]
    Fetch {
        /// The reference as configured.
        reference: String,
        /// The SDK error.
        #[source]
        source: anyhow::Error,
    },
    /// The secret is not JSON, or has no such key, or the value is empty.
    #[error("secret {reference} has no usable value")]
    Missing {
        /// The reference as configured.
        reference: String,
    },
}

/// Read `reference` (`id` or `id#key`), caching each secret id within one call site.
async fn read(
    client: &Client,
    cache: &mut HashMap<String, String>,
    reference: &str,
) -> Result<SecretString, SecretError> {
    let (id, key) = match reference.split_once('#') {
        Some((id, key)) => (id, Some(key)),
        None => (reference, None),
    };
    let raw = match cache.get(id) {
        Some(v) => v.clone(),
        None => {
            let out = client
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| SecretError::Fetch {
                    reference: reference.to_owned(),
                    source: anyhow::Error::new(e),
                })?;
            let v = out.secret_string().unwrap_or_default().to_owned();
            cache.insert(id.to_owned(), v.clone());
            v
        }
    };
    let missing = || SecretError::Missing {
        reference: reference.to_owned(),
    };
    let value = match key {
        None => raw,
        Some(k) => serde_json::from_str::<serde_json::Value>(&raw)
            .ok()
            .and_then(|j| j.get(k).and_then(|v| v.as_str()).map(str::to_owned))
            .ok_or_else(missing)?,
    };
    if value.trim().is_empty() {
        return Err(missing());
    }
    Ok(SecretString::from(value))
}

/// Fill the secret values of `config` from the references in `get`
/// (`SMSRELAY_API_KEY_SECRET`, `TWILIO_AUTH_TOKEN_SECRET`, `SLACK_WEBHOOK_URL_SECRET`).
/// Returns whether an API key was provided this way.
///
/// # Errors
/// The first reference that cannot be read.
pub async fn resolve_secrets(
    config: &mut Config,
    client: &Client,
    get: impl Fn(&str) -> Option<String>,
) -> Result<bool, SecretError> {
    let mut cache = HashMap::new();
    let mut api_key = false;
    if let Some(r) = get("SMSRELAY_API_KEY_SECRET") {
        config.api_key = read(client, &mut cache, &r).await?;
        api_key = true;
    }
    if let (Some(r), Some(t)) = (get("TWILIO_AUTH_TOKEN_SECRET"), config.twilio.as_mut()) {
        t.auth_token = read(client, &mut cache, &r).await?;
    }
    if let Some(r) = get("SLACK_WEBHOOK_URL_SECRET") {
        config.slack_webhook_url = Some(read(client, &mut cache, &r).await?);
    }
    if let Some(r) = get("RETELL_API_KEY_SECRET") {
        config.retell_api_key = Some(read(client, &mut cache, &r).await?);
    }
    Ok(api_key)
}
