//! Twilio's incoming-message webhook parameters (form-encoded, protocol-facts §4 and
//! conversation-facts §2): the few the product needs, read from the signed parameter list.
//! Unknown parameters are ignored (Twilio adds new ones without notice) but stay signed.

use super::compute_signature;
use crate::domain::{PhoneNumber, ProviderSid, Region};
use secrecy::{ExposeSecret, SecretString};

/// One inbound SMS as Twilio posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// `MessageSid` (or the older `SmsSid`): the natural dedupe key.
    pub sid: ProviderSid,
    /// The lead's number (`From`).
    pub from: PhoneNumber,
    /// Our number it was sent to (`To`).
    pub to: PhoneNumber,
    /// The text (`Body`, up to 1,600 characters, reassembled by Twilio); may be empty for MMS.
    pub body: String,
    /// `OptOutType` (`STOP`, `START`, `HELP`) when Advanced Opt-Out handled it.
    pub opt_out_type: Option<String>,
}

/// A parameter the product needs is missing or invalid (a 400 naming it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` is missing or invalid")]
pub struct InboundSmsError {
    /// The Twilio parameter at fault.
    pub field: &'static str,
}

impl InboundSms {
    /// Read the parameters of one webhook (already signature-checked).
    ///
    /// # Errors
    /// [`InboundSmsError`] naming the first missing or invalid parameter.
    pub fn from_params(params: &[(String, String)], region: Region) -> Result<Self, InboundSmsError> {
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let sid = get("MessageSid")
            .or_else(|| get("SmsSid"))
            .and_then(|s| ProviderSid::parse(s).ok())
            .ok_or(InboundSmsError { field: "MessageSid" })?;
        let phone = |field: &'static str| {
            get(field)
                .and_then(|v| PhoneNumber::parse(v, region).ok())
                .ok_or(InboundSmsError { field })
        };
        Ok(Self {
            sid,
            from: phone("From")?,
            to: phone("To")?,
            body: get("Body").unwrap_or_default().to_owned(),
            opt_out_type: get("OptOutType").filter(|v| !v.trim().is_empty()).map(str::to_owned),
        })
    }
}

/// The form parameters Twilio posts for an inbound SMS from `from` to `to` (the full SMS set of
/// conversation-facts §2.1 that a simulator can know; no geographic fields).
pub fn inbound_params(sid: &str, account_sid: &str, from: &str, to: &str, body: &str) -> Vec<(String, String)> {
    let segments = crate::domain::MessageBody::parse(body.to_owned()).map_or(1, |b| b.segments());
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("FromCountry", "US"),
        ("To", to),
        ("NumSegments", &segments.to_string()),
        ("MessageSid", sid),
        ("AccountSid", account_sid),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// What the webhook answered when the simulator posted an inbound SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedInbound {
    /// The `MessageSid` it carried.
    pub sid: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The answer's body (TwiML).
    pub body: String,
}

