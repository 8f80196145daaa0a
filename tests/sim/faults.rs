//! The fault plan of one run, drawn from its seed, and the wrappers that apply it at every port:
//! the store (through `CountingStore`'s hook), the provider ([`SimProvider`]), the retry queue
//! ([`SimQueue`]). A `Hang` fault is a crash at that await point: the wrapper notifies the driver
//! and never answers, the driver drops the in-flight operation and rebuilds the process.

use crate::sched::Scheduler;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smsrelay::domain::{PhoneNumber, ProviderSid};
use smsrelay::ports::{
    Agent, AgentError, AgentReply, AgentRequest, Alert, AlertError, Alerter, Classification, DomainEvent,
    EventPublisher, PublishError, ToolHost,
};
use smsrelay::ports::{
    Clock, JobPayload, JobQueue, OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, QueueError, QueueStats,
    ReceivedJob, Sender, SmsProvider, StoreError,
};
use smsrelay::testing::{ManualClock, RecordingAlerter, StoreFault, StoreFaults};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The run's random stream and what it injected. One per run; every wrapper shares it.
pub struct Faults {
    rng: Mutex<StdRng>,
    /// Probability that one port call is faulted (while enabled).
    rate: f64,
    enabled: AtomicBool,
    /// Whether a crash may be injected now (only inside an operation the driver can drop).
    crashable: AtomicBool,
    /// Signalled when a wrapper hangs (the process "crashed" at that await point).
    pub crashed: Notify,
    calls: AtomicU64,
    faulted: AtomicU64,
    by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// Faults injected on `CounterStore::claim` (alert dedupe fails open on them, by design).
    pub claim_faults: AtomicU64,
    /// The order of port calls inside an operation, and the run's trace.
    pub sched: Scheduler,
    /// One suspension point of a crashable operation in this many is a crash.
    crash_at_await: u32,
    /// SQLite's owner thread, held by a crash with a store call in flight until the driver has
    /// dropped the operation ([`StorePlan`]).
    pub held: Mutex<Option<smsrelay::adapters::sqlite::ConnectionHold>>,
}

