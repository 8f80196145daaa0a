//! Secrets from AWS Secrets Manager, read once per cold start. Environment variables carry only
//! secret *references* (`<secret id or ARN>` or `<secret id or ARN>#<json key>`), never values;
//! template.yaml passes names. Values land in `SecretString`s and are never logged.
//!
//! They are resolved before configuration is read: [`ResolvedSecrets::lookup`] hands
//! `Config::from_lookup` the values under the names of the variables they stand for, so the
//! configuration never holds a placeholder for a secret it has not seen.

use crate::config::SECRET_REFERENCES;
use aws_sdk_secretsmanager::Client;
use secrecy::ExposeSecret;
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

/// Secret values read through their references, under the name of the variable each stands for
/// (`TWILIO_AUTH_TOKEN_SECRET`'s value as `TWILIO_AUTH_TOKEN`, see `config::SECRET_REFERENCES`).
#[derive(Default)]
pub struct ResolvedSecrets(HashMap<&'static str, SecretString>);

impl std::fmt::Debug for ResolvedSecrets {
    /// The variables resolved, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().copied().collect();
        names.sort_unstable();
        f.debug_tuple("ResolvedSecrets").field(&names).finish()
    }
}

impl ResolvedSecrets {
    /// The value that stands for `var` (e.g. `SMSRELAY_API_KEY`), if a reference provided it.
    pub fn get(&self, var: &str) -> Option<&SecretString> {
        self.0.get(var)
    }

    /// A lookup for `Config::from_lookup`: a resolved value first, else `env`'s; the reference
    /// variables themselves read as absent, since they have been resolved.
    pub fn lookup<'a>(&'a self, env: impl Fn(&str) -> Option<String> + 'a) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            if SECRET_REFERENCES.iter().any(|(reference, _)| *reference == k) {
                return None;
            }
            match self.0.get(k) {
                Some(v) => Some(v.expose_secret().to_owned()),
                None => env(k),
            }
        }
    }
}

/// Read every reference `get` names (`SMSRELAY_API_KEY_SECRET`, `TWILIO_AUTH_TOKEN_SECRET`,
/// `SLACK_WEBHOOK_URL_SECRET`), each secret id once.
///
/// # Errors
/// The first reference that cannot be read.
pub async fn resolve_secrets(
    client: &Client,
    get: impl Fn(&str) -> Option<String>,
) -> Result<ResolvedSecrets, SecretError> {
    let mut cache = HashMap::new();
    let mut resolved = ResolvedSecrets::default();
    for (reference, var) in SECRET_REFERENCES {
        if let Some(r) = get(reference) {
            resolved.0.insert(var, read(client, &mut cache, &r).await?);
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn resolved_values_stand_in_for_their_variables_and_hide_the_references() {
        let mut resolved = ResolvedSecrets::default();
        resolved.0.insert("TWILIO_AUTH_TOKEN", SecretString::from("tok-2"));
        let env = |k: &str| match k {
            "TWILIO_ACCOUNT_SID" => Some("AC00000000000000000000000000000000".to_owned()),
            "TWILIO_AUTH_TOKEN_SECRET" => Some("smsrelay#twilio_auth_token".to_owned()),
            _ => None,
        };
        let config = Config::from_lookup(resolved.lookup(env)).expect("valid once resolved");
        let twilio = config.twilio.expect("Twilio");
        assert_eq!(twilio.auth_token.expose_secret(), "tok-2");
    }
}
