//! The Twilio REST client: [`TwilioSmsProvider`] implements [`SmsProvider`] over Twilio's
//! 2010-04-01 Messages API (create, fetch, list), with every failure classified for the retry policy.
//!
//! Logging never includes the auth token, the message body or a full phone number.

use super::error::{classify_error, classify_transport, mask_numbers, parse_retry_after, TwilioError};
use crate::domain::{PhoneNumber, ProviderSid};
use crate::ports::{OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, Sender, SmsProvider};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

/// Default total time for one Twilio request (connect, send, response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest `PageSize` Twilio accepts.
const MAX_PAGE_SIZE: usize = 1000;

/// How far before `since` a listed message may have been created and still be reported (Twilio's
/// clock and ours differ a little).
const LIST_CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Account credentials for HTTP Basic auth (`AccountSid:AuthToken`; an API key SID and secret work too).
#[derive(Debug, Clone)]
pub struct TwilioCredentials {
    /// `AC…` account SID (also the account in every request path).
    pub account_sid: String,
    /// The account's primary auth token (or API key secret).
    pub auth_token: SecretString,
}

/// [`SmsProvider`] backed by Twilio's REST API.
#[derive(Debug, Clone)]
pub struct TwilioSmsProvider {
    credentials: TwilioCredentials,
    api_base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl TwilioSmsProvider {
    /// A client for `api_base` (e.g. `https://api.twilio.com`; a trailing `/` is ignored), using
    /// `http` for the connections and a total timeout of [`DEFAULT_TIMEOUT`] per request.
    pub fn new(credentials: TwilioCredentials, api_base: String, http: reqwest::Client) -> Self {
        let api_base = api_base.trim_end_matches('/').to_owned();
        Self {
            credentials,
            api_base,
            http,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Use `timeout` as the total time allowed for each request instead of [`DEFAULT_TIMEOUT`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.credentials.account_sid
        )
    }

    fn message_url(&self, sid: &ProviderSid) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages/{}.json",
            self.api_base,
            self.credentials.account_sid,
            sid.as_str()
        )
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(
            &self.credentials.account_sid,
            Some(self.credentials.auth_token.expose_secret()),
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(self.timeout)
    }

    /// Send the request and read the whole answer: `(status, body)` on any HTTP status, the
    /// classified failure when no complete answer came back.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(u16, Option<Duration>, String), ProviderError> {
        let resp = self
            .authed(req)
            .send()
            .await
            .map_err(|e| classify_transport(e, self.timeout))?;
        let status = resp.status().as_u16();
        let retry_after = parse_retry_after(
            resp.headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp.text().await.map_err(|e| classify_transport(e, self.timeout))?;
        Ok((status, retry_after, body))
    }
}

/// A Twilio error answer seen where no lookup happened: a 404 means a misconfigured endpoint.
fn not_a_lookup(err: ProviderError) -> ProviderError {
    match err {
        ProviderError::NotFound => ProviderError::Unexpected(TwilioError::EndpointNotFound.into()),
        other => other,
    }
}

fn log_failure(op: &'static str, http_status: Option<u16>, err: &ProviderError) {
    match err {
        ProviderError::Rejected { code, .. } => tracing::info!(op, ?http_status, code, "twilio rejected the request"),
        ProviderError::NotFound => tracing::info!(op, ?http_status, "twilio has no such message"),
        ProviderError::Unexpected(cause) => {
            tracing::warn!(op, ?http_status, cause = %format!("{cause:#}"), "twilio request failed unexpectedly")
        }
        other => {
            tracing::warn!(op, ?http_status, error = %other, retryable = other.is_retryable(), "twilio request failed")
        }
    }
}

#[async_trait]
impl SmsProvider for TwilioSmsProvider {
    async fn send(&self, sms: &OutboundSms) -> Result<ProviderAccepted, ProviderError> {
        let mut form: Vec<(&str, &str)> = vec![("To", sms.to.as_str())];
        match &sms.from {
            Sender::Number(n) => form.push(("From", n.as_str())),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid.as_str())),
        }
        form.push(("Body", sms.body.as_str()));
        if !sms.status_callback.is_empty() {
            form.push(("StatusCallback", sms.status_callback.as_str()));
        }
        let req = self.http.post(self.messages_url()).form(&form);
        let (status, retry_after, body) = self
            .exchange(req)
            .await
            .inspect_err(|e| log_failure("create", None, e))?;
        if !(200..=299).contains(&status) {
            let err = not_a_lookup(classify_error(status, &body, retry_after));
            log_failure("create", Some(status), &err);
            return Err(err);
        }
        let accepted = parse_created(&body).inspect_err(|e| log_failure("create", Some(status), e))?;
        tracing::info!(
            to = %sms.to.masked(),
            sid = %accepted.sid,
            status = %accepted.status,
            segments = ?accepted.segments,
            "twilio accepted the message"
        );
        Ok(accepted)
    }

    async fn fetch(&self, sid: &ProviderSid) -> Result<ProviderMessage, ProviderError> {
        let req = self.http.get(self.message_url(sid));
        let (status, retry_after, body) = self
            .exchange(req)
            .await
            .inspect_err(|e| log_failure("fetch", None, e))?;
        if !(200..=299).contains(&status) {
            let err = classify_error(status, &body, retry_after);
            log_failure("fetch", Some(status), &err);
            return Err(err);
        }
        let resource: MessageResource = serde_json::from_str(&body).map_err(malformed)?;
        let message = resource.into_provider_message()?;
        tracing::debug!(sid = %message.sid, status = %message.status, "fetched twilio message");
        Ok(message)
    }

    /// Lists with `To` and (for a number sender) `From` filters only: `date_sent` is null for a
    /// just-created message, so Twilio's `DateSent` filter could hide the very message we look for.
    /// One page of `PageSize = limit` (at most 1000) is read, in Twilio's order (newest first), and
    /// messages created more than a minute before `since` are dropped (those without a readable
    /// `date_created` are kept: better to report a candidate than to resend).
    ///
    /// For a Messaging Service sender, `From` is the number Twilio picked from the pool, so no
    /// `From` filter is sent; a message is kept when its `messaging_service_sid` is this service or
    /// absent (null), and dropped when it names a different service.
    async fn list_sent(
        &self,
        to: &PhoneNumber,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ProviderMessage>, ProviderError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page_size = limit.min(MAX_PAGE_SIZE).to_string();
        let mut query: Vec<(&str, &str)> = vec![("To", to.as_str())];
        if let Sender::Number(n) = from {
            query.push(("From", n.as_str()));
        }
        query.push(("PageSize", page_size.as_str()));
        let req = self.http.get(self.messages_url()).query(&query);
        let (status, retry_after, body) = self.exchange(req).await.inspect_err(|e| log_failure("list", None, e))?;
        if !(200..=299).contains(&status) {
            let err = not_a_lookup(classify_error(status, &body, retry_after));
            log_failure("list", Some(status), &err);
            return Err(err);
        }
        let page: MessagePage = serde_json::from_str(&body).map_err(malformed)?;
        let cutoff = since - LIST_CLOCK_SLACK;
        let mut out = Vec::new();
        for resource in page.messages {
            if let Sender::MessagingService(ms) = from {
                if resource.messaging_service_sid.as_deref().is_some_and(|m| m != ms) {
                    continue;
                }
            }
            let message = resource.into_provider_message()?;
            if message.date_created.is_some_and(|created| created < cutoff) {
                continue;
            }
            out.push(message);
            if out.len() == limit {
                break;
            }
        }
        tracing::debug!(to = %to.masked(), found = out.len(), "listed twilio messages");
        Ok(out)
    }
}

