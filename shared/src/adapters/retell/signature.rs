//! Retell webhook signatures (`x-retell-signature: v=<timestamp_ms>,d=<hex>`), as Retell's SDKs
//! check them (protocol-facts §9.3): `d` is the lowercase hex HMAC-SHA256, keyed with the Retell API
//! key, of the raw body followed by the decimal timestamp; the timestamp must be within five minutes
//! of now (inclusive). The raw bytes are signed, so the body must never be re-serialised first.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a signature's timestamp may be from now, in milliseconds (inclusive).
pub const WINDOW_MS: i64 = 5 * 60 * 1000;

/// Why a Retell signature was refused (never echoed to the caller: every case is a 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RetellSignatureError {
    /// The header is not exactly `v=<digits>,d=<64 lowercase hex>`.
    #[error("malformed x-retell-signature header")]
    Malformed,
    /// The timestamp is more than five minutes from now.
    #[error("x-retell-signature timestamp outside the five-minute window")]
    Expired,
    /// The digest does not match.
    #[error("x-retell-signature digest does not match")]
    Mismatch,
}

/// The header value Retell would send for `body` at `timestamp_ms`.
#[must_use]
pub fn sign(api_key: &str, body: &[u8], timestamp_ms: i64) -> String {
    format!("v={timestamp_ms},d={}", hex(&digest(api_key, body, timestamp_ms)))
}

/// Check `header` for `body` at `now_ms` (milliseconds since the epoch, from the caller's clock).
///
/// # Errors
/// [`RetellSignatureError`] saying why it is refused.
pub fn verify(api_key: &str, body: &[u8], header: &str, now_ms: i64) -> Result<(), RetellSignatureError> {
    let (timestamp, given) = parse_header(header).ok_or(RetellSignatureError::Malformed)?;
    if now_ms.abs_diff(timestamp) > WINDOW_MS.unsigned_abs() {
        return Err(RetellSignatureError::Expired);
    }
    let expected = digest(api_key, body, timestamp);
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(RetellSignatureError::Mismatch)
    }
}

/// `v=<digits>,d=<64 lowercase hex>` → (timestamp, digest bytes); anything else is `None`.
fn parse_header(header: &str) -> Option<(i64, Vec<u8>)> {
    let rest = header.strip_prefix("v=")?;
    let (ts, d) = rest.split_once(",d=")?;
    if ts.is_empty() || ts.len() > 15 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if d.len() != 64 || !d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes = (0..32)
        .map(|i| u8::from_str_radix(&d[i * 2..i * 2 + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((ts.parse().ok()?, bytes))
}

fn digest(api_key: &str, body: &[u8], timestamp_ms: i64) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; an empty MAC never matches.
    let Ok(mut mac) = HmacSha256::new_from_slice(api_key.as_bytes()) else {
        return Vec::new();
    };
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Official vector: RetellAI/retell-python-sdk tests/test_webhook_auth.py.
    const BODY: &[u8] = br#"{"event":"call_ended"}"#;
    const KEY: &str = "test-api-key";
    const TS: i64 = 1_700_000_000_000;
    const SIG: &str = "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";

    #[test]
    fn the_official_vector_is_reproduced_and_accepted() {
        assert_eq!(sign(KEY, BODY, TS), SIG);
        assert_eq!(verify(KEY, BODY, SIG, TS), Ok(()));
    }

    #[test]
    fn the_chat_inbound_vector_from_conversation_facts_is_reproduced() {
        let body = br#"{"event":"chat_inbound","chat_inbound":{"agent_id":"agent_12345","agent_version":1,"from_number":"+12125550123","to_number":"+14155550100"}}"#;
        assert_eq!(
            sign(KEY, body, TS),
            "v=1700000000000,d=ee1529da639db4ddb6dc91143ded63086aa3542e02bd562f6318406bbf4a907e"
        );
    }

    #[test]
    fn the_window_is_five_minutes_inclusive_on_both_sides() {
        assert_eq!(verify(KEY, BODY, SIG, TS + 300_000), Ok(()));
        assert_eq!(verify(KEY, BODY, SIG, TS - 300_000), Ok(()));
        assert_eq!(verify(KEY, BODY, SIG, TS + 300_001), Err(RetellSignatureError::Expired));
        assert_eq!(verify(KEY, BODY, SIG, TS - 300_001), Err(RetellSignatureError::Expired));
    }

    #[test]
    fn a_changed_body_or_key_is_a_mismatch() {
        assert_eq!(
            verify(KEY, br#"{"event":"call_ended" }"#, SIG, TS),
            Err(RetellSignatureError::Mismatch)
        );
        assert_eq!(verify("other-key", BODY, SIG, TS), Err(RetellSignatureError::Mismatch));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let d = &SIG["v=1700000000000,d=".len()..];
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("v=,d={d}"),
            format!("v=1700000000000,d={}", &d[..63]),
            format!("v=1700000000000,d={d}0"),
            format!("v=1700000000000,d={}", d.to_uppercase()),
            format!("v=1700000000000,d={d},x=1"),
            format!(" v=1700000000000,d={d}"),
            format!("d={d},v=1700000000000"),
            format!("v=-1700000000000,d={d}"),
            format!("v=17000000000000000000,d={d}"),
        ] {
            assert_eq!(
                verify(KEY, BODY, &bad, TS),
                Err(RetellSignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
