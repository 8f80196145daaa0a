//! `FakeSmsProvider`: a scripted [`SmsProvider`] for use-case tests on the manual clock. It
//! accepts every send unless a failure was queued with [`FakeSmsProvider::fail_next`], records
//! when (on the clock) each call arrived, and can take `latency` of clock time per call, so a
//! test can exhaust a time budget without waiting. Provider behaviour itself (request shape,
//! error classification) is tested against wiremock, not here.

use super::ManualClock;
use crate::domain::{PhoneNumber, ProviderSid};
use crate::ports::{Clock, Moment, OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, Sender, SmsProvider};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One call that reached the fake.
#[derive(Debug, Clone)]
pub struct FakeCall {
    /// Recipient.
    pub to: PhoneNumber,
    /// Text.
    pub body: String,
    /// When it arrived, on the clock's monotonic time.
    pub at: Moment,
    /// The sid it was given, if accepted.
    pub sid: Option<ProviderSid>,
}

#[derive(Debug, Default)]
struct State {
    failures: VecDeque<ProviderError>,
    calls: Vec<FakeCall>,
    accepted: Vec<ProviderMessage>,
    latency: Duration,
}

/// A scripted provider on a manual clock.
#[derive(Debug)]
pub struct FakeSmsProvider {
    clock: Arc<ManualClock>,
    state: Mutex<State>,
}

impl FakeSmsProvider {
    /// Accept everything, instantly, on `clock`.
    pub fn new(clock: Arc<ManualClock>) -> Self {
        Self {
            clock,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a status fetch of `sid` reports from now on (its final status, as the provider
    /// learned it).
    pub fn set_status(&self, sid: &ProviderSid, status: &str, error_code: Option<u32>) {
        for m in self.state().accepted.iter_mut().filter(|m| m.sid == *sid) {
            m.status = status.to_owned();
            m.error_code = error_code;
        }
    }

    /// Answer the next send (after any failures queued before) with `error`.
    pub fn fail_next(&self, error: ProviderError) {
        self.state().failures.push_back(error);
    }

    /// Make every later call take `latency` of clock time (the clock advances inside the call).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Every send that reached the fake, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.state().calls.clone()
    }

    /// How many sends reached the fake.
    pub fn call_count(&self) -> usize {
        self.state().calls.len()
    }
}

#[async_trait]
impl SmsProvider for FakeSmsProvider {
    async fn send(&self, sms: &OutboundSms) -> Result<ProviderAccepted, ProviderError> {
        let at = self.clock.monotonic();
        let (failure, latency, n) = {
            let mut s = self.state();
            (s.failures.pop_front(), s.latency, s.calls.len())
        };
        self.clock.advance(latency);
        let sid = match failure {
            Some(_) => None,
            None => Some(
                ProviderSid::parse(&format!("SM{:032x}", n + 1)).map_err(|e| ProviderError::Unexpected(e.into()))?,
            ),
        };
        let mut s = self.state();
        s.calls.push(FakeCall {
            to: sms.to.clone(),
            body: sms.body.as_str().to_owned(),
            at,
            sid: sid.clone(),
        });
        match (failure, sid) {
            (Some(e), _) => Err(e),
            (None, Some(sid)) => {
                s.accepted.push(ProviderMessage {
                    sid: sid.clone(),
                    to: sms.to.as_str().to_owned(),
                    from: sms.from.as_str().to_owned(),
                    body: sms.body.as_str().to_owned(),
                    status: "queued".to_owned(),
                    error_code: None,
                    error_message: None,
                    date_created: Some(self.clock.now()),
                });
                Ok(ProviderAccepted {
                    sid,
                    status: "queued".to_owned(),
                    segments: Some(sms.body.segments()),
                })
            }
            (None, None) => Err(ProviderError::Unexpected(anyhow::anyhow!("no sid"))),
        }
    }

    async fn fetch(&self, sid: &ProviderSid) -> Result<ProviderMessage, ProviderError> {
        self.state()
            .accepted
            .iter()
            .find(|m| m.sid == *sid)
            .cloned()
            .ok_or(ProviderError::NotFound)
    }

    async fn list_sent(
        &self,
        to: &PhoneNumber,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ProviderMessage>, ProviderError> {
        let since = since - chrono::Duration::minutes(1);
        Ok(self
            .state()
            .accepted
            .iter()
            .rev()
            .filter(|m| m.to == to.as_str() && m.from == from.as_str())
            .filter(|m| m.date_created.is_none_or(|d| d >= since))
            .take(limit)
            .cloned()
            .collect())
    }
}
