//! smsrelay-local: every smsrelay route in one process, on the embedded SQLite store and the
//! Twilio simulator (or real Twilio when credentials are set); the simulator keeps its messages
//! in the same SQLite file. The router is the same one the
//! Lambda functions run (`Routes::All`, the union of every group); only the adapters differ.
//! Tests start it in-process through [`start`].
//!
//! Connections are served by hyper's HTTP/1 server with a header read timeout
//! (`SMSRELAY_REQUEST_TIMEOUT`: a client that stalls mid-headers is closed) and a bound on open
//! connections ([`ServeLimits`]); the body timeout and size limits are the router's own layers.

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use smsrelay::adapters::log_alerter::{FanoutAlerter, LogAlerter};
use smsrelay::adapters::slack::SlackAlerter;
use smsrelay::adapters::sqlite::SqliteStore;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::config::Config;
use smsrelay::entrypoints::jobs::{drain_queue_once, run_processor};
use smsrelay::entrypoints::{router, Routes};
use smsrelay::ports::Alerter;
use smsrelay::ports::{Clock, JobQueue, SmsProvider};
use smsrelay::wiring::{http_client, provider_for, simulator_on, Deps};
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
    // The queue, the event log and the simulator's ledger live in the same file and share the
    // store's one connection (and its group commits).
    let queue = store.job_queue(MAX_RECEIVES, clock.clone());
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{addr}"));
    }
    // The simulator remembers what it accepted in the same file, so a restart (even after
    // `kill -9`) still answers status polls and reconciliation as Twilio would.
    let provider: Arc<dyn SmsProvider> = if config.twilio.is_some() {
        provider_for(&config)?
    } else {
        Arc::new(simulator_on(&config, store.simulator_ledger())?.with_clock(clock.clone()))
    };
    let events = store.event_log();
    let mut alerters: Vec<Arc<dyn Alerter>> = vec![Arc::new(LogAlerter)];
    if let Some(url) = &config.slack_webhook_url {
        alerters.push(Arc::new(SlackAlerter::new(url.clone(), http_client()?)));
    }
    Ok(Deps::new(config, Arc::new(store), Arc::new(queue), provider, clock)
        .with_metric_buffer()
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

/// Connection limits of the local server.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long, once all requests are answered, shutdown waits for open connections to close.
    pub drain: Duration,
}

/// Connections served at once by default.
pub const MAX_CONNECTIONS: usize = 512;

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            drain: Duration::from_secs(30),
        }
    }
}

/// Serve every route on `listener` with `deps` until `shutdown` completes, with the retry-queue
/// worker and the processor timer running in-process (the same code as the Lambda consumers).
///
/// # Errors
/// The listener has no local address.
pub fn start(
    listener: TcpListener,
    deps: Deps,
    workers: Workers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<LocalServer> {
    start_with(listener, deps, workers, ServeLimits::default(), shutdown)
}

/// [`start`] with explicit connection limits.
///
/// # Errors
/// The listener has no local address.
pub fn start_with(
    listener: TcpListener,
    deps: Deps,
    workers: Workers,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<LocalServer> {
    let addr = listener.local_addr()?;
    let app = router(deps.clone(), Routes::All);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    if let Some(poll) = workers.queue_poll {
        background.push(tokio::spawn(queue_worker(deps.clone(), poll, stop_rx.clone())));
    }
    if let Some(tick) = workers.tick {
        background.push(tokio::spawn(processor_timer(deps.clone(), tick, stop_rx.clone())));
    }
    if deps.metric_buffer.is_some() {
        background.push(tokio::spawn(metric_flusher(deps.clone(), stop_rx.clone())));
    }
    let header_timeout = deps.config.request_timeout;
    let task = tokio::spawn(async move {
        let served = serve(listener, app, header_timeout, limits, shutdown).await;
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

/// Accept connections (at most `limits.max_connections` open at once) until `shutdown`, then stop
/// accepting, let open requests finish (at most `limits.drain`) and return.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error.message = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error.message = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
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

/// How often gathered metric increments are written (`Deps::with_metric_buffer`).
pub const METRIC_FLUSH: Duration = Duration::from_secs(1);

/// Write the gathered metric increments every [`METRIC_FLUSH`], and once more at shutdown.
async fn metric_flusher(deps: Deps, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(buffer) = deps.metric_buffer.clone() else {
        return;
    };
    let mut interval = tokio::time::interval(METRIC_FLUSH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.changed() => true,
        };
        if let Err(e) = buffer.flush(deps.counters.as_ref(), deps.clock.now()).await {
            tracing::warn!(error.message = %e, "metrics not written yet; kept for the next flush");
        }
        if stopping {
            return;
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
