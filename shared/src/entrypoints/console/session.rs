//! The console's sign-in: a signed, expiring session cookie (stateless, so the admin Lambda and
//! smsrelay-local both check it without a session store), the CSRF token of every form, and the
//! throttle on wrong keys.
//!
//! Cookie value: `<expiry unix s>.<key fingerprint>.<nonce>.<mac>`, the MAC an HMAC-SHA256 of the
//! first three parts under a key derived from the admin API key that signed in. Removing that key
//! from the configuration ends its sessions. The CSRF token is an HMAC of the nonce under the same
//! key, so it is fixed for a session and cannot be made without the key.

use crate::app::AppError;
use crate::config::{Config, Scope};
use crate::ports::{CounterOp, CounterStore};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "smsrelay_console";
/// The sign-in form's double-submit cookie (the form's CSRF token before there is a session).
pub const LOGIN_COOKIE: &str = "smsrelay_console_login";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::hours(8);
/// Wrong keys one client may try per minute before sign-in answers 429.
pub const FAILURES_PER_CLIENT_MINUTE: i64 = 5;
/// Wrong keys all clients together may try per minute.
pub const FAILURES_PER_MINUTE: i64 = 30;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fingerprint(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes())[..8])
}

fn mac(key: &str, parts: &[&str]) -> String {
    let derived = Sha256::digest(format!("smsrelay console session\0{key}").as_bytes());
    let Ok(mut m) = HmacSha256::new_from_slice(&derived) else {
        return String::new();
    };
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            m.update(b"\0");
        }
        m.update(p.as_bytes());
    }
    hex(&m.finalize().into_bytes())
}

fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A random token (128 bits, hex).
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex(&b)
}

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// The form token of this session.
    pub csrf: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A new session for the admin key `key`, from `now`: the cookie value and the session.
pub fn issue(key: &str, now: DateTime<Utc>) -> (String, Session) {
    let expires_at = now + SESSION_TTL;
    let exp = expires_at.timestamp().to_string();
    let fp = fingerprint(key);
    let nonce = random_token();
    let sig = mac(key, &[&exp, &fp, &nonce]);
    let csrf = mac(key, &["csrf", &nonce]);
    (format!("{exp}.{fp}.{nonce}.{sig}"), Session { csrf, expires_at })
}

/// The session of a cookie value, if it was signed by one of the configured admin keys and has
/// not expired at `now`.
pub fn verify(config: &Config, value: &str, now: DateTime<Utc>) -> Option<Session> {
    let mut it = value.split('.');
    let (exp, fp, nonce, sig) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let expires_at = DateTime::from_timestamp(exp.parse::<i64>().ok()?, 0)?;
    if expires_at <= now {
        return None;
    }
    config
        .api_keys
        .iter()
        .filter(|k| k.scope == Scope::Admin)
        .map(|k| k.key.expose_secret())
        .find(|k| eq(&fingerprint(k), fp) && eq(&mac(k, &[exp, fp, nonce]), sig))
        .map(|k| Session {
            csrf: mac(k, &["csrf", nonce]),
            expires_at,
        })
}

/// Whether `given` is the form token of `session` (constant time).
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| eq(g, &session.csrf))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/console`, `Max-Age`, and `Secure`
/// when the console is reached over HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.num_seconds().max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// Who is signing in, for the throttle: the address the last proxy saw (the last entry of
/// `X-Forwarded-For`, which API Gateway appends), else `direct`.
pub fn client_of(headers: &http::HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .unwrap_or("direct")
        .to_owned()
}

fn minute_keys(client: &str, now: DateTime<Utc>) -> [String; 2] {
    let minute = now.format("%Y-%m-%dT%H:%M");
    [
        format!("console\u{1f}signin_fail\u{1f}{client}\u{1f}{minute}"),
        format!("console\u{1f}signin_fail\u{1f}\u{1f}{minute}"),
    ]
}

/// Whether sign-in is refused for `client` this minute (too many wrong keys, from it or overall).
///
/// # Errors
/// Store failures.
pub async fn throttled(counters: &dyn CounterStore, client: &str, now: DateTime<Utc>) -> Result<bool, AppError> {
    let keys = minute_keys(client, now);
    let v = counters.values(&keys, now).await.map_err(AppError::from)?;
    Ok(v.first().copied().unwrap_or(0) >= FAILURES_PER_CLIENT_MINUTE
        || v.get(1).copied().unwrap_or(0) >= FAILURES_PER_MINUTE)
}

/// Count one wrong key from `client` (in one store call; the counters expire after two minutes).
///
/// # Errors
/// Store failures.
pub async fn count_failure(counters: &dyn CounterStore, client: &str, now: DateTime<Utc>) -> Result<(), AppError> {
    let expires_at = Some(now + Duration::minutes(2));
    let ops: Vec<CounterOp> = minute_keys(client, now)
        .into_iter()
        .map(|key| CounterOp::Add { key, by: 1, expires_at })
        .collect();
    counters.add_many(&ops, now).await.map_err(AppError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: &str) -> Config {
        let keys = keys.to_owned();
        Config::from_lookup(move |k| (k == "SMSRELAY_API_KEYS").then(|| keys.clone())).expect("config")
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn a_session_holds_until_it_expires_and_only_for_a_configured_admin_key() {
        let now = at("2026-01-01T12:00:00Z");
        let c = config("admin:a1,admin:a2,send:s1");
        let (cookie, s) = issue("a2", now);
        let v = verify(&c, &cookie, now + Duration::hours(7)).expect("valid within 8 h");
        assert_eq!(v.csrf, s.csrf);
        assert!(verify(&c, &cookie, now + SESSION_TTL).is_none(), "expired");
        assert!(
            verify(&config("admin:a1"), &cookie, now).is_none(),
            "its key was removed"
        );
        let (send_cookie, _) = issue("s1", now);
        assert!(verify(&c, &send_cookie, now).is_none(), "a send key signs no session");
        // Any change to the value breaks the signature.
        let mut parts: Vec<String> = cookie.split('.').map(str::to_owned).collect();
        parts[0] = (now + Duration::days(30)).timestamp().to_string();
        assert!(
            verify(&c, &parts.join("."), now).is_none(),
            "a longer expiry is not signed"
        );
        assert!(verify(&c, "", now).is_none() && verify(&c, "a.b.c.d.e", now).is_none());
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let now = at("2026-01-01T12:00:00Z");
        let (_, a) = issue("a1", now);
        let (_, b) = issue("a1", now);
        assert!(csrf_ok(&a, Some(&a.csrf)));
        assert!(!csrf_ok(&a, Some(&b.csrf)), "another session's token");
        assert!(!csrf_ok(&a, None) && !csrf_ok(&a, Some("")));
    }

    #[test]
    fn cookies_are_read_by_name_and_written_strict_and_http_only() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a=1; smsrelay_console=v.1; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("v.1"));
        assert_eq!(cookie(&h, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", SESSION_TTL, true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Max-Age=28800",
            "Secure",
            "Path=/console",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie(SESSION_COOKIE, "v", SESSION_TTL, false).contains("Secure"));
    }

    #[test]
    fn the_throttle_client_is_the_address_the_last_proxy_added() {
        let mut h = http::HeaderMap::new();
        assert_eq!(client_of(&h), "direct");
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        assert_eq!(client_of(&h), "203.0.113.9");
    }
}