impl Faults {
    pub fn new(seed: u64, rate: f64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rate,
            enabled: AtomicBool::new(true),
            crashable: AtomicBool::new(false),
            crashed: Notify::new(),
            calls: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            by_kind: Mutex::default(),
            claim_faults: AtomicU64::new(0),
            sched: Scheduler::new(seed),
            crash_at_await: CRASH_AT_AWAIT,
            held: Mutex::default(),
        }
    }

    /// Crash at one suspension point in `n` instead of [`CRASH_AT_AWAIT`].
    #[must_use]
    pub fn with_crash_at_await(mut self, n: u32) -> Self {
        self.crash_at_await = n.max(1);
        self
    }

    /// Draw from the run's stream (the driver uses it too, so one seed fixes the whole run).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut lock(&self.rng))
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    pub fn set_crashable(&self, on: bool) {
        self.crashable.store(on, Ordering::SeqCst);
    }

    /// One port call: whether to fault it, and with which of `kinds` (weights). A crash kind
    /// (name starting `crash`) is only chosen while crashable, and signals the driver.
    fn decide(&self, kinds: &[(&'static str, u32)]) -> Option<&'static str> {
        let kind = self.draw(kinds);
        self.sched.record(&["fault", kind.unwrap_or("-")]);
        kind
    }

    fn draw(&self, kinds: &[(&'static str, u32)]) -> Option<&'static str> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let crashable = self.crashable.load(Ordering::SeqCst);
        let usable: Vec<(&'static str, u32)> = kinds
            .iter()
            .copied()
            .filter(|(k, _)| crashable || !k.starts_with("crash"))
            .collect();
        let total: u32 = usable.iter().map(|(_, w)| w).sum();
        let kind = {
            let mut rng = lock(&self.rng);
            if total == 0 || !rng.gen_bool(self.rate) {
                return None;
            }
            let mut pick = rng.gen_range(0..total);
            usable
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(k, _)| *k)?
        };
        self.note(kind);
        if kind.starts_with("crash") {
            // Once per crash: the operation is dropped, nothing else may hang meanwhile.
            self.crashable.store(false, Ordering::SeqCst);
            self.crashed.notify_one();
        }
        Some(kind)
    }

    /// Whether to crash the operation at this suspension point (every point where it waits on
    /// a port call's turn or on the clock, whatever the call): one in [`CRASH_AT_AWAIT`] (or the
    /// plan's), while
    /// faults are on and the operation is crashable.
    pub fn crash_at_await(&self) -> bool {
        if !self.enabled.load(Ordering::SeqCst) || !self.crashable.load(Ordering::SeqCst) {
            return false;
        }
        if !self.with_rng(|r| r.gen_ratio(1, self.crash_at_await)) {
            return false;
        }
        self.note("crash_at_await");
        true
    }

    /// Count a fault the driver itself injected (duplicate callbacks, redeliveries, …).
    pub fn note(&self, kind: &'static str) {
        self.faulted.fetch_add(1, Ordering::Relaxed);
        *lock(&self.by_kind).entry(kind).or_default() += 1;
    }

    pub fn port_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn faulted(&self) -> u64 {
        self.faulted.load(Ordering::Relaxed)
    }

    pub fn by_kind(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.by_kind).clone()
    }
}

/// One suspension point in this many is a crash (while faults are on, in a crashable operation),
/// unless the plan says otherwise.
pub const CRASH_AT_AWAIT: u32 = 1_000;

fn injected(what: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("simulated {what}"))
}

/// Store methods that write (a fault after one of them is "the write landed, the answer was lost").
const WRITES: [&str; 28] = [
    "create_message",
    "create_messages",
    "update_message",
    "update_message_and_link",
    "link_provider_sid",
    "record_webhook",
    "add",
    "reset",
    "add_many",
    "claim",
    "put_doc",
    "reserve_slot",
    "opt_out",
    "opt_in",
    "append_consent",
    "take_send_slot",
    "check_send",
    "begin",
    "complete",
    "release",
    "create_batch",
    "record_item",
    "add_finished",
    "claim_completion",
    "mark_alerted",
    "create_conversation",
    "update_conversation",
    "create_enrolment",
];

/// The store side of the plan: an error or a crash before a call; after a write, an error (a
/// timeout whose write landed) or a crash with the write landed. On SQLite also a crash with the
/// call in flight on the connection's owner thread: the thread is held, the call goes on and
/// queues its statement there, and the driver drops the operation while the statement is queued
/// and unanswered; it then releases the thread and waits for it to drain (the write lands, as it
/// would in a process killed after handing it over), and rebuilds the process.
pub struct StorePlan {
    pub faults: Arc<Faults>,
    /// The SQLite store the calls reach (`None` on DynamoDB Local: no owner thread).
    pub sqlite: Option<smsrelay::adapters::sqlite::SqliteStore>,
}

impl StoreFaults for StorePlan {
    fn turn(
        &self,
        method: &'static str,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> {
        Some(Box::pin(self.faults.sched.turn(method)))
    }

    fn before(&self, method: &'static str) -> Option<StoreFault> {
        self.faults.sched.record(&["store", method]);
        let fault = self.fault_before(method);
        if fault.is_some() {
            // No call follows (an error, or a hang the driver drops).
            self.faults.sched.finish();
        }
        fault
    }

    fn after(&self, method: &'static str, ok: bool) -> Option<StoreFault> {
        self.faults.sched.finish();
        self.fault_after(method, ok)
    }
}

/// A crash with a store call in flight on SQLite's owner thread (see [`StorePlan`]).
pub const CRASH_IN_FLIGHT: &str = "crash_with_store_call_in_flight";

impl StorePlan {
    fn fault_before(&self, method: &'static str) -> Option<StoreFault> {
        let in_flight = if self.sqlite.is_some() { 1 } else { 0 };
        let kind = self.faults.decide(&[
            ("store_error_before_call", 40),
            ("crash_before_store_call", 1),
            (CRASH_IN_FLIGHT, in_flight),
        ])?;
        // A claim whose write lands (in flight at the crash) cannot make an alert repeat: only
        // the faults that keep it from the store or hide its answer count.
        if method == "claim" && kind != CRASH_IN_FLIGHT {
            self.faults.claim_faults.fetch_add(1, Ordering::Relaxed);
        }
        match kind {
            "crash_before_store_call" => Some(StoreFault::Hang),
            CRASH_IN_FLIGHT => {
                // The call goes on to the store and queues its statement behind the hold; the
                // driver drops it there (`decide` has told it to).
                if let Some(store) = &self.sqlite {
                    *lock(&self.faults.held) = Some(store.hold_connection());
                }
                None
            }
            _ => Some(StoreFault::Fail(injected("store error"))),
        }
    }

    fn fault_after(&self, method: &'static str, ok: bool) -> Option<StoreFault> {
        if !ok || !(WRITES.contains(&method) || method == "update_enrolment" || method == "put_campaign") {
            return None;
        }
        let kind = self
            .faults
            .decide(&[("store_timeout_after_write", 20), ("crash_after_store_write", 1)])?;
        if method == "claim" {
            self.faults.claim_faults.fetch_add(1, Ordering::Relaxed);
        }
        match kind {
            "crash_after_store_write" => Some(StoreFault::Hang),
            _ => Some(StoreFault::Fail(injected("store timeout after the write"))),
        }
    }
}

/// One message that reached the provider (and will be delivered).
#[derive(Debug, Clone)]
pub struct Landed {
    pub sid: String,
    /// Our id, from the StatusCallback URL.
    pub message_id: Option<String>,
    pub to: String,
    pub from: String,
    pub body: String,
    /// When it reached the provider (the simulation's clock).
    pub at: DateTime<Utc>,
    /// Its final status (`delivered` or `undelivered`) and error code, as a fetch reports it.
    pub status: &'static str,
    pub error_code: Option<u32>,
}

/// A status callback the provider owes us.
#[derive(Debug, Clone)]
pub struct Callback {
    pub message_id: Option<String>,
    pub sid: String,
    pub status: &'static str,
    /// `ErrorCode` of an `undelivered` one.
    pub error_code: Option<u32>,
    /// Posted without our id in the URL (one send in ten): only the sid tells which message it
    /// is. Every delivery of the callback is the same request.
    pub without_id: bool,
}

/// A send request that reached the provider, whatever became of it.
#[derive(Debug, Clone)]
pub struct Request {
    pub message_id: Option<String>,
    pub to: String,
    pub at: DateTime<Utc>,
}

/// Twilio's delivery error for an unreachable handset: retryable (domain::retry_policy).
pub const RETRYABLE_DELIVERY_ERROR: u32 = 30003;
/// Twilio's delivery error for a message the carrier filtered: not retryable.
pub const PERMANENT_DELIVERY_ERROR: u32 = 30007;

#[derive(Default)]
struct ProviderState {
    landed: Vec<Landed>,
    callbacks: Vec<Callback>,
    requests: Vec<Request>,
    /// Per message id, the sends it reported `undelivered` with a retryable code: each allows
    /// one more send (a fresh attempt).
    retry_licences: BTreeMap<String, u32>,
}

/// Deliberately broken behaviour, to show the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    None,
    /// The provider lands one in twenty accepted sends twice (a duplicate send).
    DoubleSend,
    /// The consent store drops every registry opt-out write (the history still records the
    /// evidence): opted-out phones keep being texted.
    LoseOptOuts,
}

/// A consent store that loses every registry opt-out ([`Sabotage::LoseOptOuts`]).
pub struct LoseOptOuts(pub Arc<dyn smsrelay::ports::ConsentStore>);

#[async_trait]
impl smsrelay::ports::ConsentStore for LoseOptOuts {
    async fn opt_out(&self, _phone: &PhoneNumber, _reason: &str, _at: DateTime<Utc>) -> Result<(), StoreError> {
        Ok(())
    }
    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        self.0.opt_in(phone).await
    }
    async fn opt_out_of(&self, phone: &PhoneNumber) -> Result<Option<smsrelay::ports::OptOut>, StoreError> {
        self.0.opt_out_of(phone).await
    }
    async fn append_consent(
        &self,
        phone: &PhoneNumber,
        evidence: &smsrelay::domain::ConsentEvidence,
    ) -> Result<bool, StoreError> {
        self.0.append_consent(phone, evidence).await
    }
    async fn consent_history(&self, phone: &PhoneNumber) -> Result<Vec<smsrelay::domain::ConsentEvidence>, StoreError> {
        self.0.consent_history(phone).await
    }
    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        self.0.take_send_slot(phone, now, window, limit).await
    }
    async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<smsrelay::ports::SendCheck, StoreError> {
        self.0.check_send(phone, now, window, limit).await
    }
}

