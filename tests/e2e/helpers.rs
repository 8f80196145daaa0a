//! Shared test helpers: a running smsrelay-local (`TestApp`), DynamoDB Local tables, signing.

use secrecy::SecretString;
use smsrelay::adapters::sqlite::SqliteJobQueue;
use smsrelay::adapters::sqlite::SqliteStore;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::adapters::twilio::{compute_signature, TwilioSimulator};
use smsrelay::config::Config;
use smsrelay::ports::{Clock, SmsProvider};
use smsrelay::testing::CountingStore;
use smsrelay::wiring::{provider_for, Deps};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const API_KEY: &str = "test-key";

/// Configuration from explicit pairs (nothing read from the process environment).
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let m: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Config::from_lookup(move |k| m.get(k).cloned()).expect("valid test configuration")
}

/// Twilio test account used with a wiremock Twilio.
pub const TWILIO_SID: &str = "AC00000000000000000000000000000000";
/// Its auth token (Twilio's documentation token).
pub const TWILIO_TOKEN: &str = "12345";

/// How to start a [`TestApp`].
#[derive(Default)]
pub struct AppOptions {
    /// Extra configuration variables.
    pub env: Vec<(&'static str, String)>,
    /// Base URL of a Twilio-shaped server; `None` uses the simulator.
    pub twilio_base: Option<String>,
    /// Processor timer; `None` (default) means tests call `/v1/processor/run` themselves.
    pub tick: Option<Duration>,
    /// Queue worker poll interval; `None` means no worker (tests drain by hand).
    pub queue_poll: Option<Duration>,
    /// The clock; `None` is the system clock (`harness::ClockedApp` passes its manual clock).
    pub clock: Option<Arc<dyn Clock>>,
    /// The campaigns' agents; `None` keeps the app's own lookup.
    pub campaign_agents: Option<Arc<dyn smsrelay::ports::CampaignAgents>>,
}

/// smsrelay-local running in-process on an ephemeral port, SQLite in a temp dir.
pub struct TestApp {
    pub url: String,
    pub alerts: Arc<smsrelay::testing::RecordingAlerter>,
    pub events: Arc<smsrelay::testing::RecordingPublisher>,
    pub store: Arc<CountingStore>,
    pub simulator: Option<Arc<TwilioSimulator>>,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<smsrelay_local::LocalServer>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// Simulator, queue worker on, no processor timer.
    pub async fn new() -> Self {
        Self::with(AppOptions {
            queue_poll: Some(Duration::from_millis(20)),
            ..AppOptions::default()
        })
        .await
    }

    pub async fn with(opts: AppOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("local.db");
        let mut app = Self::on(&path, opts).await;
        app._dir = Some(dir);
        app
    }

    /// Start on an existing database file (restart tests).
    pub async fn on(db: &Path, opts: AppOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let url = format!("http://{addr}");
        let mut pairs: Vec<(&str, String)> = vec![
            ("SMSRELAY_API_KEY", API_KEY.to_owned()),
            ("SMSRELAY_QUIET_HOURS", "off".to_owned()),
        ];
        if let Some(base) = &opts.twilio_base {
            pairs.push(("TWILIO_ACCOUNT_SID", TWILIO_SID.to_owned()));
            pairs.push(("TWILIO_AUTH_TOKEN", TWILIO_TOKEN.to_owned()));
            pairs.push(("TWILIO_API_BASE", base.clone()));
            pairs.push(("TWILIO_FROM_NUMBER", "+15005550006".to_owned()));
        }
        pairs.extend(opts.env.iter().cloned());
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut cfg = config(&borrowed);
        cfg.public_url = Some(url.clone());
        let http = smsrelay::wiring::plain_http_client();
        let clock: Arc<dyn Clock> = opts.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        let (simulator, provider): (Option<Arc<TwilioSimulator>>, Arc<dyn SmsProvider>) = if opts.twilio_base.is_some()
        {
            (None, provider_for(&cfg).expect("provider"))
        } else {
            // On the app's own file and clock, as smsrelay-local runs it (restart tests see what
            // the simulator accepted before).
            let ledger = smsrelay::adapters::sqlite::SimulatorLedger::open(db).expect("simulator ledger");
            let sim = Arc::new(
                TwilioSimulator::new(
                    SecretString::from(smsrelay::config::SIMULATOR_AUTH_TOKEN),
                    http.clone(),
                    ledger,
                )
                .with_callback_delays(Duration::from_millis(30), Duration::from_millis(60))
                .with_clock(clock.clone()),
            );
            (Some(sim.clone()), sim)
        };
        let store = Arc::new(CountingStore::new(Arc::new(SqliteStore::open(db).expect("sqlite"))));
        let queue = Arc::new(SqliteJobQueue::open(db, smsrelay_local::MAX_RECEIVES, clock.clone()).expect("queue"));
        let alerts = Arc::new(smsrelay::testing::RecordingAlerter::default());
        let events = Arc::new(smsrelay::testing::RecordingPublisher::default());
        // Metric increments gathered and flushed every second, as smsrelay-local runs.
        let mut deps = Deps::new(cfg, store.clone(), queue, provider, clock)
            .with_metric_buffer()
            .with_alerter(alerts.clone())
            .with_events(events.clone());
        if let Some(agents) = &opts.campaign_agents {
            deps.campaign_agents = agents.clone();
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let workers = smsrelay_local::Workers {
            tick: opts.tick,
            queue_poll: opts.queue_poll,
        };
        let server = smsrelay_local::start(listener, deps, workers, async {
            let _ignored = rx.await;
        })
        .expect("server starts");
        Self {
            url,
            alerts,
            events,
            store,
            simulator,
            http,
            shutdown: Some(tx),
            server: Some(server),
            _dir: None,
        }
    }

    /// The dependencies the server runs with (store, queue, clock, …).
    pub fn deps(&self) -> &Deps {
        &self.server.as_ref().expect("the server runs until stop()").deps
    }

    /// The simulator (panics when the app runs against a Twilio-shaped server).
    pub fn sim(&self) -> &TwilioSimulator {
        self.simulator.as_deref().expect("this app uses the simulator")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
            .json(body)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url)).bearer_auth(API_KEY)
    }

