//! Extractors written once for every route: a strict JSON body, the query string as decoded
//! pairs, a Twilio-signed form, and the bearer-key check the `/v1` layer runs.
//! They refuse in the docs/api.md error shape; none of them touches the store.

use super::http::{public_base, ApiError};
use super::strict_json;
use crate::adapters::twilio::validate_signature;
use crate::app::AppError;
use crate::config::{Config, Scope, MAX_BODY_BYTES};
use crate::wiring::Deps;
use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use subtle::ConstantTimeEq;

/// A JSON body read strictly (see [`strict_json`]): the typed value, the parsed tree and the raw
/// bytes (idempotency hashes them).
#[derive(Debug)]
pub struct JsonBody<T> {
    /// The typed body.
    pub value: T,
    /// The body as parsed.
    pub tree: Value,
    /// The bytes as received.
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let raw = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError(AppError::Validation {
                code: "invalid_request_body",
                message: "the request body could not be read".to_owned(),
                field: None,
            })
        })?;
        let (value, tree) = strict_json::from_slice(&raw)?;
        Ok(Self { value, tree, raw })
    }
}

/// The decoded `?name=value` pairs of the query string.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    /// Decode a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self::parse(parts.uri.query()))
    }
}

/// The one `{id}` segment of a route; a segment that does not decode is a 404 like an unknown id.
#[derive(Debug, Clone)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| Self(id))
            .map_err(|_| ApiError(AppError::NotFound))
    }
}

/// A form-encoded webhook whose `X-Twilio-Signature` is valid over the public URL and every
/// parameter; anything else is 403 before the body is looked at further.
#[derive(Debug)]
pub struct TwilioForm {
    /// The form parameters.
    pub params: QueryPairs,
    /// The query string of the URL Twilio called.
    pub query: QueryPairs,
    /// The public base URL (callbacks the use case schedules go there too).
    pub base: String,
}

impl FromRequest<Deps> for TwilioForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, deps: &Deps) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let signature = parts
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or(AppError::Forbidden)?
            .to_owned();
        let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| AppError::Forbidden)?;
        let base = public_base(deps, &parts.headers);
        let mut url = format!("{base}{}", parts.uri.path());
        if let Some(q) = parts.uri.query() {
            url.push('?');
            url.push_str(q);
        }
        let params = QueryPairs(url::form_urlencoded::parse(&bytes).into_owned().collect());
        let token = deps.config.webhook_auth_token();
        if !validate_signature(token.expose_secret(), &url, &params.0, &signature) {
            return Err(AppError::Forbidden.into());
        }
        Ok(Self {
            params,
            query: QueryPairs::parse(parts.uri.query()),
            base,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer x` and `BEARER x` count too.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Check the bearer key against every configured key in constant time (both sides hashed first,
/// so length leaks nothing, and every key compared, so which one matched leaks nothing) and
/// return the scope of the one that matched.
///
/// # Errors
/// `Unauthorized` (401) when the header is missing, of another scheme, or the key is unknown.
pub fn authorize(config: &Config, headers: &HeaderMap) -> Result<Scope, AppError> {
    let given = bearer_token(headers).ok_or(AppError::Unauthorized)?;
    key_scope(config, given).ok_or(AppError::Unauthorized)
}

/// The scope of `given` if it is one of the configured keys (constant time, see [`authorize`]).
pub fn key_scope(config: &Config, given: &str) -> Option<Scope> {
    let a = Sha256::digest(given.as_bytes());
    let mut found = None;
    for k in &config.api_keys {
        let b = Sha256::digest(k.key.expose_secret().as_bytes());
        if bool::from(a.ct_eq(&b)) && found.is_none() {
            found = Some(k.scope);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
        h
    }

    fn config(key: &str) -> Config {
        let key = key.to_owned();
        Config::from_lookup(move |k| (k == "SMSRELAY_API_KEY").then(|| key.clone())).expect("config")
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer k1", "bearer k1", "BEARER k1", "bEaReR   k1 "] {
            assert_eq!(bearer_token(&with_auth(v)), Some("k1"), "{v}");
            assert!(authorize(&config("k1"), &with_auth(v)).is_ok(), "{v}");
        }
    }

    #[test]
    fn other_schemes_missing_and_wrong_keys_are_refused() {
        let c = config("k1");
        for v in ["Basic k1", "Bearerk1", "k1", "Bearer k2", "Bearer "] {
            assert!(
                matches!(authorize(&c, &with_auth(v)), Err(AppError::Unauthorized)),
                "{v}"
            );
        }
        assert!(matches!(authorize(&c, &HeaderMap::new()), Err(AppError::Unauthorized)));
    }

    #[test]
    fn each_key_answers_with_its_own_scope() {
        let c = Config::from_lookup(|k| (k == "SMSRELAY_API_KEYS").then(|| "admin:a1,admin:a2,send:s1".to_owned()))
            .expect("config");
        assert_eq!(authorize(&c, &with_auth("Bearer a1")).ok(), Some(Scope::Admin));
        assert_eq!(authorize(&c, &with_auth("Bearer a2")).ok(), Some(Scope::Admin));
        assert_eq!(authorize(&c, &with_auth("Bearer s1")).ok(), Some(Scope::Send));
        assert!(authorize(&c, &with_auth("Bearer s2")).is_err());
    }

    #[test]
    fn query_pairs_decode_and_keep_the_first_value() {
        let q = QueryPairs::parse(Some("to=%2B14155550100&limit=2&limit=3"));
        assert_eq!(q.get("to"), Some("+14155550100"));
        assert_eq!(q.get("limit"), Some("2"));
        assert_eq!(q.get("cursor"), None);
    }
}