/// A Twilio-shaped provider on the simulation's clock: it keeps every message that reached it
/// (for reconciliation's list, for status fetches, and for the oracle), owes a `sent` and a
/// `delivered` callback for each (while faults are on, one in twenty-five `undelivered` with a
/// retryable code and one in fifty with a permanent one), refuses the `invalid` numbers with
/// 21211 and the `unsubscribed` ones (opted out at the carrier) with 21610, and faults calls
/// as the plan says: 5xx, 429, a timeout before it was processed, accepted then a timeout,
/// accepted then our process crashed.
pub struct SimProvider {
    clock: Arc<ManualClock>,
    faults: Arc<Faults>,
    invalid: HashSet<String>,
    unsubscribed: HashSet<String>,
    sabotage: Sabotage,
    state: Mutex<ProviderState>,
}

impl SimProvider {
    pub fn new(
        clock: Arc<ManualClock>,
        faults: Arc<Faults>,
        (invalid, unsubscribed): (HashSet<String>, HashSet<String>),
        sabotage: Sabotage,
    ) -> Self {
        Self {
            clock,
            faults,
            invalid,
            unsubscribed,
            sabotage,
            state: Mutex::default(),
        }
    }

    /// How many sends reached the provider, and `f` over those from index `from` on.
    pub fn landed_since<T>(&self, from: usize, f: impl FnOnce(&[Landed]) -> T) -> (usize, T) {
        let s = lock(&self.state);
        (s.landed.len(), f(s.landed.get(from..).unwrap_or(&[])))
    }

