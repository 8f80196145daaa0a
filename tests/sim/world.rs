//! One simulated run: the real router, use cases, processor and retry consumer on a real store
//! (SQLite file or DynamoDB Local) and a real retry queue (SQLite's with the SQLite store,
//! `SqsJobQueue` on the in-process SQS of [`crate::sqs`] with DynamoDB Local), all on one manual clock, with the
//! fault plan of [`crate::faults`] at every port. A seeded scheduler interleaves the operations a
//! deployment sees; a crash drops the in-flight operation and rebuilds the process from the store.
//! At the end the faults stop, the system is driven until nothing is due, and every invariant of
//! docs/design.md is checked against the store and the oracle ([`crate::check`]).

mod retell;

use crate::faults::{Callback, Faults, Sabotage, SimAgent, SimAlerter, SimEvents, SimProvider, SimQueue, StorePlan};
use axum::body::Body;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use smsrelay::adapters::sqlite::{SqliteJobQueue, SqliteStore};
use smsrelay::adapters::twilio::compute_signature;
use smsrelay::adapters::twilio::inbound::inbound_params;
use smsrelay::config::Config;
use smsrelay::entrypoints::jobs::{drain_queue_once, run_processor};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::ports::{Clock, JobQueue};
use smsrelay::testing::{CountingStore, ManualClock, RecordingAlerter};
use smsrelay::wiring::Deps;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt as _;

pub const BASE: &str = "https://relay.example.com";
pub const OURS: &str = "+15005550006";
const API_KEY: &str = "sim-key";
const MAX_RECEIVES: u32 = 5;
pub const RATE_LIMIT_PER_HOUR: u32 = 5;
pub const CAMPAIGN_DAILY_LIMIT: u32 = 2;
pub const ZONES: [&str; 3] = ["America/New_York", "America/Chicago", "America/Los_Angeles"];

/// Which store the run uses.
pub enum Backend {
    /// A SQLite file (the store and the queue share it, as in smsrelay-local).
    Sqlite,
    /// A fresh table in DynamoDB Local, and the retry queue on SQS: the production
    /// `SqsJobQueue` through the AWS SDK against the simulation's in-process SQS
    /// ([`crate::sqs`]) on the same manual clock (moto keeps real time).
    Dynamo,
}

/// What to run.
pub struct Plan {
    pub seed: u64,
    pub backend: Backend,
    /// Messages to get accepted (single sends, batch items, campaign steps).
    pub messages: usize,
    /// Probability that one port call is faulted while the faults are on.
    pub fault_rate: f64,
    pub sabotage: Sabotage,
    /// One suspension point of a crashable operation in this many is a crash.
    pub crash_at_await: u32,
}

impl Plan {
    /// `SIM_SEED` and `SIM_MESSAGES` override the seed and size (to replay a failing run).
    pub fn new(seed: u64, backend: Backend, messages: usize) -> Self {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            seed: env("SIM_SEED").unwrap_or(seed),
            backend,
            messages: env("SIM_MESSAGES").map_or(messages, |m| usize::try_from(m).unwrap_or(messages)),
            fault_rate: 0.3,
            sabotage: Sabotage::None,
            crash_at_await: crate::faults::CRASH_AT_AWAIT,
        }
    }
}

/// A request the simulated client will repeat (it got no answer, a 5xx or a 409).
#[derive(Clone)]
pub struct Pending {
    kind: RequestKind,
    method: &'static str,
    path: String,
    body: Value,
    key: Option<String>,
}