    /// Send a message and return the response body (asserting 202).
    pub async fn send(&self, to: &str, body: &str) -> serde_json::Value {
        let resp = self
            .post_json("/v1/messages", &serde_json::json!({"to": to, "body": body}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 202);
        resp.json().await.expect("json")
    }

    /// `GET path` with the key: the status and the body as JSON (`Null` if it is not JSON).
    pub async fn get_status_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.get(path).send().await.expect("get");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `GET path` with the key, its body as JSON (whatever the status).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).send().await.expect("get").json().await.expect("json")
    }

    pub async fn message(&self, id: &str) -> serde_json::Value {
        let resp = self.get(&format!("/v1/messages/{id}")).send().await.expect("get");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }

    /// Poll a message until `pred` holds, within `deadline`.
    pub async fn wait_for(
        &self,
        id: &str,
        deadline: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let m = self.message(id).await;
            if pred(&m) {
                return m;
            }
            assert!(
                start.elapsed() < deadline,
                "condition not reached within {deadline:?}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Post a status callback signed as Twilio (or the simulator) would.
    /// `POST /v1/processor/run`, returning the report.
    pub async fn run_processor(&self) -> serde_json::Value {
        let resp = self
            .http
            .post(format!("{}/v1/processor/run", self.url))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("run");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }

    pub async fn post_status(
        &self,
        message_id: Option<&str>,
        params: &[(&str, &str)],
        token: &str,
    ) -> reqwest::Response {
        let url = match message_id {
            Some(id) => format!("{}/webhooks/twilio/status?message_id={id}", self.url),
            None => format!("{}/webhooks/twilio/status", self.url),
        };
        let owned: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let sig = compute_signature(token, &url, &owned);
        self.http
            .post(url)
            .header("X-Twilio-Signature", sig)
            .form(&owned)
            .send()
            .await
            .expect("post")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ignored = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.wait().await.expect("clean shutdown");
        }
    }
}

/// A DynamoDB client for the DynamoDB Local the test script started, and a fresh table.
/// Panics (never skips) when DynamoDB Local is not configured.
pub async fn dynamodb_table() -> (aws_sdk_dynamodb::Client, String) {
    let store = smsrelay::testing::dynamodb_local_store().await;
    (store.client().clone(), store.table().to_owned())
}

/// A fresh SQS queue pair (with a dead-letter queue after `max_receives`) on the emulator the
/// test script started. Panics (never skips) when it is not configured.
pub async fn sqs_queue_with(max_receives: u32) -> smsrelay::adapters::sqs_queue::SqsJobQueue {
    let endpoint = std::env::var("SMSRELAY_TEST_SQS_URL")
        .expect("SMSRELAY_TEST_SQS_URL is not set: run scripts/test.sh, which starts the SQS emulator");
    let conf = aws_sdk_sqs::config::Builder::new()
        .http_client(smsrelay::wiring::aws_http_client())
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    let client = aws_sdk_sqs::Client::from_conf(conf);
    let name = format!("smsrelay-{}", ulid::Ulid::new().to_string().to_lowercase());
    let (url, dlq) = smsrelay::adapters::sqs_queue::create_queue_pair(&client, &name, max_receives)
        .await
        .expect("queues");
    smsrelay::adapters::sqs_queue::SqsJobQueue::new(client, url, Some(dlq))
}

/// [`sqs_queue_with`] five receives, as in template.yaml.
pub async fn sqs_queue() -> smsrelay::adapters::sqs_queue::SqsJobQueue {
    sqs_queue_with(5).await
}