    pub fn landed(&self) -> Vec<Landed> {
        lock(&self.state).landed.clone()
    }

    /// Every send request that reached the provider.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// Sends of message `id` the provider reported undelivered with a retryable code.
    pub fn retry_licences(&self, id: &str) -> u32 {
        lock(&self.state).retry_licences.get(id).copied().unwrap_or(0)
    }

    /// The deliberate break this run carries.
    pub fn sabotage(&self) -> Sabotage {
        self.sabotage
    }

    /// Whether the carrier refuses `phone` with 21610.
    pub fn unsubscribed(&self, phone: &str) -> bool {
        self.unsubscribed.contains(phone)
    }

    /// Take the callbacks the driver chose (by index into the owed list, which it may reorder).
    pub fn take_callbacks(&self, pick: impl FnOnce(&mut Vec<Callback>) -> Vec<Callback>) -> Vec<Callback> {
        pick(&mut lock(&self.state).callbacks)
    }

    fn land(&self, sms: &OutboundSms) -> ProviderSid {
        let mut s = lock(&self.state);
        let n = s.landed.len() + 1;
        let sid = format!("SM{n:032x}");
        let message_id = message_id_of(sms);
        let without_id = self.faults.with_rng(|r| r.gen_ratio(1, 10));
        let outcome = if self.faults.enabled() {
            self.faults.with_rng(|r| r.gen_range(0..100))
        } else {
            99
        };
        let (last, error_code) = match outcome {
            0..=3 => ("undelivered", Some(RETRYABLE_DELIVERY_ERROR)),
            4..=5 => ("undelivered", Some(PERMANENT_DELIVERY_ERROR)),
            _ => ("delivered", None),
        };
        if error_code == Some(RETRYABLE_DELIVERY_ERROR) {
            self.faults.note("delivery_undelivered_retryable");
            if let Some(id) = &message_id {
                *s.retry_licences.entry(id.clone()).or_default() += 1;
            }
        } else if error_code.is_some() {
            self.faults.note("delivery_undelivered_permanent");
        }
        s.landed.push(Landed {
            sid: sid.clone(),
            message_id: message_id.clone(),
            to: sms.to.as_str().to_owned(),
            from: sms.from.as_str().to_owned(),
            body: sms.body.as_str().to_owned(),
            at: self.clock.now(),
            status: last,
            error_code,
        });
        for (status, error_code) in [("sent", None), (last, error_code)] {
            s.callbacks.push(Callback {
                message_id: message_id.clone(),
                sid: sid.clone(),
                status,
                error_code,
                without_id,
            });
        }
        ProviderSid::parse(&sid).unwrap_or_else(|_| unreachable!("a well-formed sid"))
    }