/// The fields of Twilio's Message resource (`api.v2010.account.message`) this client reads.
#[derive(Debug, Deserialize)]
struct MessageResource {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    body: Option<String>,
    /// A string in Twilio's JSON (`"1"`); numbers are tolerated.
    #[serde(default, deserialize_with = "lenient_u64")]
    num_segments: Option<u64>,
    /// An integer or null in Twilio's JSON; numeric strings are tolerated.
    #[serde(default, deserialize_with = "lenient_u64")]
    error_code: Option<u64>,
    #[serde(default)]
    error_message: Option<String>,
    /// RFC 2822 (`Thu, 24 Aug 2023 05:01:45 +0000`).
    #[serde(default)]
    date_created: Option<String>,
    #[serde(default)]
    messaging_service_sid: Option<String>,
}

/// One page of Twilio's message list (`ListMessageResponse`).
#[derive(Debug, Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<MessageResource>,
}

impl MessageResource {
    fn sid(&self) -> Result<ProviderSid, ProviderError> {
        let raw = self
            .sid
            .as_deref()
            .ok_or_else(|| malformed_text("message has no sid"))?;
        ProviderSid::parse(raw).map_err(|_| malformed_text("message sid is not valid"))
    }

    fn into_provider_message(self) -> Result<ProviderMessage, ProviderError> {
        let sid = self.sid()?;
        let date_created = self
            .date_created
            .as_deref()
            .and_then(|d| match DateTime::parse_from_rfc2822(d) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    tracing::debug!(sid = %sid, "twilio date_created is not RFC 2822; ignored");
                    None
                }
            });
        Ok(ProviderMessage {
            sid,
            to: self.to.unwrap_or_default(),
            from: self.from.unwrap_or_default(),
            body: self.body.unwrap_or_default(),
            status: self.status.unwrap_or_default(),
            error_code: self.error_code.and_then(|c| u32::try_from(c).ok()),
            error_message: self.error_message.map(|m| mask_numbers(&m)),
            date_created,
        })
    }
}