impl Pending {
    /// A POST without an idempotency key.
    fn post(kind: RequestKind, path: String, body: Value) -> Self {
        Self {
            kind,
            method: "POST",
            path,
            body,
            key: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Send,
    Batch,
    Lead,
    Cancel,
    OperatorRetry,
    ConsentOptOut,
    ConsentOptIn,
    Other,
}

/// What the outside world saw: the oracle the invariants are checked against.
#[derive(Default)]
pub struct Oracle {
    /// Message ids answered with a 2xx (sends, batch items, first steps).
    pub accepted: BTreeSet<String>,
    /// Enrolment ids answered with a 2xx.
    pub enrolments: BTreeSet<String>,
    /// Inbound texts answered 200: (phone, body, when).
    pub inbound: Vec<(String, String, DateTime<Utc>)>,
    /// Every START texted (answered or not): (phone, when). A phone is opted out by the user
    /// from its recorded STOP until a START texted after it.
    pub starts: Vec<(String, DateTime<Utc>)>,
    /// When the faults stopped (alerts after it must be strictly once per cooldown).
    pub settled_from: Option<DateTime<Utc>>,
    /// Ids answered `scheduled` (what a caller may still cancel).
    pub scheduled: Vec<String>,
    /// Messages a cancel answered 200 `canceled` for, and when.
    pub canceled: Vec<(String, DateTime<Utc>)>,
    /// Operator retries asked for, per message (answered or not): each allows one more send.
    pub operator_retries: BTreeMap<String, u32>,
}

/// Figures of one run.
pub struct Report {
    pub seed: u64,
    /// The plan's size (what `SIM_MESSAGES` replays).
    pub target: usize,
    pub store: &'static str,
    /// Requests the simulation's SQS answered (0 on the SQLite queue).
    pub sqs_requests: u64,
    /// The retry queue's adapter: `sqlite`, or `sqs` (the simulation's SQS server).
    pub queue: &'static str,
    pub messages: usize,
    pub ops: u64,
    pub crashes: u64,
    /// Crashes with a store call queued and unanswered on SQLite's owner thread.
    pub in_flight_crashes: u64,
    pub port_calls: u64,
    pub faults: u64,
    /// Port calls and faults while the faults were on (before the system is settled).
    pub chaos_calls: u64,
    pub chaos_faults: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub provider_sends: usize,
    pub checks: u64,
    pub violations: Vec<String>,
    pub settled_rounds: u32,
    pub wall: Duration,
    /// The trace digest: every port call in the order it ran, every fault decision, every
    /// HTTP answer and the stored end state. One seed, one digest.
    pub digest: u64,
    pub trace_events: u64,
    /// How often the flows beyond plain sends ran (cancels, operator retries, consent API,
    /// 21610 refusals, undelivered reports).
    pub flows: BTreeMap<&'static str, u64>,
}

impl Report {
    pub fn replay_command(&self) -> String {
        let test = match self.store {
            "dynamodb" => "a_seeded_run_on_dynamodb_local_keeps_every_invariant",
            _ => "a_seeded_run_on_sqlite_keeps_every_invariant",
        };
        format!(
            "SIM_SEED={} SIM_MESSAGES={} cargo test -p e2e --all-features --test sim {test} -- --nocapture",
            self.seed, self.target
        )
    }

    pub fn figures(&self) -> String {
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
        #[allow(clippy::cast_precision_loss)]
        let share = |f: u64, c: u64| 100.0 * f as f64 / c.max(1) as f64;
        let (share, chaos) = (
            share(self.faults, self.port_calls),
            share(self.chaos_faults, self.chaos_calls),
        );
        format!(
            "sim store={} queue={} (sqs requests: {}) seed={} messages={} ops={} provider_sends={} port_calls={} faults={} ({share:.1}% of all port calls, {chaos:.1}% while faulting) \
             crashes={} (in flight on the owner thread: {}) invariant_checks={} violations={} settle_rounds={} trace={:016x} ({} events) wall={:.1}s\n  faults by kind: {}\n  flows: {}",
            self.store,
            self.queue,
            self.sqs_requests,
            self.seed,
            self.messages,
            self.ops,
            self.provider_sends,
            self.port_calls,
            self.faults,
            self.crashes,
            self.in_flight_crashes,
            self.checks,
            self.violations.len(),
            self.settled_rounds,
            self.digest,
            self.trace_events,
            self.wall.as_secs_f64(),
            kinds.join(" "),
            self.flows.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        )
    }

    /// Panic, naming the seed and how to replay it, when an invariant broke.
    pub fn assert_clean(&self) {
        println!("{}", self.figures());
        if !self.violations.is_empty() {
            // At most five of each invariant.
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            let shown: Vec<&String> = self
                .violations
                .iter()
                .filter(|v| {
                    let n = seen.entry(v.split(':').next().unwrap_or("")).or_default();
                    *n += 1;
                    *n <= 5
                })
                .collect();
            panic!(
                "SEED={} broke {} invariant check(s):\n{}\nreplay: {}",
                self.seed,
                self.violations.len(),
                shown.iter().map(|v| format!("  - {v}")).collect::<Vec<_>>().join("\n"),
                self.replay_command()
            );
        }
    }
}

/// The process under simulation and everything around it.
pub struct World {
    pub plan_seed: u64,
    pub clock: Arc<ManualClock>,
    pub faults: Arc<Faults>,
    pub provider: Arc<SimProvider>,
    pub alerts: Arc<RecordingAlerter>,
    pub deps: Deps,
    app: axum::Router,
    backend: BackendState,
    pub phones: Vec<String>,
    pub oracle: Oracle,
    pending: Vec<Pending>,
    inbound_sids: Vec<(String, String, String)>,
    /// Inbound webhooks that got no 200: Twilio delivers them again.
    inbound_retries: Vec<(String, String, String)>,
    next: u64,
    pub crashes: u64,
    /// Crashes with a store call queued and unanswered on SQLite's owner thread.
    pub in_flight_crashes: u64,
    pub ops: u64,
    /// The cheap check after every step: message ids seen at the provider so far.
    sent_ids: BTreeMap<String, u32>,
    checked_sends: usize,
    /// What the per-step check found, with the operation it happened in.
    pub step_violations: Vec<String>,
    pub step_checks: u64,
    /// Answers of the operator and consent calls, by kind and status.
    flow_counts: BTreeMap<&'static str, u64>,
    /// Retell's chats and the webhooks it owes.
    pub retell: retell::RetellState,
    _dir: tempfile::TempDir,
}

enum BackendState {
    Sqlite(PathBuf),
    Dynamo(smsrelay::adapters::dynamodb::DynamoMessageStore, crate::sqs::SimSqs),
}

fn config() -> Config {
    let pairs: BTreeMap<&str, String> = [
        ("SMSRELAY_API_KEY", API_KEY.to_owned()),
        ("SMSRELAY_PUBLIC_URL", BASE.to_owned()),
        ("SMSRELAY_RATE_LIMIT_PER_HOUR", RATE_LIMIT_PER_HOUR.to_string()),
        ("RETELL_API_KEY", retell::RETELL_KEY.to_owned()),
    ]
    .into_iter()
    .collect();
    let mut config =
        Config::from_lookup(move |k| pairs.get(k).cloned()).unwrap_or_else(|e| panic!("simulation config: {e}"));
    // The scheduler polls each handler inside its operation, and a crash drops the operation
    // whole (a real crash ends the handler's task too): no handler task of its own.
    config.detach_requests = false;
    config
}

/// A fixed start (a Monday, 15:00 UTC): the run depends on its seed only.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 3, 15, 0, 0)
        .single()
        .unwrap_or_else(|| unreachable!("a valid time"))
}

impl World {
    pub async fn new(plan: &Plan) -> Self {
        // Ids and retry jitter from the seed too (the test runs on one thread).
        smsrelay::domain::entropy::seed_thread(plan.seed);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let db = dir.path().join("sim.db");
        let clock = Arc::new(ManualClock::new(start()));
        let faults = Arc::new(Faults::new(plan.seed, plan.fault_rate).with_crash_at_await(plan.crash_at_await));
        let backend = match plan.backend {
            Backend::Sqlite => BackendState::Sqlite(db),
            Backend::Dynamo => BackendState::Dynamo(
                smsrelay::testing::dynamodb_local_store().await,
                crate::sqs::SimSqs::start(clock.clone(), Some(faults.clone()), MAX_RECEIVES).await,
            ),
        };
        let pool = (plan.messages / 4).clamp(20, 3000);
        let phones: Vec<String> = (0..pool).map(|i| format!("+1415{:07}", 5_550_000 + i)).collect();
        let invalid: HashSet<String> = phones.iter().step_by(47).cloned().collect();
        // Opted out at the carrier (Twilio answers 21610), never known to us beforehand.
        let unsubscribed: HashSet<String> = phones.iter().skip(5).step_by(53).cloned().collect();
        let provider = Arc::new(SimProvider::new(
            clock.clone(),
            faults.clone(),
            (invalid, unsubscribed),
            plan.sabotage,
        ));
        let alerts = Arc::new(RecordingAlerter::default());
        let deps = build(&backend, &clock, &faults, &provider, &alerts);
        let app = router(deps.clone(), Routes::All);
        Self {
            plan_seed: plan.seed,
            clock,
            faults,
            provider,
            alerts,
            deps,
            app,
            backend,
            phones,
            oracle: Oracle::default(),
            pending: Vec::new(),
            inbound_sids: Vec::new(),
            inbound_retries: Vec::new(),
            next: 0,
            crashes: 0,
            in_flight_crashes: 0,
            ops: 0,
            sent_ids: BTreeMap::new(),
            checked_sends: 0,
            step_violations: Vec::new(),
            step_checks: 0,
            flow_counts: BTreeMap::new(),
            retell: retell::RetellState::default(),
            _dir: dir,
        }
    }