    fn message(l: &Landed) -> Option<ProviderMessage> {
        Some(ProviderMessage {
            sid: ProviderSid::parse(&l.sid).ok()?,
            to: l.to.clone(),
            from: l.from.clone(),
            body: l.body.clone(),
            status: l.status.to_owned(),
            error_code: l.error_code,
            error_message: None,
            date_created: Some(l.at),
        })
    }
}

/// Our id, from the send's StatusCallback URL.
fn message_id_of(sms: &OutboundSms) -> Option<String> {
    url::Url::parse(&sms.status_callback).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "message_id")
            .map(|(_, v)| v.into_owned())
    })
}

fn server_error() -> ProviderError {
    ProviderError::Transient {
        code: Some(20500),
        reason: "simulated 500".to_owned(),
        maybe_sent: true,
    }
}

fn timeout() -> ProviderError {
    ProviderError::Transient {
        code: None,
        reason: "simulated timeout".to_owned(),
        maybe_sent: true,
    }
}

#[async_trait]
impl SmsProvider for SimProvider {
    async fn send(&self, sms: &OutboundSms) -> Result<ProviderAccepted, ProviderError> {
        let _turn = self.faults.sched.enter("provider.send").await;
        lock(&self.state).requests.push(Request {
            message_id: message_id_of(sms),
            to: sms.to.as_str().to_owned(),
            at: self.clock.now(),
        });
        let fault = self.faults.decide(&[
            ("provider_5xx", 3),
            ("provider_429", 3),
            ("provider_timeout_not_sent", 2),
            ("provider_accepted_then_timeout", 2),
            ("crash_after_provider_accepted", 1),
        ]);
        match fault {
            Some("provider_5xx") => return Err(server_error()),
            Some("provider_429") => return Err(ProviderError::RateLimited { retry_after: None }),
            Some("provider_timeout_not_sent") => return Err(timeout()),
            _ => {}
        }
        if self.unsubscribed.contains(sms.to.as_str()) {
            return Err(ProviderError::Rejected {
                code: 21610,
                message: "Attempt to send to unsubscribed recipient".to_owned(),
            });
        }
        if self.invalid.contains(sms.to.as_str()) {
            return Err(ProviderError::Rejected {
                code: 21211,
                message: "The 'To' number is not a valid phone number.".to_owned(),
            });
        }
        let sid = self.land(sms);
        if self.sabotage == Sabotage::DoubleSend && self.faults.with_rng(|r| r.gen_ratio(1, 20)) {
            self.land(sms);
        }
        match fault {
            Some("provider_accepted_then_timeout") => Err(timeout()),
            Some(_) => std::future::pending().await,
            None => Ok(ProviderAccepted {
                sid,
                status: "queued".to_owned(),
                segments: Some(sms.body.segments()),
            }),
        }
    }

