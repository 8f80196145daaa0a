//! `smsrelay-local`: run every smsrelay route in one process (see docs/api.md "smsrelay-local").
//!
//! Usage: `smsrelay-local [--port 3000] [--data ./.smsrelay/local.db] [--tick 5s]`

use anyhow::{bail, Context};
use secrecy::ExposeSecret;
use smsrelay::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

struct Args {
    port: u16,
    data: PathBuf,
    tick: std::time::Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        port: 3000,
        data: PathBuf::from("./.smsrelay/local.db"),
        tick: std::time::Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().context("--port must be a number")?,
            "--data" => args.data = PathBuf::from(value()?),
            "--tick" => {
                args.tick =
                    smsrelay::domain::parse_duration(&value()?).context("--tick must be a duration like 5s, 1m, 1h")?;
                if args.tick.is_zero() {
                    bail!("--tick must be more than zero");
                }
            }
            "-h" | "--help" => {
                println!("smsrelay-local [--port 3000] [--data ./.smsrelay/local.db] [--tick 5s]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    Ok(args)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

/// mimalloc instead of glibc's malloc: under load a fifth of the process's time went to
/// glibc's `malloc` / `free` (request and JSON buffers, futures), measured with `perf`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smsrelay::telemetry::init();
    let args = parse_args()?;
    let mut config = Config::from_env()?;
    config.processor_interval = args.tick;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let deps = smsrelay_local::local_deps(config, addr, &args.data)?;
    let provider = if deps.config.twilio.is_some() {
        "Twilio"
    } else {
        "the built-in Twilio simulator"
    };
    let key = deps.config.api_key.expose_secret().to_owned();
    let workers = smsrelay_local::Workers {
        tick: Some(args.tick),
        ..Default::default()
    };
    let server = smsrelay_local::start(listener, deps, workers, shutdown_signal())?;
    println!("smsrelay-local listening on {}", server.url());
    println!("  API key:   {key}   (Authorization: Bearer {key}; an admin key)");
    println!(
        "  console:   {}/console   (sign in with the API key above)",
        server.url()
    );
    println!("  data:      {}", args.data.display());
    println!("  provider:  {provider}");
    println!("  processor: every {:?}", args.tick);
    println!("  health:    {}/health", server.url());
    println!("  openapi:   {}/openapi.json", server.url());
    println!("  send:      curl -s -X POST {}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"to\":\"+14155550100\",\"body\":\"Hello\"}}'", server.url());
    let served = server.wait().await;
    let work = smsrelay::adapters::sqlite::work_done();
    tracing::info!(
        calls = work.calls,
        transactions = work.transactions,
        "SQLite work of this run (calls answered in group commits)"
    );
    served
}
