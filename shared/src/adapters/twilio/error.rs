//! Turning Twilio's failures into [`ProviderError`]s for the retry policy.
//!
//! Twilio answers errors with one of two JSON shapes (protocol-facts §2.1), both accepted here:
//! - legacy: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`;
//! - RFC 9457: `{"type": "...", "title": "...", "status": 400, "code": 21211, "detail": "...", ...}`.
//!
//! A body without a code (or no JSON at all) is classified by its HTTP status alone, with the
//! HTTP status standing in for the code, as twilio-python does.

use crate::ports::ProviderError;
use std::time::Duration;

/// Longest provider error text kept in a [`ProviderError::Rejected`] message.
const MAX_MESSAGE_CHARS: usize = 300;

/// What went wrong, carried as the source of [`ProviderError::Unexpected`] by this adapter.
/// Never contains the auth token, the message body or a full phone number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwilioError {
    /// Twilio refused our credentials or the account may not do this (401/403/20003): a
    /// configuration problem, not something a retry fixes.
    #[error("Twilio refused the credentials (HTTP {http_status}, code {code})")]
    Credentials {
        /// HTTP status.
        http_status: u16,
        /// Twilio error code (the HTTP status when Twilio gave none).
        code: u32,
    },
    /// The Messages endpoint itself was not found: wrong API base URL or account SID.
    #[error("Twilio has no Messages resource at the configured base URL and account (HTTP 404)")]
    EndpointNotFound,
    /// An HTTP status this client has no rule for (e.g. a 3xx).
    #[error("Twilio answered HTTP {http_status} (code {code:?}), which this client does not expect")]
    UnexpectedStatus {
        /// HTTP status.
        http_status: u16,
        /// Twilio error code, if the body had one.
        code: Option<u32>,
    },
    /// A success response that is not the JSON we expect.
    #[error("Twilio's response could not be understood: {0}")]
    Malformed(String),
    /// The request could not be built or followed (bad URL, redirect loop …).
    #[error("the request to Twilio could not be made")]
    Request(#[source] reqwest::Error),
}

/// Classify a non-success Twilio answer.
///
/// Rules, first match wins:
/// 1. HTTP 429 or code 20429 → `RateLimited { retry_after }` (never processed; safe to retry).
/// 2. Code 21611 (From queue full) or 30001 (queue overflow) → `Transient { maybe_sent: false }`.
/// 3. HTTP 401/403 or code 20003 → `Unexpected` ([`TwilioError::Credentials`]: configuration).
/// 4. HTTP 404 → `NotFound` (callers that are not looking a message up turn it into `Unexpected`).
/// 5. HTTP 5xx or code 20500/20503 → `Transient { maybe_sent: true }` (the request may have
///    been processed: reconcile before resending).
/// 6. Any other 4xx → `Rejected { code, message }` (code = the HTTP status when the body has none).
/// 7. Anything else → `Unexpected`.
///
/// Phone numbers in Twilio's message are masked (`+1500***`) and the text is truncated.
#[must_use]
pub fn classify_error(http_status: u16, body: &str, retry_after: Option<Duration>) -> ProviderError {
    let parsed = ErrorBody::parse(body);
    let code = parsed.code.unwrap_or(u32::from(http_status));
    if http_status == 429 || code == 20429 {
        return ProviderError::RateLimited { retry_after };
    }
    if code == 21611 || code == 30001 {
        return ProviderError::Transient {
            code: Some(code),
            reason: format!("Twilio sender queue is full (HTTP {http_status}, code {code})"),
            maybe_sent: false,
        };
    }
    if matches!(http_status, 401 | 403) || code == 20003 {
        return ProviderError::Unexpected(TwilioError::Credentials { http_status, code }.into());
    }
    if http_status == 404 {
        return ProviderError::NotFound;
    }
    if (500..=599).contains(&http_status) || code == 20500 || code == 20503 {
        return ProviderError::Transient {
            code: parsed.code,
            reason: format!("Twilio server error (HTTP {http_status}, code {code})"),
            maybe_sent: true,
        };
    }
    if (400..=499).contains(&http_status) {
        let message = parsed
            .message
            .map_or_else(|| format!("HTTP {http_status}"), |m| clean_message(&m));
        return ProviderError::Rejected { code, message };
    }
    ProviderError::Unexpected(
        TwilioError::UnexpectedStatus {
            http_status,
            code: parsed.code,
        }
        .into(),
    )
}