    /// A crash: everything in memory is gone; the next process opens the same store and queue.
    fn restart(&mut self) {
        self.crashes += 1;
        self.deps = build(&self.backend, &self.clock, &self.faults, &self.provider, &self.alerts);
        self.app = router(self.deps.clone(), Routes::All);
    }

    fn rand<T>(&self, f: impl FnOnce(&mut rand::rngs::StdRng) -> T) -> T {
        self.faults.with_rng(f)
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Run one operation of the process and drop it when a wrapper crashed, or (while faults
    /// are on) at a seed-chosen suspension point: `None` when it crashed (the process is
    /// rebuilt). Whenever the operation can go no further on its own, the scheduler lets one
    /// waiting port call run (picked by the seed), or, when none waits, moves the clock to the
    /// next sleeper (batch pacing, backoffs): one seed, one interleaving ([`crate::sched`]).
    async fn op<T>(&mut self, crashable: bool, fut: impl Future<Output = T>) -> Option<T> {
        self.ops += 1;
        self.faults.set_crashable(crashable);
        self.faults.sched.set_active(true);
        let clock = self.clock.clone();
        let faults = self.faults.clone();
        let stalled = || {
            std::future::poll_fn(|_| {
                if faults.sched.stalled(clock.sleepers()) {
                    std::task::Poll::Ready(())
                } else {
                    // Whatever unstalls it (a turn asked for, a call finished, a sleeper) happens
                    // while this task polls the operation, and the select polls this again.
                    std::task::Poll::Pending
                }
            })
        };
        let out = {
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    () = faults.crashed.notified() => break None,
                    out = &mut fut => break Some(out),
                    () = stalled() => {
                        if faults.crash_at_await() {
                            break None;
                        }
                        if !faults.sched.grant() {
                            clock.advance_to_next_wakeup();
                        }
                    }
                }
            }
        };
        self.faults.sched.set_active(false);
        self.faults.set_crashable(false);
        let held = crate::faults::lock(&self.faults.held).take();
        if let Some(hold) = held {
            if out.is_some() {
                // The call never reached the owner thread and the operation ended in the same
                // poll: the crash it signalled must not fall on the next operation.
                let _stale = futures_util::FutureExt::now_or_never(self.faults.crashed.notified());
            }
            // The operation is gone with its store call queued on the owner thread and not
            // answered; let the thread run what was queued (the write lands) before the next
            // process opens the store, so every replay sees the same store.
            let in_flight = hold.release().await;
            self.in_flight_crashes += u64::from(out.is_none() && in_flight > 0);
            self.faults.sched.record(&["in flight", &in_flight.to_string()]);
        }
        if out.is_none() {
            self.faults.sched.record(&["crash"]);
            self.restart();
        }
        out
    }

