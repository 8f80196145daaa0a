//! Console page render time with many messages stored (issue 14: "< 100 ms with 10,000 messages
//! stored, reading only indexed data"). Run by hand (not in CI): `./scripts/bench.sh --bench
//! console_render`, or `cargo bench -p e2e --bench console_render`.
//!
//! How: SQLite in a temp dir, `BENCH_STORED` messages (default 10,000) written through the store
//! port (`create_messages`, 1,000 a call) to 100 recipients, one in 20 of them on the failed list;
//! a `CountingStore` around the store; a signed-in session cookie; then each console page is
//! answered `BENCH_ROUNDS` times (default 50) through the same router the admin Lambda and
//! smsrelay-local serve (`entrypoints::http::handle`, the whole request path: layers, session
//! check, use cases, rendering). Printed per page: median and slowest time, and the store calls
//! of one render (by method), which do not grow with what is stored.

use secrecy::SecretString;
use smsrelay::adapters::sqlite::{SimulatorLedger, SqliteJobQueue, SqliteStore};
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::adapters::twilio::TwilioSimulator;
use smsrelay::config::Config;
use smsrelay::domain::{Message, MessageBody, MessageError, MessageId, MessageStatus, PhoneNumber};
use smsrelay::entrypoints::console::session;
use smsrelay::entrypoints::http::handle;
use smsrelay::entrypoints::Routes;
use smsrelay::ports::{Clock, MessageStore};
use smsrelay::testing::CountingStore;
use smsrelay::wiring::Deps;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "bench-admin-key";
const RECIPIENTS: usize = 100;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn phone(i: usize) -> PhoneNumber {
    PhoneNumber::parse_e164(&format!("+1415555{:04}", i % RECIPIENTS)).expect("valid number")
}

fn message(i: usize, now: chrono::DateTime<chrono::Utc>) -> Message {
    let failed = i.is_multiple_of(20);
    let status = if failed {
        MessageStatus::Failed
    } else {
        MessageStatus::Delivered
    };
    let body = MessageBody::parse(format!("Your technician arrives at 10:00 (bench {i})")).expect("body");
    let at = now - chrono::Duration::seconds(i64::try_from(i).unwrap_or(0));
    let mut m = Message::new(
        MessageId::generate(at),
        phone(i),
        "+15005550006".to_owned(),
        body,
        status,
        None,
        serde_json::Map::new(),
        at,
    );
    m.attempts = 3;
    if failed {
        m.failed_listed = true;
        m.error = Some(MessageError {
            code: 30003,
            message: "Unreachable destination handset".to_owned(),
        });
    }
    m
}

fn get(path: &str, cookie: &str) -> http::Request<bytes::Bytes> {
    http::Request::get(path)
        .header("cookie", format!("{}={cookie}", session::SESSION_COOKIE))
        .header("host", "127.0.0.1")
        .body(bytes::Bytes::new())
        .expect("request")
}

#[tokio::main]
async fn main() {
    let stored = env_usize("BENCH_STORED", 10_000);
    let rounds = env_usize("BENCH_ROUNDS", 50).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("console.db")).expect("SQLite"));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let seeding = Instant::now();
    let all: Vec<Message> = (0..stored).map(|i| message(i, now)).collect();
    let some_id = all.last().map(|m| m.id.as_str().to_owned()).unwrap_or_default();
    for chunk in all.chunks(1000) {
        for r in store.create_messages(chunk).await.expect("seed") {
            r.expect("a message stored");
        }
    }
    println!(
        "console_render: {stored} messages stored ({} on the failed list) in {:?}",
        stored.div_ceil(20),
        seeding.elapsed()
    );
    let counting = Arc::new(CountingStore::new(store));
    let queue = Arc::new(SqliteJobQueue::open(&dir.path().join("queue.db"), 5, clock.clone()).expect("queue"));
    let simulator = Arc::new(TwilioSimulator::new(
        SecretString::from(smsrelay::config::SIMULATOR_AUTH_TOKEN),
        smsrelay::wiring::plain_http_client(),
        SimulatorLedger::open(&dir.path().join("sim.db")).expect("ledger"),
    ));
    let config = Config::from_lookup(|k| (k == "SMSRELAY_API_KEY").then(|| KEY.to_owned())).expect("config");
    let deps = Deps::new(config, counting.clone(), queue, simulator, clock.clone());
    let (cookie, _) = session::issue(KEY, now);
    let pages = [
        "/console".to_owned(),
        "/console/failed".to_owned(),
        "/console/messages?phone=%2B14155550007".to_owned(),
        format!("/console/messages/{some_id}"),
        "/console/conversations?phone=%2B14155550007".to_owned(),
        "/console/conversations?status=needs_human".to_owned(),
        "/console/campaigns".to_owned(),
    ];
    println!(
        "{:<52} {:>10} {:>10}  store calls of one render",
        "page", "median", "slowest"
    );
    for path in &pages {
        let before = counting.calls_by_method();
        let first = handle(&deps, Routes::Admin, get(path, &cookie)).await;
        assert_eq!(first.status(), 200, "{path}");
        let after = counting.calls_by_method();
        let calls: Vec<String> = after
            .iter()
            .filter_map(|(m, n)| {
                let was = before.iter().find(|(b, _)| b == m).map_or(0, |(_, c)| *c);
                (n > &was).then(|| format!("{m}×{}", n - was))
            })
            .collect();
        let mut times: Vec<Duration> = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            let resp = handle(&deps, Routes::Admin, get(path, &cookie)).await;
            times.push(t.elapsed());
            assert_eq!(resp.status(), 200, "{path}");
        }
        times.sort();
        println!(
            "{:<52} {:>10.2?} {:>10.2?}  {}",
            path,
            times[times.len() / 2],
            times[times.len() - 1],
            calls.join(", ")
        );
    }
}
