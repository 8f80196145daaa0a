//! Use-case tests on the manual clock: the real SQLite store and queue (in memory), a scripted
//! provider, recording alerter and publisher. Time moves only through `Env::advance`, so a
//! backoff, a due time, a budget or a batch's pacing is tested without a real sleep.
//!
//! The clock starts at the real time: the SQLite counters still compare expiries with the system
//! time (storage slice of issue 8), so a manual time in the real past would expire them at once.

mod agent_turn;
mod alerts;
mod metrics;
mod pacing;
mod process_due;
mod quiet_hours;
mod record_status;
mod send_batch;
mod send_message;

use super::retry::handle_job;
use super::send::{send_message, SendOutcome, SendRequest};
use super::Ctx;
use crate::adapters::sqlite::{SqliteJobQueue, SqliteStore};
use crate::adapters::system_clock::SystemClock;
use crate::config::Config;
use crate::domain::{Message, MessageId};
use crate::ports::{Clock as _, JobQueue, MessageStore};
use crate::testing::{FakeSmsProvider, ManualClock, RecordingAlerter, RecordingPublisher};
use chrono::SubsecRound;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where the provider's callbacks would go (nothing listens: the tests call `record_status`).
const CALLBACK_BASE: &str = "http://127.0.0.1:9";

/// The ports of one test.
pub(super) struct Env {
    pub store: SqliteStore,
    pub queue: SqliteJobQueue,
    pub provider: FakeSmsProvider,
    pub clock: Arc<ManualClock>,
    pub alerts: RecordingAlerter,
    pub events: RecordingPublisher,
    pub config: Config,
    /// The agent of each campaign a test sets.
    pub campaigns: crate::testing::StaticCampaignAgents,
    /// The agents, the Chat Completions client on `OPENAI_BASE_URL` sleeping on the manual clock.
    pub agent: crate::adapters::agents::AgentRouter,
}

impl Env {
    /// Default configuration (quiet hours off) plus `pairs`.
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        Self::at(SystemClock.now(), pairs)
    }

    /// As [`Env::new`], the clock at `start` (on a whole millisecond; not in the real past).
    pub fn at(start: chrono::DateTime<chrono::Utc>, pairs: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<String, String> = HashMap::from([("SMSRELAY_QUIET_HOURS".into(), "off".into())]);
        vars.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test configuration");
        let clock = Arc::new(ManualClock::new(start.trunc_subsecs(3)));
        Self {
            agent: crate::wiring::agent_for(&config, clock.clone()),
            campaigns: crate::testing::StaticCampaignAgents::default(),
            store: SqliteStore::open_in_memory().expect("sqlite"),
            queue: SqliteJobQueue::open_in_memory(5, clock.clone()).expect("queue"),
            provider: FakeSmsProvider::new(clock.clone()),
            clock,
            alerts: RecordingAlerter::default(),
            events: RecordingPublisher::default(),
            config,
        }
    }

    /// The context the use cases take.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            messages: &self.store,
            consent: &self.store,
            counters: &self.store,
            batches: &self.store,
            queue: &self.queue,
            provider: &self.provider,
            clock: self.clock.as_ref(),
            alerter: &self.alerts,
            events: &self.events,
            config: &self.config,
            callback_base: CALLBACK_BASE,
            metrics: None,
        }
    }

    /// The ports of conversation jobs.
    pub fn conversation_ports(&self) -> crate::app::agent_turn::ConversationPorts<'_> {
        crate::app::agent_turn::ConversationPorts {
            conversations: &self.store,
            campaign_agents: &self.campaigns,
            agent: &self.agent,
        }
    }

    /// One processor tick with `budget` on the store's due index.
    pub async fn tick(&self, budget: Duration) -> Result<crate::app::process_due::TickReport, crate::app::AppError> {
        self.on_clock(crate::app::process_due::process_due(
            self.ctx(),
            &self.store,
            &self.store,
            budget,
        ))
        .await
    }

    /// Run `work` with the clock moving through every wait in it (see
    /// [`ManualClock::run_through`](crate::testing::ManualClock::run_through)).
    pub async fn on_clock<F: std::future::Future>(&self, work: F) -> F::Output {
        self.clock.run_through(work).await
    }

    /// The clock's wall time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        crate::ports::Clock::now(self.clock.as_ref())
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Move the clock to `at` (wall time; must not be in the clock's past).
    pub fn advance_to(&self, at: chrono::DateTime<chrono::Utc>) {
        self.advance((at - self.now()).to_std().expect("a time ahead of the clock"));
    }

    /// Validate and send `body` as `POST /v1/messages` would.
    pub async fn send(&self, body: serde_json::Value) -> SendOutcome {
        let req: SendRequest = serde_json::from_value(body).expect("request shape");
        let cmd = req
            .validate(self.config.default_region, &self.config.default_sender, self.now())
            .expect("valid request");
        send_message(self.ctx(), cmd).await.expect("accepted")
    }

    /// Run every visible job of the retry queue; how many ran.
    pub async fn drain_queue(&self) -> usize {
        let mut ran = 0;
        loop {
            let jobs = self.queue.receive(10, Duration::from_secs(30)).await.expect("receive");
            if jobs.is_empty() {
                return ran;
            }
            for job in jobs {
                self.on_clock(handle_job(self.ctx(), self.conversation_ports(), &job.payload))
                    .await
                    .expect("job");
                self.queue.ack(&job.receipt).await.expect("ack");
                ran += 1;
            }
        }
    }

    /// The stored message.
    pub async fn message(&self, id: &MessageId) -> Message {
        self.store.get_message(id).await.expect("read").expect("stored")
    }
}