    async fn request(&mut self, req: &Pending, crashable: bool) -> Option<(u16, Value)> {
        let mut b = http::Request::builder()
            .method(req.method)
            .uri(&req.path)
            .header("authorization", format!("Bearer {API_KEY}"))
            .header("content-type", "application/json");
        if let Some(k) = &req.key {
            b = b.header("idempotency-key", k);
        }
        let r = b
            .body(Body::from(req.body.to_string()))
            .unwrap_or_else(|e| panic!("request: {e}"));
        let app = self.app.clone();
        let out = self.op(crashable, call(app, r)).await;
        self.trace_answer(&req.path, out.as_ref());
        out
    }

    /// The answer a client or Twilio got, into the trace.
    fn trace_answer(&self, path: &str, out: Option<&(u16, Value)>) {
        let (status, body) = out.map_or_else(
            || (String::from("none"), String::new()),
            |(s, b)| (s.to_string(), b.to_string()),
        );
        self.faults.sched.record(&["http", path, &status, &body]);
    }

    /// Make `req` (again): record what a 2xx accepted, keep it for a later retry otherwise.
    async fn client(&mut self, req: Pending, crashable: bool) {
        match req.kind {
            // Counted when asked: the retry may land although its answer is lost.
            RequestKind::OperatorRetry => {
                let id = req.path.split('/').nth(3).unwrap_or_default().to_owned();
                *self.oracle.operator_retries.entry(id).or_default() += 1;
            }
            // Like a START: it opts the phone in from when it was asked, answered or not.
            RequestKind::ConsentOptIn => {
                let phone = req.path.rsplit('/').next().unwrap_or_default().replace("%2B", "+");
                self.oracle.starts.push((phone, self.clock.now()));
            }
            _ => {}
        }
        let Some((status, body)) = self.request(&req, crashable).await else {
            self.pending.push(req);
            return;
        };
        match status {
            200..=299 => self.accept(req.kind, &body),
            // A 409 to a cancel is the answer (already handed to the provider), not a conflict.
            409 if req.kind != RequestKind::Cancel => self.pending.push(req),
            500..=599 => self.pending.push(req),
            _ => {}
        }
    }

    fn accept(&mut self, kind: RequestKind, body: &Value) {
        let mut add = |v: &Value| {
            if let Some(id) = v.as_str() {
                self.oracle.accepted.insert(id.to_owned());
            }
        };
        match kind {
            RequestKind::Send => {
                add(&body["id"]);
                if let (Some("scheduled"), Some(id)) = (body["status"].as_str(), body["id"].as_str()) {
                    self.oracle.scheduled.push(id.to_owned());
                }
            }
            RequestKind::Batch => {
                let mut stored = 0;
                for r in body["results"].as_array().into_iter().flatten() {
                    add(&r["message_id"]);
                    stored += u64::from(r["message_id"].is_string());
                }
                *self.flow_counts.entry("batch_items_accepted").or_default() += stored;
            }
            RequestKind::Lead => {
                add(&body["first_message_id"]);
                if let Some(e) = body["enrollment_id"].as_str() {
                    self.oracle.enrolments.insert(e.to_owned());
                }
            }
            RequestKind::Cancel => {
                if let (Some("canceled"), Some(id)) = (body["status"].as_str(), body["id"].as_str()) {
                    self.oracle.canceled.push((id.to_owned(), self.clock.now()));
                }
            }
            RequestKind::OperatorRetry => self.count_flow("operator_retries_202"),
            RequestKind::ConsentOptOut => self.count_flow("consent_api_opt_outs_200"),
            RequestKind::ConsentOptIn => self.count_flow("consent_api_opt_ins_200"),
            RequestKind::Other => {}
        }
    }

    fn count_flow(&mut self, kind: &'static str) {
        *self.flow_counts.entry(kind).or_default() += 1;
    }

    fn phone(&self) -> String {
        self.rand(|r| self.phones.choose(r).cloned())
            .unwrap_or_else(|| OURS.to_owned())
    }

    fn send_body(&mut self) -> Value {
        let n = self.fresh();
        let to = self.phone();
        let mut body = json!({"to": to, "body": format!("m{n} from the simulation")});
        let (scheduled, quiet) = self.rand(|r| (r.gen_ratio(1, 10), r.gen_ratio(1, 10)));
        if scheduled {
            let secs = self.rand(|r| r.gen_range(60..10_800));
            let at = self.clock.now() + chrono::Duration::seconds(secs);
            body["send_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            if quiet {
                let zone = self.rand(|r| ZONES.choose(r).copied()).unwrap_or(ZONES[0]);
                body["quiet_hours"] = json!({"start": "21:00", "end": "08:00", "timezone": zone});
            }
        }
        body
    }

    async fn op_send(&mut self) {
        let body = self.send_body();
        let key = Some(format!("send-{}", self.fresh()));
        let req = Pending {
            kind: RequestKind::Send,
            method: "POST",
            path: "/v1/messages".to_owned(),
            body,
            key,
        };
        self.client(req, true).await;
    }

