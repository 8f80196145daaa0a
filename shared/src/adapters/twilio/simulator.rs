//! A built-in stand-in for Twilio (used when no credentials are configured, and in tests).
//!
//! It answers like Twilio's test credentials: the magic `To` numbers below are refused with
//! Twilio's codes; any other number is accepted with a fresh `SM…` sid, and two signed status
//! callbacks (`sent`, then `delivered`) are posted to the message's `StatusCallback` URL, as
//! Twilio would (form-encoded, `X-Twilio-Signature` over the exact URL and the parameters).
//!
//! | To | Result |
//! |---|---|
//! | `+15005550001` | 21211 invalid 'To' number |
//! | `+15005550002` | 21612 cannot route to this number |
//! | `+15005550003` | 21408 no international permission |
//! | `+15005550004` | 21610 recipient unsubscribed (opted out) |
//! | `+15005550009` | 21614 not a mobile number |
//!
//! Sent messages are kept in memory, so `fetch` and `list_sent` agree with the callbacks.

use super::error::mask_numbers;
use super::signature::compute_signature;
use crate::adapters::system_clock::SystemClock;
use crate::domain::{PhoneNumber, ProviderSid};
use crate::ports::{Clock, OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, Sender, SmsProvider};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The account SID the simulator reports in its callbacks.
pub const SIMULATOR_ACCOUNT_SID: &str = "ACc0ffee00000000000000000000000000";

/// The number the simulator reports as `From` for Messaging Service sends (Twilio's magic valid
/// test sender).
pub const SIMULATOR_POOL_NUMBER: &str = "+15005550006";

/// Default delay before the `sent` callback.
const DEFAULT_FIRST_DELAY: Duration = Duration::from_millis(50);
/// Default delay between the `sent` and `delivered` callbacks.
const DEFAULT_SECOND_DELAY: Duration = Duration::from_millis(100);
/// Retries of one failed callback (so at most three attempts).
const CALLBACK_RETRIES: u32 = 2;
/// Pause before a callback retry, multiplied by the retry number.
const CALLBACK_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Total time allowed for one callback request.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// One message the simulator accepted.
#[derive(Debug, Clone)]
struct SimMessage {
    sid: ProviderSid,
    to: PhoneNumber,
    from: String,
    messaging_service_sid: Option<String>,
    body: String,
    status: String,
    date_created: DateTime<Utc>,
    /// Acceptance order, to break ties between equal creation times.
    seq: u64,
}

impl SimMessage {
    fn to_provider_message(&self) -> ProviderMessage {
        ProviderMessage {
            sid: self.sid.clone(),
            to: self.to.as_str().to_owned(),
            from: self.from.clone(),
            body: self.body.clone(),
            status: self.status.clone(),
            error_code: None,
            error_message: None,
            date_created: Some(self.date_created),
        }
    }
}

type Store = Arc<Mutex<HashMap<ProviderSid, SimMessage>>>;

fn lock(store: &Store) -> MutexGuard<'_, HashMap<ProviderSid, SimMessage>> {
    // A panic while holding the lock cannot leave the map half-updated (single inserts/updates).
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`SmsProvider`] that behaves like Twilio with test credentials, and sends signed callbacks.
#[derive(Clone)]
pub struct TwilioSimulator {
    auth_token: SecretString,
    http: reqwest::Client,
    first_delay: Duration,
    second_delay: Duration,
    messages: Store,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for TwilioSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSimulator")
            .field("first_delay", &self.first_delay)
            .field("second_delay", &self.second_delay)
            .finish_non_exhaustive()
    }
}

