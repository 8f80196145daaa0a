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
//! Accepted messages are kept in the [`Ledger`] (a table in smsrelay-local's SQLite file; memory
//! in a Lambda), so `fetch` and `list_sent` answer as Twilio would — after a restart too. A message's
//! status moves on in Twilio's time, not in this process's: it reads `sent` once the first
//! callback delay has passed since acceptance and `delivered` once both have, whether or not a
//! callback job survived to post it (a `kill -9` loses the jobs, never Twilio's state). Refused
//! (magic) numbers are never stored, as Twilio stores no message for a refused create.

use super::error::mask_numbers;
use super::ledger::{Ledger, SimRecord};
use super::signature::compute_signature;
use crate::adapters::system_clock::SystemClock;
use crate::domain::{PhoneNumber, ProviderSid};
use crate::ports::{
    Clock, OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, Sender, SmsProvider, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// The statuses a message may move from to reach `sent`, and to reach `delivered`.
const BEFORE_SENT: &[&str] = &["accepted", "queued", "sending"];
const BEFORE_DELIVERED: &[&str] = &["accepted", "queued", "sending", "sent"];

fn to_provider_message(r: SimRecord, status: String) -> Result<ProviderMessage, ProviderError> {
    let sid = ProviderSid::parse(&r.sid).map_err(|e| ProviderError::Unexpected(e.into()))?;
    Ok(ProviderMessage {
        sid,
        to: r.to,
        from: r.from,
        body: r.body,
        status,
        error_code: None,
        error_message: None,
        date_created: Some(r.date_created),
    })
}

/// The ledger could not be read or written: like a Twilio 5xx, worth a retry.
fn ledger_error(e: &StoreError) -> ProviderError {
    ProviderError::Transient {
        code: None,
        reason: format!("simulator ledger unavailable: {e}"),
        maybe_sent: false,
    }
}

/// [`SmsProvider`] that behaves like Twilio with test credentials, and sends signed callbacks.
#[derive(Clone)]
pub struct TwilioSimulator {
    auth_token: SecretString,
    http: reqwest::Client,
    first_delay: Duration,
    second_delay: Duration,
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    requests: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
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
    /// A simulator that signs its callbacks with `auth_token`, posts them with `http` and keeps
    /// its messages in `ledger` (smsrelay-local: the store's SQLite file). Callbacks come ~50 ms
    /// (`sent`) and a further ~100 ms (`delivered`) after acceptance; time is the system clock.
    pub fn new(auth_token: SecretString, http: reqwest::Client, ledger: impl Into<Ledger>) -> Self {
        Self {
            auth_token,
            http,
            first_delay: DEFAULT_FIRST_DELAY,
            second_delay: DEFAULT_SECOND_DELAY,
            ledger: ledger.into(),
            clock: Arc::new(SystemClock),
            requests: Arc::new(AtomicUsize::new(0)),
            accepted: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Post the `sent` callback `first` after acceptance and `delivered` a further `second` later.
    #[must_use]
    pub fn with_callback_delays(mut self, first: Duration, second: Duration) -> Self {
        self.first_delay = first;
        self.second_delay = second;
        self
    }

    /// Read creation times and Twilio's progress from `clock` (the app's clock in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many create-message requests reached this simulator, refused ones included.
    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many messages this simulator accepted since it was built (refused sends are not
    /// counted; the ledger also holds those of earlier runs).
    pub fn sent_count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The status Twilio reports for `r` at `now`: the stored one, or further along when the
    /// callback delays have passed since acceptance (Twilio's state moves on without us).
    fn status_at(&self, r: &SimRecord, now: DateTime<Utc>) -> String {
        let since = (now - r.date_created).to_std().unwrap_or(Duration::ZERO);
        if since >= self.first_delay + self.second_delay && BEFORE_DELIVERED.contains(&r.status.as_str()) {
            "delivered".to_owned()
        } else if since >= self.first_delay && BEFORE_SENT.contains(&r.status.as_str()) {
            "sent".to_owned()
        } else {
            r.status.clone()
        }
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
        self.requests.fetch_add(1, Ordering::SeqCst);
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
        let record = SimRecord {
            sid: sid.as_str().to_owned(),
            to: sms.to.as_str().to_owned(),
            from,
            messaging_service_sid,
            body: sms.body.as_str().to_owned(),
            status: status.to_owned(),
            date_created: self.clock.now(),
        };
        // Recorded before it is acknowledged: Twilio never answers 201 for a message it forgets.
        self.ledger.insert(record.clone()).await.map_err(|e| ledger_error(&e))?;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        tracing::info!(to = %sms.to.masked(), sid = %sid, "simulator accepted the message");
        let job = CallbackJob {
            http: self.http.clone(),
            auth_token: self.auth_token.clone(),
            url: sms.status_callback.clone(),
            ledger: self.ledger.clone(),
            message: record,
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
        let found = self.ledger.get(sid.as_str()).await.map_err(|e| ledger_error(&e))?;
        let record = found.ok_or(ProviderError::NotFound)?;
        let status = self.status_at(&record, self.clock.now());
        to_provider_message(record, status)
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
        let found = self
            .ledger
            .list(to.as_str(), from, cutoff, limit)
            .await
            .map_err(|e| ledger_error(&e))?;
        let now = self.clock.now();
        found
            .into_iter()
            .map(|r| {
                let status = self.status_at(&r, now);
                to_provider_message(r, status)
            })
            .collect()
    }
}

/// The two status callbacks of one accepted message.
struct CallbackJob {
    http: reqwest::Client,
    auth_token: SecretString,
    url: String,
    ledger: Ledger,
    message: SimRecord,
    first_delay: Duration,
    second_delay: Duration,
}

impl CallbackJob {
    async fn run(self) {
        tokio::time::sleep(self.first_delay).await;
        self.advance(BEFORE_SENT, "sent").await;
        tokio::time::sleep(self.second_delay).await;
        self.advance(BEFORE_DELIVERED, "delivered").await;
    }

    /// Move the stored message to `status` (Twilio's state changes whether or not the callback
    /// gets through), then post the callback.
    async fn advance(&self, from: &'static [&'static str], status: &'static str) {
        if let Err(e) = self.ledger.advance(&self.message.sid, from, status).await {
            tracing::warn!(sid = %self.message.sid, status, error.message = %e, "simulator could not record the status");
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
            ("To".to_owned(), self.message.to.clone()),
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

#[cfg(all(test, feature = "sqlite"))]
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
        let ledger = Ledger::in_memory();
        TwilioSimulator::new(
            SecretString::from("sim-token"),
            crate::wiring::plain_http_client(),
            ledger,
        )
        .with_callback_delays(Duration::from_millis(1), Duration::from_millis(1))
    }

    /// A simulator on the ledger file at `path` whose callbacks would take an hour, on `clock`.
    fn slow_sim_on(path: &std::path::Path, clock: Arc<crate::testing::ManualClock>) -> TwilioSimulator {
        let ledger = crate::adapters::sqlite::SimulatorLedger::open(path).expect("ledger");
        TwilioSimulator::new(
            SecretString::from("sim-token"),
            crate::wiring::plain_http_client(),
            ledger,
        )
        .with_callback_delays(Duration::from_secs(60), Duration::from_secs(60))
        .with_clock(clock)
    }

    #[tokio::test]
    async fn a_restarted_simulator_answers_for_messages_accepted_before_as_twilio_would() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("local.db");
        let clock = Arc::new(crate::testing::ManualClock::new(Utc::now()));
        let first = slow_sim_on(&path, clock.clone());
        let accepted = first.send(&sms("+14155550100", "")).await.expect("accepted");
        assert!(matches!(
            first.send(&sms("+15005550001", "")).await,
            Err(ProviderError::Rejected { .. })
        ));
        // The process dies before any callback job runs.
        drop(first);
        let second = slow_sim_on(&path, clock.clone());
        let m = second.fetch(&accepted.sid).await.expect("known after the restart");
        assert_eq!(m.status, "queued", "no time has passed");
        assert_eq!(m.body, "hello");
        clock.advance(Duration::from_secs(61));
        assert_eq!(second.fetch(&accepted.sid).await.expect("known").status, "sent");
        clock.advance(Duration::from_secs(60));
        assert_eq!(second.fetch(&accepted.sid).await.expect("known").status, "delivered");
        let to = PhoneNumber::parse_e164("+14155550100").expect("to");
        let from = Sender::Number(PhoneNumber::parse_e164("+15005550006").expect("from"));
        let listed = second
            .list_sent(&to, &from, clock.now() - chrono::TimeDelta::minutes(2), 10)
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].sid.clone(), listed[0].status.as_str()),
            (accepted.sid, "delivered")
        );
        let refused = PhoneNumber::parse_e164("+15005550001").expect("magic");
        assert!(
            second
                .list_sent(&refused, &from, clock.now() - chrono::TimeDelta::hours(1), 10)
                .await
                .expect("list")
                .is_empty(),
            "a refused create leaves no message behind"
        );
        assert_eq!(second.sent_count(), 0, "counts this run's acceptances");
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