/// Classify a failed HTTP exchange (no usable response), given the timeout that applied.
///
/// Connect/DNS failures → `Transient { maybe_sent: false }` (nothing reached Twilio); a timeout or
/// a connection lost after the request went out → `Transient { maybe_sent: true }`; a request that
/// could not be built or a redirect problem → `Unexpected`.
pub(crate) fn classify_transport(err: reqwest::Error, timeout: Duration) -> ProviderError {
    // The URL may carry phone numbers (list filters): never keep it.
    let err = err.without_url();
    if err.is_builder() || err.is_redirect() {
        return ProviderError::Unexpected(TwilioError::Request(err).into());
    }
    if err.is_connect() || err.is_dns() {
        return ProviderError::Transient {
            code: None,
            reason: "could not connect to Twilio".to_owned(),
            maybe_sent: false,
        };
    }
    if err.is_timeout() {
        return ProviderError::Transient {
            code: None,
            reason: format!("Twilio did not answer within {} ms", timeout.as_millis()),
            maybe_sent: true,
        };
    }
    ProviderError::Transient {
        code: None,
        reason: "connection to Twilio failed after the request was sent".to_owned(),
        maybe_sent: true,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The parts of either error shape we use.
#[derive(Debug, Default)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

impl ErrorBody {
    fn parse(body: &str) -> Self {
        let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(body) else {
            return Self::default();
        };
        let code = obj.get("code").and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        // Legacy `message`; RFC 9457 `detail`, else `title`.
        let message = ["message", "detail", "title"]
            .iter()
            .find_map(|k| {
                obj.get(*k)
                    .and_then(serde_json::Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            })
            .map(str::to_owned);
        Self { code, message }
    }
}

/// Mask phone numbers and bound the length of a provider text.
fn clean_message(text: &str) -> String {
    let masked = mask_numbers(text);
    if masked.chars().count() <= MAX_MESSAGE_CHARS {
        return masked;
    }
    let mut out: String = masked.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push('…');
    out
}

/// Replace every run of 7 or more digits (with its leading `+`, if any) by its first four digits
/// and `***`: `+15005550001` → `+1500***`.
pub(crate) fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 7 {
            out.extend(digits.chars().take(4));
            out.push_str("***");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(code: u32, message: &str, status: u16) -> String {
        serde_json::json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        })
        .to_string()
    }

    fn rejected_code(e: &ProviderError) -> Option<u32> {
        match e {
            ProviderError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn invalid_to_number_is_rejected_with_the_number_masked() {
        let e = classify_error(
            400,
            &legacy(21211, "The 'To' number +15005550001 is not a valid phone number.", 400),
            None,
        );
        match e {
            ProviderError::Rejected { code, message } => {
                assert_eq!(code, 21211);
                assert_eq!(message, "The 'To' number +1500*** is not a valid phone number.");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn permanent_4xx_codes_are_rejected() {
        for code in [21211, 21408, 21610, 21612, 21614, 21617, 30034, 30007] {
            let e = classify_error(400, &legacy(code, "no", 400), None);
            assert_eq!(rejected_code(&e), Some(code), "{code}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn rfc9457_shape_is_understood() {
        let body = serde_json::json!({
            "type": "https://www.twilio.com/docs/errors/21610",
            "title": "Attempt to send to unsubscribed recipient",
            "status": 400,
            "code": 21610,
            "detail": "The message From/To pair violates a blacklist rule.",
            "instance": "/2010-04-01/Accounts/AC0/Messages.json",
        })
        .to_string();
        match classify_error(400, &body, None) {
            ProviderError::Rejected { code, message } => {
                assert_eq!(code, 21610);
                assert_eq!(message, "The message From/To pair violates a blacklist rule.");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn rfc9457_without_detail_uses_the_title() {
        let body = r#"{"type":"t","title":"Invalid parameter","status":400,"code":21211}"#;
        match classify_error(400, body, None) {
            ProviderError::Rejected { message, .. } => assert_eq!(message, "Invalid parameter"),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn http_429_is_rate_limited_with_its_retry_after() {
        let e = classify_error(
            429,
            &legacy(20429, "Too Many Requests", 429),
            Some(Duration::from_secs(3)),
        );
        assert!(matches!(e, ProviderError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)));
        assert!(matches!(
            classify_error(429, "", None),
            ProviderError::RateLimited { retry_after: None }
        ));
    }

    #[test]
    fn code_20429_is_rate_limited_whatever_the_status() {
        assert!(matches!(
            classify_error(400, &legacy(20429, "x", 400), None),
            ProviderError::RateLimited { .. }
        ));
    }

    #[test]
    fn server_errors_may_have_been_processed() {
        for (status, body) in [
            (500, legacy(20500, "Internal Server Error", 500)),
            (503, legacy(20503, "Service Unavailable", 503)),
            (502, "<html>bad gateway</html>".to_owned()),
        ] {
            let e = classify_error(status, &body, None);
            assert!(
                matches!(e, ProviderError::Transient { maybe_sent: true, .. }),
                "{status}: {e:?}"
            );
        }
        // A 20503 code with an odd status is still a server-side failure.
        assert!(matches!(
            classify_error(400, &legacy(20503, "x", 400), None),
            ProviderError::Transient {
                maybe_sent: true,
                code: Some(20503),
                ..
            }
        ));
    }

    #[test]
    fn queue_overflow_is_transient_and_not_sent() {
        for code in [21611, 30001] {
            let e = classify_error(400, &legacy(code, "queue full", 400), None);
            assert!(
                matches!(e, ProviderError::Transient { maybe_sent: false, code: Some(c), .. } if c == code),
                "{code}"
            );
        }
    }

    #[test]
    fn authentication_failures_are_configuration_errors() {
        for (status, code) in [(401, 20003), (403, 20003), (401, 0), (400, 20003)] {
            let body = if code == 0 {
                String::new()
            } else {
                legacy(code, "Authenticate", status)
            };
            let e = classify_error(status, &body, None);
            assert!(matches!(e, ProviderError::Unexpected(_)), "{status}/{code}: {e:?}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn not_found_is_not_found() {
        assert!(matches!(
            classify_error(404, &legacy(20404, "The requested resource was not found", 404), None),
            ProviderError::NotFound
        ));
    }

    #[test]
    fn a_4xx_without_a_code_uses_the_http_status() {
        assert_eq!(rejected_code(&classify_error(400, "not json", None)), Some(400));
        assert_eq!(
            rejected_code(&classify_error(422, r#"{"message":"bad"}"#, None)),
            Some(422)
        );
    }

    #[test]
    fn a_string_code_is_accepted() {
        assert_eq!(
            rejected_code(&classify_error(400, r#"{"code":"21211","message":"x"}"#, None)),
            Some(21211)
        );
    }

    #[test]
    fn other_statuses_are_unexpected() {
        assert!(matches!(classify_error(302, "", None), ProviderError::Unexpected(_)));
        assert!(matches!(classify_error(200, "{}", None), ProviderError::Unexpected(_)));
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "x".repeat(1000);
        match classify_error(400, &legacy(21617, &long, 400), None) {
            ProviderError::Rejected { message, .. } => assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn numbers_are_masked_but_short_digit_runs_kept() {
        assert_eq!(
            mask_numbers("To +14155550100 and 4155550100, code 21211"),
            "To +1415*** and 4155***, code 21211"
        );
        assert_eq!(mask_numbers("+15005550001"), "+1500***");
    }

    #[test]
    fn retry_after_seconds_are_read() {
        assert_eq!(parse_retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }

    // ---- properties ----

    use proptest::prelude::*;

    /// The longest run of ASCII digits in `text`.
    fn longest_digit_run(text: &str) -> usize {
        text.split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0)
    }

    /// Error bodies of both shapes, with a phone number in the text, or junk.
    fn any_body() -> impl Strategy<Value = (String, String)> {
        let number = "\\+1[2-9][0-9]{9}|\\+44[0-9]{10}";
        let code = prop_oneof![
            prop::sample::select(vec![
                21211u32, 21610, 21611, 30001, 20003, 20429, 20500, 20503, 21408, 30007
            ]),
            any::<u32>(),
        ];
        prop_oneof![
            (code.clone(), number, "\\PC{0,40}", 0usize..3).prop_map(|(code, n, text, shape)| {
                let message = format!("{text} {n} {text}");
                let body = match shape {
                    0 => serde_json::json!({"code": code, "message": message, "status": 400}),
                    1 => serde_json::json!({"type": "x", "title": "t", "code": code.to_string(), "detail": message}),
                    _ => serde_json::json!({"code": -1, "message": message}),
                };
                (body.to_string(), n)
            }),
            ("\\PC{0,80}", Just(String::new())).prop_map(|(b, n)| (b, n)),
            ("\\PC{0,10}", prop::collection::vec("[0-9]{7,12}", 0..3))
                .prop_map(|(t, ns)| (format!("{{\"message\":\"{t}{}\"}}", ns.join("-")), String::new())),
        ]
    }

    proptest! {
        #[test]
        fn classification_never_panics_and_follows_the_rules_in_order(
            http_status in prop_oneof![100u16..600, prop::sample::select(vec![400u16, 401, 403, 404, 429, 500, 503])],
            (body, number) in any_body(),
            retry in prop::option::of(0u64..100_000),
        ) {
            let retry_after = retry.map(Duration::from_secs);
            let parsed = ErrorBody::parse(&body);
            let code = parsed.code.unwrap_or(u32::from(http_status));
            let got = classify_error(http_status, &body, retry_after);
            match &got {
                ProviderError::RateLimited { retry_after: r } => {
                    prop_assert!(http_status == 429 || code == 20429);
                    prop_assert_eq!(*r, retry_after);
                }
                ProviderError::Transient { maybe_sent: false, .. } => {
                    prop_assert!(http_status != 429 && code != 20429 && (code == 21611 || code == 30001));
                }
                ProviderError::Transient { maybe_sent: true, .. } => {
                    prop_assert!(!matches!(code, 21611 | 30001 | 20429 | 20003) && !matches!(http_status, 401 | 403 | 404 | 429));
                    prop_assert!((500..=599).contains(&http_status) || code == 20500 || code == 20503);
                }
                ProviderError::NotFound => prop_assert_eq!(http_status, 404),
                ProviderError::Rejected { code: c, message } => {
                    prop_assert!((400..=499).contains(&http_status));
                    prop_assert_eq!(*c, code);
                    // Phone numbers masked, length bounded.
                    prop_assert!(longest_digit_run(message) < 7, "{}", message);
                    prop_assert!(number.is_empty() || !message.contains(&number), "{}", message);
                    prop_assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
                }
                ProviderError::Unexpected(_) => {
                    prop_assert!(!(400..=599).contains(&http_status) || matches!(http_status, 401 | 403) || code == 20003);
                }
            }
            if http_status == 429 {
                prop_assert!(matches!(got, ProviderError::RateLimited { .. }), "HTTP 429 is always rate limited");
            }
        }

        #[test]
        fn masking_leaves_no_long_digit_run_and_is_idempotent(text in prop_oneof![
            "\\PC{0,60}",
            "([a-z ]{0,5}\\+?[0-9]{1,14}){0,5}",
        ]) {
            let masked = mask_numbers(&text);
            prop_assert!(longest_digit_run(&masked) < 7, "{}", masked);
            prop_assert_eq!(mask_numbers(&masked), masked.clone());
            if longest_digit_run(&text) < 7 {
                prop_assert_eq!(masked, text);
            }
        }

        #[test]
        fn retry_after_reads_whole_seconds_only(raw in prop_oneof!["\\PC{0,12}", "\\s{0,2}[0-9]{1,21}\\s{0,2}"]) {
            let want = raw.trim().parse::<u64>().ok().map(Duration::from_secs);
            prop_assert_eq!(parse_retry_after(Some(&raw)), want);
            prop_assert_eq!(parse_retry_after(None), None);
        }
    }
}