impl TwilioSimulator {
    /// A simulator that signs its callbacks with `auth_token` and posts them with `http`.
    /// Callbacks come ~50 ms (`sent`) and a further ~100 ms (`delivered`) after acceptance.
    pub fn new(auth_token: SecretString, http: reqwest::Client) -> Self {
        Self {
            auth_token,
            http,
            first_delay: DEFAULT_FIRST_DELAY,
            second_delay: DEFAULT_SECOND_DELAY,
            messages: Arc::new(Mutex::new(HashMap::new())),
            requests: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// Post the `sent` callback `first` after acceptance and `delivered` a further `second` later.
    #[must_use]
    pub fn with_callback_delays(mut self, first: Duration, second: Duration) -> Self {
        self.first_delay = first;
        self.second_delay = second;
        self
    }

    /// How many create-message requests reached the simulator, refused ones included.
    pub fn request_count(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many messages the simulator has accepted (refused sends are not counted).
    pub fn sent_count(&self) -> usize {
        lock(&self.messages).len()
    }

    /// The refusal Twilio's test credentials give for this `To` number, if it is a magic one.
    fn magic_refusal(to: &PhoneNumber) -> Option<ProviderError> {
        let masked = mask_numbers(to.as_str());
        let (code, message) = match to.as_str() {
            "+15005550001" => (21211, format!("The 'To' number {masked} is not a valid phone number.")),
            "+15005550002" => (21612, "The 'To' phone number is not currently reachable using the 'From' phone number via SMS.".to_owned()),
            "+15005550003" => (21408, format!("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {masked}.")),
            "+15005550004" => (21610, "Attempt to send to unsubscribed recipient".to_owned()),
            "+15005550009" => (21614, format!("The 'To' number {masked} is not a valid mobile number.")),
            _ => return None,
        };
        Some(ProviderError::Rejected { code, message })
    }
}

/// A fresh message sid: `SM` + 32 lowercase hex digits.
fn new_sid() -> Result<ProviderSid, ProviderError> {
    let raw = format!("SM{:032x}", rand::random::<u128>());
    ProviderSid::parse(&raw).map_err(|e| ProviderError::Unexpected(e.into()))
}

#[async_trait]
impl SmsProvider for TwilioSimulator {
    async fn send(&self, sms: &OutboundSms) -> Result<ProviderAccepted, ProviderError> {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(refusal) = Self::magic_refusal(&sms.to) {
            if let ProviderError::Rejected { code, .. } = &refusal {
                tracing::info!(to = %sms.to.masked(), code, "simulator refused the message");
            }
            return Err(refusal);
        }
        let sid = new_sid()?;
        let (from, messaging_service_sid, status) = match &sms.from {
            Sender::Number(n) => (n.as_str().to_owned(), None, "queued"),
            // Twilio's initial status for a Messaging Service send is `accepted`.
            Sender::MessagingService(ms) => (SIMULATOR_POOL_NUMBER.to_owned(), Some(ms.clone()), "accepted"),
        };
        let message = {
            let mut map = lock(&self.messages);
            let seq = u64::try_from(map.len()).unwrap_or(u64::MAX);
            let message = SimMessage {
                sid: sid.clone(),
                to: sms.to.clone(),
                from,
                messaging_service_sid,
                body: sms.body.as_str().to_owned(),
                status: status.to_owned(),
                date_created: SystemClock.now(),
                seq,
            };
            map.insert(sid.clone(), message.clone());
            message
        };
        tracing::info!(to = %sms.to.masked(), sid = %sid, "simulator accepted the message");
        let job = CallbackJob {
            http: self.http.clone(),
            auth_token: self.auth_token.clone(),
            url: sms.status_callback.clone(),
            messages: Arc::clone(&self.messages),
            message,
            first_delay: self.first_delay,
            second_delay: self.second_delay,
        };
        tokio::spawn(job.run());
        Ok(ProviderAccepted {
            sid,
            status: status.to_owned(),
            segments: Some(sms.body.segments()),
        })
    }

    async fn fetch(&self, sid: &ProviderSid) -> Result<ProviderMessage, ProviderError> {
        lock(&self.messages)
            .get(sid)
            .map(SimMessage::to_provider_message)
            .ok_or(ProviderError::NotFound)
    }

    /// Same filters as the real client: `to`, the sender (number, or Messaging Service), created
    /// no more than a minute before `since`; newest first, at most `limit`.
    async fn list_sent(
        &self,
        to: &PhoneNumber,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ProviderMessage>, ProviderError> {
        let cutoff = since - chrono::TimeDelta::minutes(1);
        let map = lock(&self.messages);
        let mut found: Vec<&SimMessage> = map
            .values()
            .filter(|m| &m.to == to && m.date_created >= cutoff)
            .filter(|m| match from {
                Sender::Number(n) => m.messaging_service_sid.is_none() && m.from == n.as_str(),
                Sender::MessagingService(ms) => m.messaging_service_sid.as_deref() == Some(ms.as_str()),
            })
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse((m.date_created, m.seq)));
        Ok(found
            .into_iter()
            .take(limit)
            .map(SimMessage::to_provider_message)
            .collect())
    }
}

/// The two status callbacks of one accepted message.
struct CallbackJob {
    http: reqwest::Client,
    auth_token: SecretString,
    url: String,
    messages: Store,
    message: SimMessage,
    first_delay: Duration,
    second_delay: Duration,
}

impl CallbackJob {
    async fn run(self) {
        tokio::time::sleep(self.first_delay).await;
        self.advance("sent").await;
        tokio::time::sleep(self.second_delay).await;
        self.advance("delivered").await;
    }

    /// Move the stored message to `status` (Twilio's state changes whether or not the callback
    /// gets through), then post the callback.
    async fn advance(&self, status: &str) {
        if let Some(m) = lock(&self.messages).get_mut(&self.message.sid) {
            m.status = status.to_owned();
        }
        if self.url.is_empty() {
            return;
        }
        let params = self.params(status);
        let signature = compute_signature(self.auth_token.expose_secret(), &self.url, &params);
        for attempt in 0..=CALLBACK_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(CALLBACK_RETRY_PAUSE * attempt).await;
            }
            let sent = self
                .http
                .post(&self.url)
                .header("X-Twilio-Signature", &signature)
                .form(&params)
                .timeout(CALLBACK_TIMEOUT)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    tracing::debug!(sid = %self.message.sid, status, "simulator status callback delivered");
                    return;
                }
                Ok(resp) => tracing::warn!(
                    sid = %self.message.sid,
                    status,
                    attempt = attempt + 1,
                    http_status = resp.status().as_u16(),
                    "simulator status callback refused"
                ),
                Err(e) => tracing::warn!(
                    sid = %self.message.sid,
                    status,
                    attempt = attempt + 1,
                    error = %e.without_url(),
                    "simulator status callback failed"
                ),
            }
        }
        tracing::warn!(sid = %self.message.sid, status, "simulator gave up on the status callback");
    }

    /// The form parameters Twilio sends with a status callback.
    fn params(&self, status: &str) -> Vec<(String, String)> {
        let sid = self.message.sid.as_str();
        let mut params = vec![
            ("AccountSid".to_owned(), SIMULATOR_ACCOUNT_SID.to_owned()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
            ("From".to_owned(), self.message.from.clone()),
            ("To".to_owned(), self.message.to.as_str().to_owned()),
            ("MessageSid".to_owned(), sid.to_owned()),
            ("SmsSid".to_owned(), sid.to_owned()),
            ("MessageStatus".to_owned(), status.to_owned()),
            ("SmsStatus".to_owned(), status.to_owned()),
        ];
        if let Some(ms) = &self.message.messaging_service_sid {
            params.push(("MessagingServiceSid".to_owned(), ms.clone()));
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageBody;

    fn sms(to: &str, callback: &str) -> OutboundSms {
        OutboundSms {
            to: PhoneNumber::parse_e164(to).expect("number"),
            from: Sender::Number(PhoneNumber::parse_e164("+15005550006").expect("from")),
            body: MessageBody::parse("hello").expect("body"),
            status_callback: callback.to_owned(),
        }
    }

    fn sim() -> TwilioSimulator {
        TwilioSimulator::new(SecretString::from("sim-token"), reqwest::Client::new())
            .with_callback_delays(Duration::from_millis(1), Duration::from_millis(1))
    }

    #[tokio::test]
    async fn magic_numbers_are_refused_without_echoing_them() {
        let s = sim();
        for (to, want) in [
            ("+15005550001", 21211),
            ("+15005550002", 21612),
            ("+15005550003", 21408),
            ("+15005550004", 21610),
            ("+15005550009", 21614),
        ] {
            match s.send(&sms(to, "")).await {
                Err(ProviderError::Rejected { code, message }) => {
                    assert_eq!(code, want);
                    assert!(!message.contains(&to[1..]), "{message}");
                }
                other => panic!("{to}: expected Rejected, got {other:?}"),
            }
        }
        assert_eq!(s.sent_count(), 0);
    }

    #[tokio::test]
    async fn the_invalid_number_message_is_masked_like_twilio_text() {
        match sim().send(&sms("+15005550001", "")).await {
            Err(ProviderError::Rejected { message, .. }) => {
                assert_eq!(message, "The 'To' number +1500*** is not a valid phone number.");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_accepted_message_gets_a_twilio_shaped_sid_and_advances_to_delivered() {
        let s = sim();
        let accepted = s.send(&sms("+14155550100", "")).await.expect("accepted");
        let sid = accepted.sid.as_str();
        assert_eq!(accepted.status, "queued");
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert!(sid[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(s.sent_count(), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let m = s.fetch(&accepted.sid).await.expect("known");
            if m.status == "delivered" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "still {}", m.status);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn unknown_sids_are_not_found() {
        let sid = ProviderSid::parse("SM00000000000000000000000000000000").expect("sid");
        assert!(matches!(sim().fetch(&sid).await, Err(ProviderError::NotFound)));
    }

    #[tokio::test]
    async fn list_sent_filters_by_recipient_and_sender_newest_first() {
        let s = sim();
        let since = Utc::now();
        let a = s.send(&sms("+14155550100", "")).await.expect("a");
        let b = s.send(&sms("+14155550100", "")).await.expect("b");
        s.send(&sms("+14155550199", "")).await.expect("other recipient");
        let to = PhoneNumber::parse_e164("+14155550100").expect("to");
        let from = Sender::Number(PhoneNumber::parse_e164("+15005550006").expect("from"));
        let listed = s.list_sent(&to, &from, since, 10).await.expect("list");
        let sids: Vec<_> = listed.iter().map(|m| m.sid.clone()).collect();
        assert_eq!(sids, vec![b.sid.clone(), a.sid.clone()]);
        assert_eq!(s.list_sent(&to, &from, since, 1).await.expect("list").len(), 1);
        let other_from = Sender::Number(PhoneNumber::parse_e164("+15005550007").expect("from"));
        assert!(s.list_sent(&to, &other_from, since, 10).await.expect("list").is_empty());
        let later = since + chrono::TimeDelta::minutes(5);
        assert!(s.list_sent(&to, &from, later, 10).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn messaging_service_sends_start_accepted_and_list_by_service() {
        let s = sim();
        let ms = "MG00000000000000000000000000000001".to_owned();
        let mut out = sms("+14155550100", "");
        out.from = Sender::MessagingService(ms.clone());
        let accepted = s.send(&out).await.expect("accepted");
        assert_eq!(accepted.status, "accepted");
        let to = out.to.clone();
        let listed = s
            .list_sent(
                &to,
                &Sender::MessagingService(ms),
                Utc::now() - chrono::TimeDelta::minutes(1),
                10,
            )
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].from, SIMULATOR_POOL_NUMBER);
    }
}