    async fn op_batch(&mut self) {
        let n = self.rand(|r| r.gen_range(2..=12));
        let items: Vec<Value> = (0..n)
            .map(|_| {
                let mut b = self.send_body();
                if let Some(m) = b.as_object_mut() {
                    m.remove("send_at");
                    m.remove("quiet_hours");
                }
                b
            })
            .collect();
        let key = Some(format!("batch-{}", self.fresh()));
        let req = Pending {
            kind: RequestKind::Batch,
            method: "POST",
            path: "/v1/batches".to_owned(),
            body: json!({ "messages": items }),
            key,
        };
        self.client(req, true).await;
    }

    async fn op_lead(&mut self) {
        let phone = self.phone();
        let (campaign, zone) = self.rand(|r| {
            (
                *["drip-a", "drip-b"].choose(r).unwrap_or(&"drip-a"),
                *ZONES.choose(r).unwrap_or(&ZONES[0]),
            )
        });
        let n = self.fresh();
        let req = Pending {
            kind: RequestKind::Lead,
            method: "POST",
            path: "/v1/leads".to_owned(),
            body: json!({"phone": phone, "campaign_id": campaign, "first_name": format!("L{n}"), "timezone": zone}),
            key: None,
        };
        self.client(req, true).await;
    }

    /// An inbound text (STOP, START, HELP or a reply), sometimes a repeat of an earlier webhook.
    async fn op_inbound(&mut self) {
        let (retry, repeat) = self.rand(|r| (r.gen_ratio(1, 3), r.gen_ratio(1, 6)));
        let (sid, from, text) = if retry && !self.inbound_retries.is_empty() {
            self.inbound_retries.swap_remove(0)
        } else if repeat && !self.inbound_sids.is_empty() {
            self.faults.note("inbound_webhook_duplicated");
            let i = self.rand(|r| r.gen_range(0..self.inbound_sids.len()));
            self.inbound_sids[i].clone()
        } else {
            let n = self.fresh();
            let from = self.phone();
            let text = self
                .rand(|r| {
                    ["STOP", "START", "HELP", "Yes, tell me more", "stop", "Thursday works"]
                        .choose(r)
                        .copied()
                })
                .unwrap_or("STOP")
                .to_owned();
            let sid = format!("SMf{n:031x}");
            self.inbound_sids.push((sid.clone(), from.clone(), text.clone()));
            (sid, from, text)
        };
        self.inbound(sid, from, text).await;
    }

    async fn inbound(&mut self, sid: String, from: String, text: String) {
        let url = format!("{BASE}/webhooks/twilio/inbound");
        let params = inbound_params(&sid, "AC00000000000000000000000000000000", &from, OURS, &text);
        let token = secrecy::ExposeSecret::expose_secret(&self.deps.config.webhook_auth_token()).to_owned();
        let at = self.clock.now();
        if text.eq_ignore_ascii_case("start") {
            self.oracle.starts.push((from.clone(), at));
        }
        match self.form("/webhooks/twilio/inbound", &url, &params, &token).await {
            Some(200) => self.oracle.inbound.push((from, text, at)),
            _ => self.inbound_retries.push((sid, from, text)),
        }
    }

