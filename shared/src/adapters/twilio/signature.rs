//! Twilio webhook signatures (`X-Twilio-Signature`): computing them (the simulator signs its
//! callbacks) and checking them (our webhook endpoints), as twilio-python's `RequestValidator` does.
//!
//! Algorithm (protocol-facts §5.1): the full URL Twilio requested, then for each POST parameter name
//! in byte order, its values de-duplicated and sorted, `name + value` appended with no separator;
//! HMAC-SHA1 keyed with the auth token; standard Base64 with padding.
//!
//! The URL is used exactly as given (no re-encoding, no query re-ordering): pass the scheme, host,
//! path and raw query string Twilio called. Because Twilio's side is inconsistent about ports, a
//! signature is accepted if it matches the URL without any port, or the URL with its port (the
//! default `:443`/`:80` added when it has none).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

type HmacSha1 = Hmac<Sha1>;

/// The `X-Twilio-Signature` value Twilio would send for a POST of `params` to `url`.
///
/// Parameter names are sorted by byte order (Twilio's ordinal sort), each name's values are
/// de-duplicated and sorted, and `name + value` is appended to the URL for each. Repeated names
/// (array parameters) are given as several pairs, in any order.
#[must_use]
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    match signature_bytes(auth_token, url, params) {
        Some(bytes) => STANDARD.encode(bytes),
        // HMAC takes keys of any length, so this never happens; an empty signature never validates.
        None => String::new(),
    }
}

/// Whether `signature` is Twilio's signature of a form-encoded request of `params` to `url`.
///
/// `url` is the full URL Twilio requested (raw query string included). Accepted when the signature
/// matches the URL with any port removed, or the URL with its port (`:443` for https, `:80`
/// otherwise, added when absent), compared in constant time. An empty signature never validates.
#[must_use]
pub fn validate_signature(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    if signature.is_empty() {
        return false;
    }
    matches_any_port_variant(auth_token, url, params, signature)
}

/// Whether `signature` is Twilio's signature of a JSON-body webhook (`application/json`).
///
/// Twilio appends `bodySHA256=<hex sha256 of the raw body>` to the URL's query and signs the URL
/// alone. Both must hold: the `bodySHA256` query parameter equals the lowercase hex SHA-256 of
/// `body`, and the signature matches `url` with no parameters (same port variants as
/// [`validate_signature`]). A URL without `bodySHA256` is refused.
#[must_use]
pub fn validate_signature_with_body(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    if signature.is_empty() {
        return false;
    }
    let Some(expected_hash) = query_value(url, "bodySHA256") else {
        return false;
    };
    let actual_hash = hex_lower(&Sha256::digest(body));
    let hash_ok = expected_hash.as_bytes().ct_eq(actual_hash.as_bytes());
    let sig_ok = matches_any_port_variant(auth_token, url, &[], signature);
    bool::from(hash_ok) & sig_ok
}

/// The raw HMAC-SHA1 over the canonical string.
fn signature_bytes(auth_token: &str, url: &str, params: &[(String, String)]) -> Option<[u8; 20]> {
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).ok()?;
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Tuple order = by name, then by value; both byte-wise (ordinal). Dedup drops repeated values.
    pairs.sort_unstable();
    pairs.dedup();
    mac.update(url.as_bytes());
    for (name, value) in pairs {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(mac.finalize().into_bytes().into())
}

/// Check both port variants of `url`, without short-circuiting.
fn matches_any_port_variant(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let given = signature.as_bytes();
    let check = |candidate_url: &str| -> Choice {
        let expected = compute_signature(auth_token, candidate_url, params);
        if expected.is_empty() {
            return Choice::from(0);
        }
        expected.as_bytes().ct_eq(given)
    };
    let without = check(&url_without_port(url));
    let with = check(&url_with_port(url));
    bool::from(without | with)
}

/// The pieces of a URL's authority, by byte offsets into the URL.
struct Authority {
    /// End of the host (before `:port`, if any).
    host_end: usize,
    /// End of the authority (start of path, query or fragment; or the URL's end).
    end: usize,
    /// Whether a `:port` follows the host (possibly with no digits).
    has_port: bool,
    /// Whether that port has no digits (`host:`).
    port_empty: bool,
    /// End of the scheme (offset of `://`).
    scheme_end: usize,
}