/// Read a create (201) response.
fn parse_created(body: &str) -> Result<ProviderAccepted, ProviderError> {
    let resource: MessageResource = serde_json::from_str(body).map_err(malformed)?;
    let sid = resource.sid()?;
    let status = resource
        .status
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed_text("message has no status"))?;
    let segments = resource
        .num_segments
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    Ok(ProviderAccepted { sid, status, segments })
}

/// A JSON error, reduced to its category and position (serde's text may quote body values).
fn malformed(e: serde_json::Error) -> ProviderError {
    malformed_text(&format!(
        "{:?} JSON error at line {}, column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}

fn malformed_text(what: &str) -> ProviderError {
    ProviderError::Unexpected(TwilioError::Malformed(what.to_owned()).into())
}

/// `null`, an unsigned integer, or a string holding one (anything else reads as `None`).
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = r#"{
        "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "api_version": "2010-04-01",
        "body": "Hello!",
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": null,
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": "+14155552345",
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": null,
        "messaging_service_sid": null,
        "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "status": "queued",
        "subresource_uris": {"media": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"},
        "to": "+14155552345",
        "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"
    }"#;

    #[test]
    fn a_create_response_is_read() {
        let accepted = parse_created(CREATED).expect("parsed");
        assert_eq!(accepted.sid.as_str(), "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(accepted.status, "queued");
        assert_eq!(accepted.segments, Some(1));
    }

    #[test]
    fn zero_segments_means_unknown() {
        let body = CREATED.replace(r#""num_segments": "1""#, r#""num_segments": "0""#);
        assert_eq!(parse_created(&body).expect("parsed").segments, None);
    }

    #[test]
    fn a_create_response_without_sid_or_status_is_unexpected() {
        assert!(matches!(parse_created("{}"), Err(ProviderError::Unexpected(_))));
        assert!(matches!(parse_created("not json"), Err(ProviderError::Unexpected(_))));
        let no_status = CREATED.replace(r#""status": "queued","#, "");
        assert!(matches!(parse_created(&no_status), Err(ProviderError::Unexpected(_))));
    }

    #[test]
    fn a_fetched_message_is_mapped() {
        let body = CREATED
            .replace(r#""error_code": null"#, r#""error_code": 30003"#)
            .replace(
                r#""error_message": null"#,
                r#""error_message": "Unreachable destination handset""#,
            )
            .replace(r#""status": "queued""#, r#""status": "undelivered""#);
        let resource: MessageResource = serde_json::from_str(&body).expect("json");
        let m = resource.into_provider_message().expect("mapped");
        assert_eq!(m.status, "undelivered");
        assert_eq!(m.error_code, Some(30003));
        assert_eq!(m.error_message.as_deref(), Some("Unreachable destination handset"));
        let expected = DateTime::parse_from_rfc3339("2023-08-24T05:01:45Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(m.date_created, Some(expected));
    }

    #[test]
    fn trailing_slash_on_the_base_is_ignored() {
        let p = TwilioSmsProvider::new(
            TwilioCredentials {
                account_sid: "AC1".to_owned(),
                auth_token: SecretString::from("t"),
            },
            "http://x/".to_owned(),
            crate::wiring::plain_http_client(),
        );
        assert_eq!(p.messages_url(), "http://x/2010-04-01/Accounts/AC1/Messages.json");
    }
}