    async fn form(&mut self, path: &str, url: &str, params: &[(String, String)], token: &str) -> Option<u16> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let req = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", compute_signature(token, url, params))
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("request: {e}"));
        let app = self.app.clone();
        let out = self.op(true, call(app, req)).await;
        self.trace_answer(path, out.as_ref());
        out.map(|(s, _)| s)
    }

    /// Deliver some owed status callbacks, in a shuffled order; some are kept to be delivered
    /// again (duplicates), some held back (delayed); any that fails is owed again (Twilio retries).
    async fn op_callbacks(&mut self, all: bool) {
        let max = if all {
            usize::MAX
        } else {
            self.rand(|r| r.gen_range(1..=20))
        };
        let faults = self.faults.clone();
        let picked = self.provider.take_callbacks(|owed| {
            faults.with_rng(|r| owed.shuffle(r));
            let n = owed.len().min(max);
            owed.drain(..n).collect()
        });
        if !all && picked.len() > 1 {
            self.faults.note("callbacks_reordered");
        }
        for cb in picked {
            let dup = self.rand(|r| !all && r.gen_ratio(1, 5));
            let status = self.callback(&cb).await;
            let again = status.is_none_or(|s| s >= 500);
            if dup {
                self.faults.note("callback_duplicated");
            }
            if again || dup {
                self.provider.take_callbacks(|owed| {
                    owed.push(cb);
                    Vec::new()
                });
            }
        }
    }

    async fn callback(&mut self, cb: &Callback) -> Option<u16> {
        let path = match (&cb.message_id, cb.without_id) {
            (Some(id), false) => format!("/webhooks/twilio/status?message_id={id}"),
            _ => "/webhooks/twilio/status".to_owned(),
        };
        let url = format!("{BASE}{path}");
        let mut params: Vec<(String, String)> = vec![
            ("MessageSid".into(), cb.sid.clone()),
            ("MessageStatus".into(), cb.status.into()),
            ("AccountSid".into(), "AC00000000000000000000000000000000".into()),
        ];
        if let Some(code) = cb.error_code {
            params.push(("ErrorCode".into(), code.to_string()));
        }
        let token = secrecy::ExposeSecret::expose_secret(&self.deps.config.webhook_auth_token()).to_owned();
        self.form(&path, &url, &params, &token).await
    }

    async fn op_tick(&mut self, overlapping: bool) {
        let deps = self.deps.clone();
        let budget = Duration::from_secs(60);
        if overlapping {
            let other = self.deps.clone();
            self.faults.note("processor_runs_overlapped");
            self.op(true, async {
                let (a, b) = tokio::join!(run_processor(&deps, budget), run_processor(&other, budget));
                (a.is_ok(), b.is_ok())
            })
            .await;
        } else {
            self.op(true, async { run_processor(&deps, budget).await.is_ok() })
                .await;
        }
    }

    async fn op_drain(&mut self, crashable: bool) -> usize {
        let deps = self.deps.clone();
        self.op(crashable, async {
            drain_queue_once(&deps, deps.queue.as_ref(), 10).await.unwrap_or(0)
        })
        .await
        .unwrap_or(0)
    }

    /// A caller cancels a message: mostly one it scheduled, sometimes any it was answered for.
    async fn op_cancel(&mut self) {
        let scheduled = self.rand(|r| r.gen_ratio(4, 5));
        let id = if scheduled && !self.oracle.scheduled.is_empty() {
            let i = self.rand(|r| r.gen_range(0..self.oracle.scheduled.len()));
            self.oracle.scheduled.swap_remove(i)
        } else if self.oracle.accepted.is_empty() {
            return;
        } else {
            let i = self.rand(|r| r.gen_range(0..self.oracle.accepted.len()));
            let Some(id) = self.oracle.accepted.iter().nth(i).cloned() else {
                return;
            };
            id
        };
        let req = Pending::post(RequestKind::Cancel, format!("/v1/messages/{id}/cancel"), json!({}));
        self.client(req, true).await;
    }

    /// An operator reads the failed list and retries one of its messages.
    async fn op_operator_retry(&mut self) {
        let list = Pending {
            kind: RequestKind::Other,
            method: "GET",
            path: "/v1/failed-messages?limit=50".to_owned(),
            body: Value::Null,
            key: None,
        };
        let Some((200, body)) = self.request(&list, true).await else {
            return;
        };
        let ids: Vec<String> = body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return;
        }
        let id = ids[self.rand(|r| r.gen_range(0..ids.len()))].clone();
        let req = Pending::post(
            RequestKind::OperatorRetry,
            format!("/v1/failed-messages/{id}/retry"),
            json!({}),
        );
        self.client(req, true).await;
    }

    /// A business system opts a phone out, or in again, through the consent API.
    async fn op_consent(&mut self) {
        let phone = self.phone();
        let out = self.rand(|r| r.gen_ratio(3, 5));
        let kind = if out {
            RequestKind::ConsentOptOut
        } else {
            RequestKind::ConsentOptIn
        };
        let path = format!("/v1/consent/{}", phone.replace('+', "%2B"));
        let body = json!({"status": if out { "opted_out" } else { "opted_in" }});
        self.client(Pending::post(kind, path, body), true).await;
    }

    async fn op_retry_client(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let i = self.rand(|r| r.gen_range(0..self.pending.len()));
        let req = self.pending.swap_remove(i);
        self.client(req, true).await;
    }

    async fn setup(&mut self) {
        for (id, quiet) in [("drip-a", true), ("drip-b", false)] {
            let mut c = json!({
                "id": id, "name": id, "from": OURS,
                "steps": [
                    {"delay": "0s", "body": "Hi {{first_name}}, this is step one. Reply STOP to opt out."},
                    {"delay": "2h", "body": "Step two for {{first_name}}."},
                    {"delay": "1d", "body": "Step three, the last."}
                ],
                "stop_on_reply": true, "no_response_after": "2d", "end_after_silence": "1d",
                "daily_limit": CAMPAIGN_DAILY_LIMIT,
                "agent": {"provider": "scripted", "rules": [{"match": "thursday", "reply": "Booked for Thursday.", "outcome": "qualified"}],
                          "fallback": "Thanks, a person will follow up."}
            });
            if quiet {
                c["quiet_hours"] = json!({"start": "21:00", "end": "08:00"});
            }
            let req = Pending {
                kind: RequestKind::Other,
                method: "POST",
                path: "/v1/campaigns".to_owned(),
                body: c,
                key: None,
            };
            let (status, body) = self.request(&req, false).await.unwrap_or((0, Value::Null));
            assert_eq!(status, 201, "campaign {id}: {body}");
        }
    }

    /// The seeded scheduler: operations until `target` messages were accepted.
    pub async fn chaos(&mut self, target: usize) {
        self.faults.set_enabled(false);
        self.setup().await;
        self.faults.set_enabled(true);
        while self.oracle.accepted.len() + self.pending.len() < target {
            let pick = self.rand(|r| r.gen_range(0..110));
            match pick {
                0..=29 => self.op_send().await,
                30..=33 => self.op_batch().await,
                34..=36 => self.op_lead().await,
                37..=42 => self.op_inbound().await,
                43..=59 => self.op_callbacks(false).await,
                60..=69 => self.op_tick(false).await,
                70..=71 => self.op_tick(true).await,
                72..=84 => {
                    self.op_drain(true).await;
                }
                85..=89 => self.op_retry_client().await,
                90..=96 => {
                    let secs = self.rand(|r| r.gen_range(10..1_200));
                    self.clock.advance(Duration::from_secs(secs));
                }
                97..=99 => {
                    // Jobs received and never acknowledged come back after their visibility.
                    self.faults.note("queue_visibility_expired");
                    self.clock
                        .advance(smsrelay::entrypoints::jobs::VISIBILITY + Duration::from_secs(1));
                }
                100..=101 => self.op_cancel().await,
                102..=103 => self.op_operator_retry().await,
                104..=105 => self.op_consent().await,
                _ => self.op_retell().await,
            }
            let ms = self.rand(|r| r.gen_range(1..3_000));
            self.clock.advance(Duration::from_millis(ms));
            self.check_step();
        }
    }

    /// After every step: no message reached the provider twice (the end-of-run checks cover
    /// everything; this one names the operation where a duplicate send happened).
    fn check_step(&mut self) {
        let (total, new) = self.provider.landed_since(self.checked_sends, |l| {
            l.iter()
                .map(|x| (x.message_id.clone(), x.sid.clone()))
                .collect::<Vec<_>>()
        });
        self.checked_sends = total;
        for (id, sid) in new {
            self.step_checks += 1;
            if let Some(id) = id {
                let n = self.sent_ids.entry(id.clone()).or_default();
                *n += 1;
                let allowed = 1 + crate::check::licences(self, &id);
                if self.sent_ids[&id] > allowed {
                    self.step_violations.push(format!(
                        "no duplicate: {id} reached the provider again ({sid}) at operation {}",
                        self.ops
                    ));
                }
            }
        }
    }

    /// Faults off: repeat what clients and Twilio would repeat, run the queue and the processor,
    /// move time an hour at a time, until nothing is due (or `max_rounds`). Returns the rounds.
    pub async fn settle(&mut self, max_rounds: u32) -> u32 {
        self.faults.set_enabled(false);
        self.oracle.settled_from = Some(self.clock.now());
        for round in 0..max_rounds {
            for req in std::mem::take(&mut self.pending) {
                self.client(req, false).await;
            }
            for (sid, from, text) in std::mem::take(&mut self.inbound_retries) {
                self.inbound(sid, from, text).await;
            }
            self.op_callbacks(true).await;
            self.settle_retell().await;
            while self.op_drain(false).await > 0 {}
            let deps = self.deps.clone();
            self.op(false, async {
                run_processor(&deps, Duration::from_secs(600)).await.is_ok()
            })
            .await;
            while self.op_drain(false).await > 0 {}
            self.op_callbacks(true).await;
            self.check_step();
            if self.quiet().await {
                return round + 1;
            }
            // Nothing due within the hour (only campaign waits of hours or days, or chained
            // queue delays): a longer step, so settling costs rounds only where work is.
            let step = if self.due_within(chrono::Duration::hours(1)).await {
                3_600
            } else {
                6 * 3_600
            };
            self.clock.advance(Duration::from_secs(step));
        }
        max_rounds
    }

    /// Whether a message or an enrolment comes due within `within`.
    async fn due_within(&self, within: chrono::Duration) -> bool {
        let soon = self.clock.now() + within;
        let messages = self
            .deps
            .queries
            .list_due(soon, 1)
            .await
            .map_or(true, |d| !d.is_empty());
        let enrolments = self
            .deps
            .campaigns
            .due_enrolments(soon, 1)
            .await
            .map_or(true, |d| !d.is_empty());
        messages || enrolments
    }

    /// Nothing due, nothing queued, nothing owed.
    async fn quiet(&self) -> bool {
        let far = self.clock.now() + chrono::Duration::days(3_650);
        let due = self
            .deps
            .queries
            .list_due(far, 1)
            .await
            .map(|d| d.is_empty())
            .unwrap_or(false);
        let enrol = self
            .deps
            .campaigns
            .due_enrolments(far, 1)
            .await
            .map(|d| d.is_empty())
            .unwrap_or(false);
        let queue = self.deps.queue.stats().await.map(|s| s.pending == 0).unwrap_or(false);
        due && enrol
            && queue
            && self.pending.is_empty()
            && self.inbound_retries.is_empty()
            && self.no_callbacks()
            && self.retell_quiet()
    }

    /// Counts of the flows beyond plain sends, for the report.
    fn flows(&self) -> BTreeMap<&'static str, u64> {
        let requests = self.provider.requests();
        let landed = self.provider.landed();
        let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
        let mut f = self.flow_counts.clone();
        if let BackendState::Dynamo(_, sqs) = &self.backend {
            let seen = sqs.server.seen();
            f.insert("sqs_delayed_sends", seen.delayed_sends);
            f.insert("sqs_redeliveries", seen.redeliveries);
            f.insert("sqs_superseded_deletes", seen.superseded_deletes);
            f.insert("sqs_dead_lettered", seen.dead_lettered);
        }
        f.insert("retell_chats", n(self.retell.chats.len()));
        f.insert("cancels_answered_canceled", n(self.oracle.canceled.len()));
        f.insert(
            "operator_retries_asked",
            self.oracle.operator_retries.values().map(|v| u64::from(*v)).sum(),
        );
        f.insert(
            "refused_21610",
            n(requests.iter().filter(|r| self.provider.unsubscribed(&r.to)).count()),
        );
        f.insert(
            "undelivered_retryable",
            n(landed
                .iter()
                .filter(|l| l.error_code == Some(crate::faults::RETRYABLE_DELIVERY_ERROR))
                .count()),
        );
        f.insert(
            "resends_after_undelivered",
            n(landed
                .iter()
                .filter_map(|l| l.message_id.as_deref())
                .filter(|id| self.provider.retry_licences(id) > 0)
                .count()
                .saturating_sub(
                    landed
                        .iter()
                        .filter_map(|l| l.message_id.as_deref())
                        .filter(|id| self.provider.retry_licences(id) > 0)
                        .collect::<BTreeSet<_>>()
                        .len(),
                )),
        );
        f
    }

    fn no_callbacks(&self) -> bool {
        let mut empty = false;
        self.provider.take_callbacks(|o| {
            empty = o.is_empty();
            Vec::new()
        });
        empty
    }
}