/// Find the authority of `scheme://[userinfo@]host[:port]...`; `None` if `url` has no `://`.
fn authority(url: &str) -> Option<Authority> {
    let scheme_end = url.find("://")?;
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let end = auth_start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &url[auth_start..end];
    let host_start = auth_start + auth.rfind('@').map_or(0, |i| i + 1);
    let hostport = &url[host_start..end];
    // An IPv6 literal (`[::1]:8080`) has colons inside its brackets.
    let search_from = if hostport.starts_with('[') {
        hostport.find(']').map_or(0, |i| i + 1)
    } else {
        0
    };
    let colon = hostport[search_from..]
        .rfind(':')
        .map(|i| i + search_from)
        .filter(|&i| hostport[i + 1..].bytes().all(|b| b.is_ascii_digit()));
    let (host_end, has_port, port_empty) = match colon {
        Some(i) => (host_start + i, true, i + 1 == hostport.len()),
        None => (end, false, true),
    };
    Some(Authority {
        host_end,
        end,
        has_port,
        port_empty,
        scheme_end,
    })
}

/// `url` with any explicit `:port` removed (userinfo kept).
fn url_without_port(url: &str) -> String {
    match authority(url) {
        Some(a) if a.has_port => format!("{}{}", &url[..a.host_end], &url[a.end..]),
        _ => url.to_owned(),
    }
}

/// `url` with its explicit port, or with the scheme's default port added (`:443` for https, `:80`
/// for anything else, as twilio-python does) when it has none.
fn url_with_port(url: &str) -> String {
    match authority(url) {
        Some(a) if a.has_port && !a.port_empty => url.to_owned(),
        Some(a) => {
            let default = if url[..a.scheme_end].eq_ignore_ascii_case("https") {
                "443"
            } else {
                "80"
            };
            format!("{}:{}{}", &url[..a.host_end], default, &url[a.end..])
        }
        None => url.to_owned(),
    }
}

