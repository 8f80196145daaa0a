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

    // ---- properties ----

    use proptest::prelude::*;

    /// Timestamps the header can carry (at most 15 digits), and a `now` within the window of it.
    fn stamp_and_now() -> impl Strategy<Value = (i64, i64)> {
        (0i64..=999_999_999_999_999, -WINDOW_MS..=WINDOW_MS).prop_map(|(ts, skew)| (ts, ts + skew))
    }

    fn any_key() -> impl Strategy<Value = String> {
        prop_oneof!["key_[0-9a-f]{24}", "\\PC{0,80}"]
    }

    fn any_body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "\\{\"event\":\"[a-z_]{1,12}\",\"chat\":\\{\"chat_id\":\"[a-z0-9_]{1,12}\"\\}\\}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn a_signature_made_by_the_signer_verifies_within_the_window(
            key in any_key(), body in any_body(), (ts, now) in stamp_and_now(),
        ) {
            prop_assert_eq!(verify(&key, &body, &sign(&key, &body, ts), now), Ok(()));
        }

        #[test]
        fn outside_the_window_it_is_expired(
            key in any_key(), body in any_body(), ts in 0i64..=999_999_999_999_999, late in 1i64..1_000_000_000, early in any::<bool>(),
        ) {
            let now = if early { ts - WINDOW_MS - late } else { ts + WINDOW_MS + late };
            prop_assert_eq!(verify(&key, &body, &sign(&key, &body, ts), now), Err(RetellSignatureError::Expired));
        }

        #[test]
        fn changing_any_one_byte_of_the_body_is_a_mismatch(
            key in any_key(), body in any_body(), (ts, now) in stamp_and_now(), index in any::<usize>(), delta in 1u8..,
        ) {
            prop_assume!(!body.is_empty());
            let header = sign(&key, &body, ts);
            let mut changed = body.clone();
            let i = index % changed.len();
            changed[i] = changed[i].wrapping_add(delta);
            prop_assert_eq!(verify(&key, &changed, &header, now), Err(RetellSignatureError::Mismatch));
        }

        #[test]
        fn changing_any_one_byte_of_the_key_is_a_mismatch(
            key in "[!-~]{1,64}", body in any_body(), (ts, now) in stamp_and_now(), index in any::<usize>(), delta in 1u8..94,
        ) {
            let header = sign(&key, &body, ts);
            let mut bytes = key.clone().into_bytes();
            let i = index % bytes.len();
            bytes[i] = (bytes[i] - b'!' + delta) % 94 + b'!';
            let changed = String::from_utf8(bytes).unwrap_or_default();
            prop_assert_eq!(verify(&changed, &body, &header, now), Err(RetellSignatureError::Mismatch));
        }

        #[test]
        fn changing_any_one_byte_of_the_header_is_refused(
            key in any_key(), body in any_body(), (ts, now) in stamp_and_now(), index in any::<usize>(), delta in 1u8..,
        ) {
            let header = sign(&key, &body, ts);
            let mut bytes = header.clone().into_bytes();
            let i = index % bytes.len();
            bytes[i] = bytes[i].wrapping_add(delta);
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(verify(&key, &body, &changed, now).is_err(), "{} -> {}", header, changed);
        }

        #[test]
        fn arbitrary_headers_never_panic_and_are_refused(
            key in any_key(),
            body in any_body(),
            header in prop_oneof![
                any::<String>(),
                "v=[0-9]{0,17},d=[0-9a-fA-F]{62,66}",
                "v=-?[0-9]{1,15},d=[0-9a-f]{64}(,.*)?",
                "\\PCv=[0-9]{13},d=[0-9a-f]{64}",
            ],
            now in any::<i64>(),
        ) {
            prop_assert!(verify(&key, &body, &header, now).is_err());
        }

        #[test]
        fn a_well_formed_header_is_refused_for_the_right_reason(
            key in any_key(), body in any_body(), ts in "[0-9]{1,15}", d in "[0-9a-f]{64}", skew in -2 * WINDOW_MS..=2 * WINDOW_MS,
        ) {
            let stamp: i64 = ts.parse().unwrap_or(0);
            let header = format!("v={ts},d={d}");
            let want = if skew.abs() > WINDOW_MS { RetellSignatureError::Expired } else { RetellSignatureError::Mismatch };
            prop_assert_eq!(verify(&key, &body, &header, stamp + skew), Err(want));
        }
    }
}
