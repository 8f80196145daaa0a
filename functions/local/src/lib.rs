//! smsrelay-local: every smsrelay route in one process, on the embedded SQLite store and the
//! Twilio simulator (or real Twilio when credentials are set). The handlers are the same code the
//! Lambda functions run; only the adapters differ. Tests start it in-process through [`start`].

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::Router;
use smsrelay::adapters::log_alerter::{FanoutAlerter, LogAlerter};
use smsrelay::adapters::slack::SlackAlerter;
use smsrelay::adapters::sqlite::LogEventPublisher;
use smsrelay::adapters::sqlite::SqliteJobQueue;
use smsrelay::adapters::sqlite::SqliteStore;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::app::AppError;
use smsrelay::config::{Config, MAX_BODY_BYTES};
use smsrelay::entrypoints::http::error_response;
use smsrelay::entrypoints::jobs::{drain_queue_once, run_processor};
use smsrelay::entrypoints::{handle, Routes};
use smsrelay::ports::Alerter;
use smsrelay::ports::{Clock, JobQueue, SmsProvider};
use smsrelay::wiring::{http_client, provider_for, Deps};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Receive attempts of a job before it goes to the dead-letter state (as `maxReceiveCount` in AWS).
pub const MAX_RECEIVES: u32 = 5;

/// A running server.
pub struct LocalServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its dependencies (tests inspect the store through them).
    pub deps: Deps,
    task: JoinHandle<Result<(), std::io::Error>>,
}

impl LocalServer {
    /// Base URL, e.g. `http://127.0.0.1:3000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Wait until the server stops (after its shutdown signal).
    ///
    /// # Errors
    /// The server task failed or panicked.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("server task panicked")?
            .context("server failed")
    }
}

/// Open the SQLite store at `data` (creating its folder) and build the dependencies.
/// `SMSRELAY_PUBLIC_URL` defaults to the listener's own address.
///
/// # Errors
/// The store cannot be opened, or the provider client cannot be built.
pub fn local_deps(mut config: Config, addr: SocketAddr, data: &Path) -> anyhow::Result<Deps> {
    if let Some(dir) = data.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let store = SqliteStore::open(data).with_context(|| format!("cannot open {}", data.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let queue = SqliteJobQueue::open(data, MAX_RECEIVES, clock.clone())
        .with_context(|| format!("cannot open the job queue in {}", data.display()))?;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{addr}"));
    }
    let provider: Arc<dyn SmsProvider> = provider_for(&config)?;
    let events =
        LogEventPublisher::open(data).with_context(|| format!("cannot open the event log in {}", data.display()))?;
    let mut alerters: Vec<Arc<dyn Alerter>> = vec![Arc::new(LogAlerter)];
    if let Some(url) = &config.slack_webhook_url {
        alerters.push(Arc::new(SlackAlerter::new(url.clone(), http_client()?)));
    }
    Ok(Deps::new(config, Arc::new(store), Arc::new(queue), provider, clock)
        .with_alerter(Arc::new(FanoutAlerter::new(alerters)))
        .with_events(Arc::new(events)))
}

/// Background work of the local process.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    /// Processor interval (`--tick`); `None` runs no timer (tests drive `POST /v1/processor/run`).
    pub tick: Option<Duration>,
    /// How often the queue worker polls the jobs table when it is empty; `None` runs no worker.
    pub queue_poll: Option<Duration>,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            tick: Some(Duration::from_secs(5)),
            queue_poll: Some(Duration::from_millis(200)),
        }
    }
}

/// Serve every route on `listener` with `deps` until `shutdown` completes, with the retry-queue
/// worker and the processor timer running in-process (the same code as the Lambda consumers).
pub fn start(
    listener: TcpListener,
    deps: Deps,
    workers: Workers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<LocalServer> {
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(dispatch).with_state(deps.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    if let Some(poll) = workers.queue_poll {
        background.push(tokio::spawn(queue_worker(deps.clone(), poll, stop_rx.clone())));
    }
    if let Some(tick) = workers.tick {
        background.push(tokio::spawn(processor_timer(deps.clone(), tick, stop_rx.clone())));
    }
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        if stop_tx.send(true).is_err() {
            tracing::debug!("no background workers to stop");
        }
        for t in background {
            if t.await.is_err() {
                tracing::error!("a background worker panicked");
            }
        }
        served
    });
    Ok(LocalServer { addr, deps, task })
}

async fn queue_worker(deps: Deps, poll: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let queue: Arc<dyn JobQueue> = deps.queue.clone();
    loop {
        let got = match drain_queue_once(&deps, queue.as_ref(), 10).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error.message = %e, "queue worker could not read the queue");
                0
            }
        };
        if got > 0 {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn processor_timer(deps: Deps, tick: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                if let Err(e) = run_processor(&deps, tick.max(Duration::from_secs(1))).await {
                    tracing::warn!(error.message = %e, "processor tick failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Every request goes through the shared router, exactly as in Lambda.
async fn dispatch(State(deps): State<Deps>, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let resp = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => handle(&deps, Routes::All, http::Request::from_parts(parts, bytes)).await,
        Err(_) => error_response(&AppError::PayloadTooLarge(format!(
            "request body is over {} KiB",
            MAX_BODY_BYTES / 1024
        ))),
    };
    resp.map(Body::from)
}