/// The first value of query parameter `name` in `url` (url-decoded), if any.
fn query_value(url: &str, name: &str) -> Option<String> {
    let after = url.split_once('?')?.1;
    let query = after.split('#').next().unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Lowercase hex of `bytes`.
fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const BASE: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const BODY: &[u8] = br#"{"property": "value", "boolean": true}"#;
    const BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const EMPTY_BODY_HASH: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The common parameters of the official vectors (twilio-python / twilio-node / twilio-go).
    fn call_params() -> Vec<(String, String)> {
        p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn base_vector() {
        assert_eq!(
            compute_signature(TOKEN, BASE, &call_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(validate_signature(
            TOKEN,
            BASE,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn parameter_order_given_does_not_matter() {
        let mut reversed = call_params();
        reversed.reverse();
        assert_eq!(
            compute_signature(TOKEN, BASE, &reversed),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn https_port_443_vector() {
        let url = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &call_params()),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        // Signed with :443 but received without a port: the default-port variant matches.
        assert!(validate_signature(
            TOKEN,
            BASE,
            &call_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        // Signed without a port but received with :443: the port-removed variant matches.
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn http_port_80_vector() {
        let url = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &call_params()),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
        assert!(validate_signature(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &call_params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn http_port_1234_vector() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &call_params()),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
    }

    #[test]
    fn a_received_explicit_port_is_stripped_for_a_signature_made_without_it() {
        let received = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(validate_signature(
            TOKEN,
            received,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn duplicate_params_vector() {
        let params = p(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(compute_signature(TOKEN, BASE, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
        assert!(validate_signature(TOKEN, BASE, &params, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
    }

    #[test]
    fn array_param_vector_in_either_order() {
        let a = p(&[
            ("MessagingBinding.Address", "+1325xxxxxxx"),
            ("MessagingBinding.Address", "+1415xxxxxxx"),
        ]);
        let b = p(&[
            ("MessagingBinding.Address", "+1415xxxxxxx"),
            ("MessagingBinding.Address", "+1325xxxxxxx"),
        ]);
        assert_eq!(compute_signature(TOKEN, BASE, &a), "83O6e2vORAoJHUNzJjDWN1jz+BA=");
        assert_eq!(compute_signature(TOKEN, BASE, &b), "83O6e2vORAoJHUNzJjDWN1jz+BA=");
        assert!(validate_signature(TOKEN, BASE, &b, "83O6e2vORAoJHUNzJjDWN1jz+BA="));
    }

    #[test]
    fn credentials_vector() {
        let url = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &call_params()),
            "CukzLTc1tT5dXEDIHm/tKBanW10="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "CukzLTc1tT5dXEDIHm/tKBanW10="
        ));
    }

    #[test]
    fn credentials_with_port_443_vector() {
        let url = "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &call_params()),
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="
        ));
        // And both cross variants, keeping the userinfo (the `user:pass` colon is not a port).
        let without = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(validate_signature(
            TOKEN,
            without,
            &call_params(),
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="
        ));
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "CukzLTc1tT5dXEDIHm/tKBanW10="
        ));
    }

    #[test]
    fn username_only_vector() {
        let url = "https://user@mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &call_params()),
            "2YRLlVAflCqxaNicjMpJcSTgzSs="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &call_params(),
            "2YRLlVAflCqxaNicjMpJcSTgzSs="
        ));
    }

    #[test]
    fn special_characters_are_hashed_as_given() {
        // twilio-node signs the WHATWG-normalised query (`'` → `%27`); we hash exactly the URL passed.
        let normalised = format!("{BASE}&Body=It%27s+amazing");
        assert_eq!(
            compute_signature(TOKEN, &normalised, &call_params()),
            "TfZzewPq8wqrGlMfyAud8+/IvJ0="
        );
        let raw = format!("{BASE}&Body=It's+amazing");
        assert!(!validate_signature(
            TOKEN,
            &raw,
            &call_params(),
            "TfZzewPq8wqrGlMfyAud8+/IvJ0="
        ));
    }

    #[test]
    fn json_body_hash_matches_the_official_value() {
        assert_eq!(hex_lower(&Sha256::digest(BODY)), BODY_HASH);
        assert_eq!(hex_lower(&Sha256::digest(b"{}")), EMPTY_BODY_HASH);
    }

    #[test]
    fn json_body_vector() {
        let url = format!("{BASE}&bodySHA256={BODY_HASH}");
        assert_eq!(compute_signature(TOKEN, &url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
        assert!(validate_signature_with_body(
            TOKEN,
            &url,
            BODY,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
    }

    #[test]
    fn json_body_hash_as_only_query_param_vector() {
        let url = format!("https://mycompany.com/myapp.php?bodySHA256={BODY_HASH}");
        assert_eq!(compute_signature(TOKEN, &url, &[]), "y77kIzt2vzLz71DgmJGsen2scGs=");
        assert!(validate_signature_with_body(
            TOKEN,
            &url,
            BODY,
            "y77kIzt2vzLz71DgmJGsen2scGs="
        ));
    }

    #[test]
    fn json_empty_body_vector_matches_only_through_the_default_port() {
        let url = format!("{BASE}&bodySHA256={EMPTY_BODY_HASH}");
        assert_ne!(compute_signature(TOKEN, &url, &[]), "Ldidvp12m26NI7eqEvxnEpkd9Hc=");
        assert!(validate_signature_with_body(
            TOKEN,
            &url,
            b"{}",
            "Ldidvp12m26NI7eqEvxnEpkd9Hc="
        ));
    }

    #[test]
    fn json_body_that_does_not_match_its_hash_is_rejected() {
        let url = format!("{BASE}&bodySHA256={BODY_HASH}");
        assert!(!validate_signature_with_body(
            TOKEN,
            &url,
            b"{\"property\": \"other\"}",
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
    }

    #[test]
    fn json_body_without_a_hash_parameter_is_rejected() {
        let sig = compute_signature(TOKEN, BASE, &[]);
        assert!(!validate_signature_with_body(TOKEN, BASE, BODY, &sig));
    }

    #[test]
    fn json_body_with_wrong_token_or_empty_signature_is_rejected() {
        let url = format!("{BASE}&bodySHA256={BODY_HASH}");
        assert!(!validate_signature_with_body(
            "54321",
            &url,
            BODY,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        assert!(!validate_signature_with_body(TOKEN, &url, BODY, ""));
    }

    #[test]
    fn api_gateway_status_callback_vector() {
        let url = "https://example.execute-api.us-east-1.amazonaws.com/twilio/status";
        let params = p(&[
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("ApiVersion", "2010-04-01"),
            ("From", "+15017250604"),
            ("MessageSid", "SM1342fe1b2c904d1ab04f0fc7a58abca9"),
            ("MessageStatus", "sent"),
            ("SmsSid", "SM1342fe1b2c904d1ab04f0fc7a58abca9"),
            ("SmsStatus", "sent"),
            ("To", "+15558675310"),
        ]);
        assert_eq!(compute_signature(TOKEN, url, &params), "aoCSgV1qjfCzDMtOLCy3duTB8Vg=");
        assert!(validate_signature(TOKEN, url, &params, "aoCSgV1qjfCzDMtOLCy3duTB8Vg="));
    }

    #[test]
    fn a_tampered_parameter_is_rejected() {
        let mut params = call_params();
        params[2].1 = "9999".to_owned();
        assert!(!validate_signature(
            TOKEN,
            BASE,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut extra = call_params();
        extra.push(("Extra".to_owned(), "1".to_owned()));
        assert!(!validate_signature(TOKEN, BASE, &extra, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn a_tampered_url_is_rejected() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert!(!validate_signature(
            TOKEN,
            url,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn a_wrong_token_is_rejected() {
        assert!(!validate_signature(
            "54321",
            BASE,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn an_empty_or_truncated_signature_is_rejected() {
        assert!(!validate_signature(TOKEN, BASE, &call_params(), ""));
        assert!(!validate_signature(
            TOKEN,
            BASE,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8"
        ));
        assert!(!validate_signature(TOKEN, BASE, &[], ""));
    }

    #[test]
    fn port_variants_are_built_correctly() {
        assert_eq!(url_without_port("https://h.com:8443/p?q=1"), "https://h.com/p?q=1");
        assert_eq!(url_with_port("https://h.com/p?q=1"), "https://h.com:443/p?q=1");
        assert_eq!(url_with_port("http://h.com"), "http://h.com:80");
        assert_eq!(url_with_port("http://h.com:8080/x"), "http://h.com:8080/x");
        assert_eq!(url_without_port("https://u:p@h.com:1/x"), "https://u:p@h.com/x");
        assert_eq!(url_with_port("https://u:p@h.com/x"), "https://u:p@h.com:443/x");
        assert_eq!(url_without_port("http://[::1]:3000/x"), "http://[::1]/x");
        assert_eq!(url_with_port("http://[::1]/x"), "http://[::1]:80/x");
        assert_eq!(url_with_port("https://h.com?a=b:c"), "https://h.com:443?a=b:c");
        assert_eq!(url_without_port("not a url"), "not a url");
    }

    // ---- properties ----

    use proptest::prelude::*;

    /// URLs as Twilio calls them: http(s), optional user info, a host, an optional port, a path
    /// and a query (ASCII, as sent on the wire).
    fn any_url() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["https", "http"]),
            "([a-z]{1,6}(:[a-z0-9]{1,6})?@)?",
            "[a-z0-9-]{1,12}(\\.[a-z]{2,6}){0,2}",
            prop::option::of(1u16..),
            "(/[A-Za-z0-9._~%-]{0,10}){0,3}",
            "(\\?[A-Za-z0-9_]{1,6}=[A-Za-z0-9%+._-]{0,8}(&[A-Za-z0-9_]{1,6}=[A-Za-z0-9%+._-]{0,8}){0,3})?",
        )
            .prop_map(|(scheme, user, host, port, path, query)| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{scheme}://{user}{host}{port}{path}{query}")
            })
    }

    /// Form parameters, repeated names and values included.
    fn any_params() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[A-Za-z]{1,3}", "\\PC{0,6}"), 0..8)
    }

    /// Any token Twilio could issue (and a few it would not).
    fn any_token() -> impl Strategy<Value = String> {
        prop_oneof!["[0-9a-f]{32}", "\\PC{1,80}"]
    }

    /// `text` with its byte at `index % len` replaced by a different printable ASCII byte
    /// (`text` must be ASCII and not empty).
    fn change_one_byte(text: &str, index: usize, delta: u8) -> String {
        let mut bytes = text.as_bytes().to_vec();
        let i = index % bytes.len();
        let shifted = (bytes[i] - 0x20 + 1 + delta % 94) % 95 + 0x20;
        bytes[i] = shifted;
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// `text` with its char at `index % chars` replaced by another one.
    fn change_one_char(text: &str, index: usize, replacement: char) -> String {
        let n = text.chars().count();
        let i = index % n;
        text.chars()
            .enumerate()
            .map(|(j, c)| {
                if j != i {
                    c
                } else if c == replacement {
                    if c == 'a' {
                        'b'
                    } else {
                        'a'
                    }
                } else {
                    replacement
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn a_signature_made_by_the_signer_verifies_with_or_without_the_default_port(
            token in any_token(), url in any_url(), params in any_params(), shuffle in any::<u64>(),
        ) {
            let signature = compute_signature(&token, &url, &params);
            prop_assert!(validate_signature(&token, &url, &params, &signature));
            // Parameter order never matters.
            let mut shuffled = params.clone();
            if !shuffled.is_empty() {
                let len = shuffled.len();
                shuffled.rotate_left(usize::try_from(shuffle).unwrap_or(0) % len);
                shuffled.swap(0, len - 1);
            }
            prop_assert!(validate_signature(&token, &url, &shuffled, &signature));
            // Signed without a port, received with the scheme's default one, and the reverse.
            let bare = url_without_port(&url);
            let with_default = url_with_port(&bare);
            let signed_bare = compute_signature(&token, &bare, &params);
            prop_assert!(validate_signature(&token, &with_default, &params, &signed_bare));
            let signed_with_port = compute_signature(&token, &with_default, &params);
            prop_assert!(validate_signature(&token, &bare, &params, &signed_with_port));
        }

        #[test]
        fn changing_any_one_byte_of_the_url_fails(
            token in any_token(), url in any_url(), params in any_params(), index in any::<usize>(), delta in any::<u8>(),
        ) {
            let signature = compute_signature(&token, &url, &params);
            let changed = change_one_byte(&url, index, delta);
            prop_assert_ne!(&changed, &url);
            prop_assert!(!validate_signature(&token, &changed, &params, &signature), "{} -> {}", url, changed);
        }

        #[test]
        fn changing_any_one_character_of_a_parameter_fails(
            token in any_token(),
            url in any_url(),
            params in prop::collection::vec(("[A-Za-z]{1,3}", "[A-Za-z0-9+ ]{1,6}"), 1..8),
            which in any::<usize>(),
            in_name in any::<bool>(),
            index in any::<usize>(),
            replacement in prop_oneof![prop::char::range('!', '~'), any::<char>()],
        ) {
            let signature = compute_signature(&token, &url, &params);
            let mut changed = params.clone();
            let i = which % changed.len();
            let field = if in_name { &mut changed[i].0 } else { &mut changed[i].1 };
            *field = change_one_char(field, index, replacement);
            prop_assert!(!validate_signature(&token, &url, &changed, &signature), "{:?} -> {:?}", params, changed);
            // Adding or dropping a parameter fails too.
            let mut fewer = params.clone();
            let dropped = fewer.remove(i);
            if !fewer.contains(&dropped) {
                prop_assert!(!validate_signature(&token, &url, &fewer, &signature));
            }
        }

        #[test]
        fn changing_any_one_byte_of_the_token_fails(
            token in "[0-9a-f]{32}", url in any_url(), params in any_params(), index in any::<usize>(), delta in any::<u8>(),
        ) {
            let signature = compute_signature(&token, &url, &params);
            let changed = change_one_byte(&token, index, delta);
            prop_assert!(!validate_signature(&changed, &url, &params, &signature));
        }

        #[test]
        fn arbitrary_headers_are_accepted_exactly_when_they_are_a_port_variants_signature(
            token in any_token(), url in prop_oneof![any_url(), any::<String>()], params in any_params(), header in any::<String>(),
        ) {
            // Arbitrary header values (and arbitrary URLs) never panic, and are accepted exactly when
            // they are the signature of one of the URL's port variants.
            let accepted = validate_signature(&token, &url, &params, &header);
            let expected = [url_without_port(&url), url_with_port(&url)]
                .iter()
                .any(|u| compute_signature(&token, u, &params) == header);
            prop_assert_eq!(accepted, expected && !header.is_empty());
            let real = compute_signature(&token, &url, &params);
            if real.len() > 1 {
                prop_assert!(!validate_signature(&token, &url, &params, &real[..real.len() - 1]));
            }
        }

        #[test]
        fn a_json_body_signature_verifies_and_any_one_byte_change_of_the_body_fails(
            token in any_token(),
            url in any_url(),
            body in prop::collection::vec(any::<u8>(), 0..200),
            index in any::<usize>(),
            delta in 1u8..,
        ) {
            let hash = hex_lower(&Sha256::digest(&body));
            let joiner = if url.contains('?') { '&' } else { '?' };
            let signed_url = format!("{url}{joiner}bodySHA256={hash}");
            let signature = compute_signature(&token, &signed_url, &[]);
            prop_assert!(validate_signature_with_body(&token, &signed_url, &body, &signature));
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = index % changed.len();
                changed[i] = changed[i].wrapping_add(delta);
                prop_assert!(!validate_signature_with_body(&token, &signed_url, &changed, &signature));
            }
            let mut wrong_token = token.clone();
            wrong_token.push('x');
            prop_assert!(!validate_signature_with_body(&wrong_token, &signed_url, &body, &signature));
        }

        #[test]
        fn arbitrary_json_webhook_requests_never_panic(
            token in any_token(),
            url in prop_oneof![any_url(), any::<String>(), "\\PC{0,20}\\?bodySHA256=\\PC{0,70}"],
            body in prop::collection::vec(any::<u8>(), 0..64),
            header in any::<String>(),
        ) {
            // Never accepted: the header would have to be the HMAC of the URL by chance.
            prop_assert!(!validate_signature_with_body(&token, &url, &body, &header));
        }
    }
}