fn build(
    backend: &BackendState,
    clock: &Arc<ManualClock>,
    faults: &Arc<Faults>,
    provider: &Arc<SimProvider>,
    alerts: &Arc<RecordingAlerter>,
) -> Deps {
    let (store, sqlite, queue): (_, _, Arc<dyn JobQueue>) = match backend {
        BackendState::Sqlite(path) => {
            let store = SqliteStore::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            let queue = SqliteJobQueue::open(path, MAX_RECEIVES, clock.clone())
                .unwrap_or_else(|e| panic!("open the queue: {e}"));
            (
                CountingStore::new(Arc::new(store.clone())),
                Some(store),
                Arc::new(queue),
            )
        }
        BackendState::Dynamo(store, sqs) => (CountingStore::new(Arc::new(store.clone())), None, Arc::new(sqs.queue())),
    };
    let plan: Arc<dyn smsrelay::testing::StoreFaults> = Arc::new(StorePlan {
        faults: faults.clone(),
        sqlite,
    });
    let queue: Arc<dyn JobQueue> = Arc::new(SimQueue::new(queue, faults.clone()));
    let mut deps = Deps::new(
        config(),
        Arc::new(store.with_faults(plan)),
        queue,
        provider.clone(),
        clock.clone(),
    )
    .with_alerter(Arc::new(SimAlerter::new(alerts.clone(), faults.clone())))
    .with_events(Arc::new(SimEvents::new(faults.clone())));
    deps.agent = Arc::new(SimAgent::new(deps.agent.clone(), faults.clone()));
    if provider.sabotage() == Sabotage::LoseOptOuts {
        deps.consent = Arc::new(crate::faults::LoseOptOuts(deps.consent.clone()));
    }
    deps
}