/// Post `params` to `url` as Twilio does: form-encoded, signed with `auth_token` over `url`.
///
/// # Errors
/// The request could not be made (the server is not reachable).
pub async fn post_signed_inbound(
    http: &reqwest::Client,
    auth_token: &SecretString,
    url: &str,
    params: &[(String, String)],
) -> Result<(u16, String), reqwest::Error> {
    let signature = compute_signature(auth_token.expose_secret(), url, params);
    let resp = http
        .post(url)
        .header("x-twilio-signature", signature)
        .header("user-agent", "TwilioProxy/1.1")
        .form(params)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::twilio::validate_signature;

    const URL: &str = "https://example.execute-api.us-east-1.amazonaws.com/twilio/inbound";

    /// The inbound parameter set of conversation-facts §2.5 (self-generated vectors, computed with
    /// the algorithm that reproduces Twilio's official ones).
    fn reply_params(body: &str, sid: &str, opt_out: Option<&str>) -> Vec<(String, String)> {
        let zeros = "0".repeat(32);
        let mut p: Vec<(String, String)> = [
            ("Body", body),
            ("MessageSid", sid),
            ("SmsSid", sid),
            ("SmsMessageSid", sid),
            ("AccountSid", &format!("AC{zeros}")),
            ("MessagingServiceSid", &format!("MG{zeros}")),
            ("From", "+12125550123"),
            ("To", "+14155550100"),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("SmsStatus", "received"),
            ("ApiVersion", "2010-04-01"),
            ("FromCity", "NEW YORK"),
            ("FromState", "NY"),
            ("FromZip", "10001"),
            ("FromCountry", "US"),
            ("ToCity", "SAN FRANCISCO"),
            ("ToState", "CA"),
            ("ToZip", "94105"),
            ("ToCountry", "US"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let Some(o) = opt_out {
            p.push(("OptOutType".to_owned(), o.to_owned()));
        }
        p
    }

    #[test]
    fn the_reply_vector_validates_and_parses() {
        let p = reply_params(
            "Yes! Tomorrow at 3pm works, thanks",
            "SM7e2f1c0a9b8d4e6f8a1b2c3d4e5f6a7b",
            None,
        );
        assert!(validate_signature("12345", URL, &p, "X+erB+Uq/8fVF+W4bSjvxCH6z/4="));
        let sms = InboundSms::from_params(&p, Region::US).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sms.from.as_str(), "+12125550123");
        assert_eq!(sms.to.as_str(), "+14155550100");
        assert_eq!(sms.body, "Yes! Tomorrow at 3pm works, thanks");
        assert_eq!(sms.opt_out_type, None);
    }

    #[test]
    fn the_stop_vector_validates_and_carries_opt_out_type() {
        let p = reply_params("Stop", "SMa1b2c3d4e5f60718293a4b5c6d7e8f90", Some("STOP"));
        assert!(validate_signature("12345", URL, &p, "7isxo8iP1trCH5ZJXtDbzT+rmLU="));
        assert!(!validate_signature("54321", URL, &p, "7isxo8iP1trCH5ZJXtDbzT+rmLU="));
        let sms = InboundSms::from_params(&p, Region::US).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sms.opt_out_type.as_deref(), Some("STOP"));
    }

    #[test]
    fn a_missing_sid_or_bad_number_names_the_parameter() {
        let mut p = reply_params("hi", "SM7e2f1c0a9b8d4e6f8a1b2c3d4e5f6a7b", None);
        p.retain(|(k, _)| k != "MessageSid" && k != "SmsSid");
        assert_eq!(
            InboundSms::from_params(&p, Region::US),
            Err(InboundSmsError { field: "MessageSid" })
        );
        let mut p = reply_params("hi", "SM7e2f1c0a9b8d4e6f8a1b2c3d4e5f6a7b", None);
        for (k, v) in &mut p {
            if k == "From" {
                *v = "not-a-number".to_owned();
            }
        }
        assert_eq!(
            InboundSms::from_params(&p, Region::US),
            Err(InboundSmsError { field: "From" })
        );
    }

    #[tokio::test]
    async fn the_simulator_posts_a_webhook_twilio_would_sign_the_same_way() {
        use wiremock::matchers::{header_exists, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/webhooks/twilio/inbound"))
            .and(header_exists("x-twilio-signature"))
            .respond_with(ResponseTemplate::new(200).set_body_string(crate::adapters::twilio::twiml::EMPTY))
            .expect(1)
            .mount(&server)
            .await;
        let url = format!("{}/webhooks/twilio/inbound", server.uri());
        let params = inbound_params(
            "SM00000000000000000000000000000042",
            "AC1",
            "+14155550100",
            "+15005550006",
            "yes",
        );
        let token = SecretString::from("sim-auth-token".to_owned());
        let (status, body) = post_signed_inbound(&crate::wiring::plain_http_client(), &token, &url, &params)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((status, body.as_str()), (200, crate::adapters::twilio::twiml::EMPTY));
        let requests = server.received_requests().await.unwrap_or_default();
        let req = &requests[0];
        let got: Vec<(String, String)> = url::form_urlencoded::parse(&req.body).into_owned().collect();
        let signature = req
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(validate_signature("sim-auth-token", &url, &got, signature));
        let sms = InboundSms::from_params(&got, Region::US).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (sms.from.as_str(), sms.to.as_str(), sms.body.as_str()),
            ("+14155550100", "+15005550006", "yes")
        );
    }

    // ---- properties ----

    use proptest::prelude::*;

    /// E.164 numbers this crate accepts: North American, and a few international shapes.
    fn any_e164() -> impl Strategy<Value = String> {
        prop_oneof![
            (200u16..=999, 200u16..=999, 0u16..=9999).prop_map(|(npa, nxx, line)| format!("+1{npa}{nxx}{line:04}")),
            "\\+44[0-9]{10}",
            "\\+49[0-9]{6,12}",
            "\\+61[0-9]{9}",
            "\\+353[0-9]{8,9}",
        ]
    }

    fn any_sid() -> impl Strategy<Value = String> {
        prop_oneof!["SM[0-9a-f]{32}", "MM[0-9a-f]{32}", "[A-Za-z0-9_-]{1,64}"]
    }

    /// Form encoding as Twilio (and reqwest's `.form`) writes it, read back the way the webhook does.
    fn over_the_wire(params: &[(String, String)]) -> Vec<(String, String)> {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        url::form_urlencoded::parse(encoded.as_bytes()).into_owned().collect()
    }

    proptest! {
        #[test]
        fn arbitrary_form_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), us in any::<bool>()) {
            let params: Vec<(String, String)> = url::form_urlencoded::parse(&bytes).into_owned().collect();
            let region = if us { Region::US } else { Region::parse("GB").unwrap_or(Region::US) };
            if let Ok(sms) = InboundSms::from_params(&params, region) {
                prop_assert!(PhoneNumber::parse_e164(sms.from.as_str()).is_ok());
                prop_assert!(PhoneNumber::parse_e164(sms.to.as_str()).is_ok());
            }
        }

        #[test]
        fn arbitrary_parameters_never_panic_and_name_the_first_bad_one(
            params in prop::collection::vec(
                (prop_oneof![
                    Just("MessageSid".to_owned()), Just("SmsSid".to_owned()), Just("From".to_owned()),
                    Just("To".to_owned()), Just("Body".to_owned()), Just("OptOutType".to_owned()), "\\PC{0,8}",
                ], prop_oneof![any_sid(), any_e164(), "\\PC{0,20}"]),
                0..12,
            ),
        ) {
            let first = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let result = InboundSms::from_params(&params, Region::US);
            let sid_ok = first("MessageSid").or_else(|| first("SmsSid")).is_some_and(|s| ProviderSid::parse(s).is_ok());
            let phone_ok = |k: &str| first(k).is_some_and(|v| PhoneNumber::parse(v, Region::US).is_ok());
            match result {
                Ok(sms) => {
                    prop_assert!(sid_ok && phone_ok("From") && phone_ok("To"));
                    prop_assert_eq!(sms.body.as_str(), first("Body").unwrap_or_default());
                }
                Err(InboundSmsError { field }) => {
                    let want = if !sid_ok { "MessageSid" } else if !phone_ok("From") { "From" } else { "To" };
                    prop_assert_eq!(field, want);
                    prop_assert!(!(sid_ok && phone_ok("From") && phone_ok("To")));
                }
            }
        }

        #[test]
        fn a_generated_inbound_sms_round_trips_over_the_wire(
            sid in any_sid(),
            from in any_e164(),
            to in any_e164(),
            body in prop_oneof!["\\PC{0,300}", any::<String>(), Just(String::new()), Just("STOP".to_owned())],
            opt_out in prop::option::of(prop::sample::select(vec!["STOP", "START", "HELP"])),
            extra in prop::collection::vec(("[A-Z][A-Za-z]{2,10}", "\\PC{0,10}"), 0..4),
            rotate in any::<usize>(),
            token in "[0-9a-f]{32}",
        ) {
            let mut params = inbound_params(&sid, "AC00000000000000000000000000000000", &from, &to, &body);
            if let Some(o) = opt_out {
                params.push(("OptOutType".to_owned(), o.to_owned()));
            }
            // Twilio adds parameters without notice: unknown ones (never one we read) are ignored.
            let ours = ["MessageSid", "SmsSid", "From", "To", "Body", "OptOutType"];
            params.extend(extra.into_iter().filter(|(k, _)| !ours.contains(&k.as_str())));
            let len = params.len();
            params.rotate_left(rotate % len);
            let url = "https://relay.example.com/webhooks/twilio/inbound";
            let signature = compute_signature(&token, url, &params);
            let received = over_the_wire(&params);
            prop_assert!(validate_signature(&token, url, &received, &signature));
            let sms = InboundSms::from_params(&received, Region::US).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(sms.sid.as_str(), sid.as_str());
            prop_assert_eq!(sms.from.as_str(), from.as_str());
            prop_assert_eq!(sms.to.as_str(), to.as_str());
            prop_assert_eq!(sms.body, body);
            prop_assert_eq!(sms.opt_out_type.as_deref(), opt_out);
        }
    }
}