    async fn fetch(&self, sid: &ProviderSid) -> Result<ProviderMessage, ProviderError> {
        let _turn = self.faults.sched.enter("provider.fetch").await;
        if self.faults.decide(&[("provider_fetch_5xx", 1)]).is_some() {
            return Err(server_error());
        }
        lock(&self.state)
            .landed
            .iter()
            .find(|l| l.sid == sid.as_str())
            .and_then(Self::message)
            .ok_or(ProviderError::NotFound)
    }

    async fn list_sent(
        &self,
        to: &PhoneNumber,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ProviderMessage>, ProviderError> {
        let _turn = self.faults.sched.enter("provider.list_sent").await;
        if self.faults.decide(&[("provider_list_5xx", 1)]).is_some() {
            return Err(server_error());
        }
        let since = since - chrono::Duration::minutes(1);
        Ok(lock(&self.state)
            .landed
            .iter()
            .rev()
            .filter(|l| l.to == to.as_str() && l.from == from.as_str() && l.at >= since)
            .take(limit)
            .filter_map(Self::message)
            .collect())
    }
}

/// The retry queue with faults: an enqueue that fails, one that lands twice (a duplicate
/// delivery), one that lands and then reports failure; a receive that fails; an ack that fails
/// (the job comes back once its visibility runs out); a crash at any of them.
pub struct SimQueue {
    inner: Arc<dyn JobQueue>,
    faults: Arc<Faults>,
}

impl SimQueue {
    pub fn new(inner: Arc<dyn JobQueue>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }

    fn unexpected(what: &str) -> QueueError {
        QueueError::Unexpected(anyhow::anyhow!("simulated {what}"))
    }
}

#[async_trait]
impl JobQueue for SimQueue {
    async fn enqueue(&self, payload: &JobPayload, delay: Duration) -> Result<(), QueueError> {
        let _turn = self.faults.sched.enter("queue.enqueue").await;
        match self.faults.decide(&[
            ("queue_enqueue_error", 3),
            ("queue_enqueue_duplicated", 3),
            ("queue_enqueue_landed_then_error", 2),
            ("crash_at_enqueue", 1),
        ]) {
            Some("queue_enqueue_error") => Err(Self::unexpected("enqueue error")),
            Some("queue_enqueue_duplicated") => {
                self.inner.enqueue(payload, delay).await?;
                self.inner.enqueue(payload, delay).await
            }
            Some("queue_enqueue_landed_then_error") => {
                self.inner.enqueue(payload, delay).await?;
                Err(Self::unexpected("enqueue timeout"))
            }
            Some(_) => std::future::pending().await,
            None => self.inner.enqueue(payload, delay).await,
        }
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedJob>, QueueError> {
        let _turn = self.faults.sched.enter("queue.receive").await;
        match self.faults.decide(&[("queue_receive_error", 1)]) {
            Some(_) => Err(Self::unexpected("receive error")),
            None => self.inner.receive(max, visibility).await,
        }
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let _turn = self.faults.sched.enter("queue.ack").await;
        match self.faults.decide(&[("queue_ack_lost", 3), ("crash_at_ack", 1)]) {
            Some("queue_ack_lost") => Err(Self::unexpected("ack error")),
            Some(_) => std::future::pending().await,
            None => self.inner.ack(receipt).await,
        }
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let _turn = self.faults.sched.enter("queue.stats").await;
        self.inner.stats().await
    }
}

/// Domain events with faults: the bus refuses the whole publish, or some events of it, or the
/// process crashes at it. Events are best effort (docs/design.md): no fault here may change what
/// is sent or recorded.
pub struct SimEvents {
    faults: Arc<Faults>,
}

impl SimEvents {
    pub fn new(faults: Arc<Faults>) -> Self {
        Self { faults }
    }
}

#[async_trait]
impl EventPublisher for SimEvents {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        let _turn = self.faults.sched.enter("events.publish").await;
        match self.faults.decide(&[
            ("events_publish_error", 3),
            ("events_partly_refused", 2),
            ("crash_at_publish", 1),
        ]) {
            Some("events_publish_error") => Err(PublishError {
                failed: (0..events.len()).collect(),
                source: Some(anyhow::anyhow!("simulated bus outage")),
            }),
            Some("events_partly_refused") => Err(PublishError {
                failed: vec![0],
                source: None,
            }),
            Some(_) => std::future::pending().await,
            None => Ok(()),
        }
    }
}

/// The alert channel with faults: it refuses an alert (Slack or the bus is down; nothing is
/// recorded as delivered), or the process crashes while raising it.
pub struct SimAlerter {
    inner: Arc<RecordingAlerter>,
    faults: Arc<Faults>,
}

impl SimAlerter {
    pub fn new(inner: Arc<RecordingAlerter>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }
}

#[async_trait]
impl Alerter for SimAlerter {
    async fn raise(&self, alert: &Alert) -> Result<(), AlertError> {
        let _turn = self.faults.sched.enter("alerter.raise").await;
        match self.faults.decide(&[("alert_channel_error", 3), ("crash_at_alert", 1)]) {
            Some("alert_channel_error") => Err(AlertError(anyhow::anyhow!("simulated channel outage"))),
            Some(_) => std::future::pending().await,
            None => self.inner.raise(alert).await,
        }
    }
}

/// The agent with faults: the model server unavailable after the adapter's own retries, the
/// deadline passed, or the process crashing mid-turn. Nothing was sent on any of them; the
/// agent-turn job is redelivered, and a reply is never sent twice for one inbound turn.
pub struct SimAgent {
    inner: Arc<dyn Agent>,
    faults: Arc<Faults>,
}

impl SimAgent {
    pub fn new(inner: Arc<dyn Agent>, faults: Arc<Faults>) -> Self {
        Self { inner, faults }
    }

    fn fault(&self) -> Option<Result<(), AgentError>> {
        match self.faults.decide(&[
            ("agent_unavailable", 3),
            ("agent_deadline_passed", 1),
            ("crash_in_agent_turn", 1),
        ])? {
            "agent_unavailable" => Some(Err(AgentError::Unavailable("simulated 503".to_owned()))),
            "agent_deadline_passed" => Some(Err(AgentError::DeadlineExceeded)),
            _ => Some(Ok(())),
        }
    }
}

#[async_trait]
impl Agent for SimAgent {
    async fn reply(&self, request: AgentRequest<'_>, host: &dyn ToolHost) -> Result<AgentReply, AgentError> {
        let turn = self.faults.sched.enter("agent.reply").await;
        let fault = self.fault();
        // The turn ends here: the scripted agent's tools call the store, each on its own turn.
        drop(turn);
        match fault {
            Some(Err(e)) => Err(e),
            Some(Ok(())) => std::future::pending().await,
            None => self.inner.reply(request, host).await,
        }
    }

    async fn classify(&self, request: AgentRequest<'_>) -> Result<Option<Classification>, AgentError> {
        let turn = self.faults.sched.enter("agent.classify").await;
        let fault = self.fault();
        drop(turn);
        match fault {
            Some(Err(e)) => Err(e),
            Some(Ok(())) => std::future::pending().await,
            None => self.inner.classify(request).await,
        }
    }
}