async fn call(app: axum::Router, req: http::Request<Body>) -> (u16, Value) {
    let resp = match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|_| Bytes::new());
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Runs this large or larger have the machine to themselves: the test harness runs the others
/// beside each other, and the 10,000-message run's wall time (the two minutes) is its
/// own, not shared with them.
const ALONE_FROM_MESSAGES: usize = 1_000;

/// Held shared by every smaller run and exclusively by a large one.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Run `plan` to the end and check every invariant.
pub async fn run(plan: Plan) -> Report {
    // A run that panicked while holding it leaves it poisoned; the next run is unaffected.
    let (_shared, _alone) = if plan.messages >= ALONE_FROM_MESSAGES {
        (
            None,
            Some(MACHINE.write().unwrap_or_else(std::sync::PoisonError::into_inner)),
        )
    } else {
        (
            Some(MACHINE.read().unwrap_or_else(std::sync::PoisonError::into_inner)),
            None,
        )
    };
    let started = Instant::now();
    let mut world = World::new(&plan).await;
    world.chaos(plan.messages).await;
    let (chaos_calls, chaos_faults) = (world.faults.port_calls(), world.faults.faulted());
    let rounds = world.settle(240).await;
    let (checks, mut violations) = crate::check::all(&world, rounds == 240).await;
    let checks = checks + world.step_checks;
    violations.append(&mut world.step_violations);
    let (digest, trace_events) = world.faults.sched.digest();
    let flows = world.flows();
    Report {
        seed: plan.seed,
        target: plan.messages,
        store: match plan.backend {
            Backend::Sqlite => "sqlite",
            Backend::Dynamo => "dynamodb",
        },
        sqs_requests: match &world.backend {
            BackendState::Dynamo(_, sqs) => sqs.server.requests(),
            BackendState::Sqlite(_) => 0,
        },
        queue: match plan.backend {
            Backend::Sqlite => "sqlite",
            Backend::Dynamo => "sqs",
        },
        messages: world.oracle.accepted.len(),
        ops: world.ops,
        crashes: world.crashes,
        in_flight_crashes: world.in_flight_crashes,
        port_calls: world.faults.port_calls(),
        faults: world.faults.faulted(),
        chaos_calls,
        chaos_faults,
        by_kind: world.faults.by_kind(),
        provider_sends: world.provider.landed().len(),
        checks,
        violations,
        settled_rounds: rounds,
        wall: started.elapsed(),
        digest,
        trace_events,
        flows,
    }
}
