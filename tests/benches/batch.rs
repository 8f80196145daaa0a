//! Batch throughput: how fast `send_batch` pushes 10,000 messages through one sender whose
//! provider allows 100 messages per second (`BENCH_MPS`), and what it costs in store calls and memory,
//! compared with a naive one-at-a-time sender. Run by hand (not in CI):
//!
//! ```sh
//! cargo bench -p e2e --bench batch                       # 10,000 messages, ~2.5 minutes
//! BENCH_MESSAGES=1000 cargo bench -p e2e --bench batch   # quick run
//! ```
//!
//! How: an in-process Twilio-shaped server (axum, 127.0.0.1) answers
//! `POST /2010-04-01/Accounts/{sid}/Messages.json` after 100 ms with 201 and a Twilio message
//! resource, and enforces 100 messages per second: above it, at once, 429 with Twilio's 20429
//! error body (such a request is not processed and not counted). The limit is a sliding
//! one-second window by default (strict: a request is refused when 100 were admitted in the
//! second before it), or with `BENCH_LIMITER=bucket` a token bucket (capacity 100, refill 100/s).
//! The app runs on SQLite (temp dir; `SqliteStore` + `SqliteJobQueue`, the store wrapped in
//! `CountingStore`) with the real Twilio client (`TwilioSmsProvider`) pointed at that server,
//! `SMSRELAY_SENDER_MPS=100`, `SMSRELAY_RATE_LIMIT_PER_HOUR=1000000`, quiet hours off. The
//! batch goes through `smsrelay::app::send_batch::send_batch` as sequential calls of 1,000
//! items (the API's limit) to distinct numbers, each with a 30 s budget.
//!
//! Printed: messages, wall time over all calls (records written, sends, tallies), achieved
//! messages per second (sent / wall time) against the goal of 95 % of 100, 429s seen by the
//! server, the most requests the server admitted in any one second, store calls per message
//! (total and per method), and peak RSS (`VmHWM`). Then the naive baseline: `BENCH_BASELINE`
//! (default 200) messages sent one at a time through the same Twilio client, sleeping 100 ms
//! between them, its messages per second, the time it would take for the batch's messages, and
//! the ratio of the two rates.
//!
//! Last, two concurrent batches (when DynamoDB Local is up, as `scripts/bench.sh` starts it): two
//! workers, each with its own `Deps` (own DynamoDB client, Twilio client and queue, as two batch
//! Lambdas have), send `BENCH_SHARED_MESSAGES` (default 2000) each through the same sender and the
//! same server at once, on one DynamoDB Local table. The sender's pacing schedule in the table
//! (`CounterStore::reserve_slot`) is all they share. Printed: combined messages per second
//! against 95 % of the limit, and 429s (goal 0). `BENCH_WORKERS` (default 2) changes how many.
//! Before it, uncounted, each worker sends `BENCH_SHARED_WARMUP` (default 200; 0 for none)
//! messages, so DynamoDB Local's JVM has compiled its request paths.
//!
//! Environment: `BENCH_MPS` (the server's limit and the sender's pace, default 100),
//! `BENCH_MESSAGES` (default 10000), `BENCH_BASELINE` (default 200),
//! `BENCH_LIMITER` (`window` (default) or `bucket`), `BENCH_SQLITE_DIR` (where the SQLite temp
//! dir goes; default the system temp dir. Every store write is a commit that waits for the disk,
//! so `/dev/shm` shows the pacing without the disk).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use smsrelay::adapters::dynamodb::DynamoMessageStore;
use smsrelay::adapters::sqlite::SqliteJobQueue;
use smsrelay::adapters::sqlite::SqliteStore;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::app::send_batch::{send_batch, BatchRequest, MAX_BATCH};
use smsrelay::config::Config;
use smsrelay::domain::{MessageBody, PhoneNumber};
use smsrelay::entrypoints::http::ctx;
use smsrelay::ports::{Clock, OutboundSms, Sender};
use smsrelay::testing::CountingStore;
use smsrelay::wiring::{provider_for, Deps};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const AUTH_TOKEN: &str = "bench-auth-token";
const FROM: &str = "+15005550006";
/// Public base URL written into StatusCallback (nothing calls it back).
const CALLBACK_BASE: &str = "https://relay.example.com";
/// The provider's limit, and the sender pace configured in the app: `BENCH_MPS`, default 100.
fn limit_mps() -> u32 {
    u32::try_from(env_usize("BENCH_MPS", 100)).unwrap_or(100).max(1)
}
/// How long the server takes to answer an accepted create.
const CREATE_LATENCY: Duration = Duration::from_millis(100);
/// Budget of one `send_batch` call.
const CALL_BUDGET: Duration = Duration::from_secs(30);
/// Goal: at least this share of the provider's limit.
const GOAL_SHARE: f64 = 0.95;
/// The server's rate limit.
enum Limiter {
    /// Arrival times of the requests admitted within the last second.
    Window(VecDeque<Instant>),
    /// Tokens left and when they were last refilled.
    Bucket { tokens: f64, refilled: Instant },
}

impl Limiter {
    fn admit(&mut self, now: Instant) -> bool {
        let cap = f64::from(limit_mps());
        match self {
            Self::Window(admitted) => {
                while admitted
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                {
                    admitted.pop_front();
                }
                if admitted.len() < limit_mps() as usize {
                    admitted.push_back(now);
                    true
                } else {
                    false
                }
            }
            Self::Bucket { tokens, refilled } => {
                *tokens = (*tokens + now.duration_since(*refilled).as_secs_f64() * cap).min(cap);
                *refilled = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// The Twilio-shaped server's state and counters.
struct FakeTwilio {
    limiter: Mutex<Limiter>,
    authorization: String,
    /// Arrival times of admitted creates (for the busiest-second figure).
    admitted: Mutex<Vec<Instant>>,
    created: AtomicUsize,
    throttled: AtomicUsize,
}

impl FakeTwilio {
    fn throttled(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }

    fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    /// The most creates admitted within any one-second window.
    fn busiest_second(&self) -> usize {
        self.busiest_second_since(None)
    }

    /// The most creates admitted within any one-second window from `since` on.
    fn busiest_second_since(&self, since: Option<Instant>) -> usize {
        let all = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        let times: Vec<Instant> = all.iter().copied().filter(|t| since.is_none_or(|s| *t >= s)).collect();
        let mut best = 0;
        let mut start = 0;
        for (end, t) in times.iter().enumerate() {
            while t.duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end + 1 - start);
        }
        best
    }

    /// Creates admitted in each whole second from `since` on (the last, partial second included).
    fn per_second_since(&self, since: Instant) -> Vec<usize> {
        let all = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seconds = Vec::new();
        for t in all.iter().filter(|t| **t >= since) {
            let s = usize::try_from(t.duration_since(since).as_secs()).unwrap_or(usize::MAX);
            if seconds.len() <= s {
                seconds.resize(s + 1, 0);
            }
            seconds[s] += 1;
        }
        seconds
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn twilio_error(code: u32, message: &str, status: StatusCode) -> Response {
    json_response(
        status,
        &json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()}),
    )
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`.
async fn create_message(
    State(server): State<Arc<FakeTwilio>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == server.authorization);
    if sid != ACCOUNT_SID || !authorized {
        return twilio_error(20003, "Authenticate", StatusCode::UNAUTHORIZED);
    }
    let admitted = server
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(arrived);
    if !admitted {
        server.throttled.fetch_add(1, Ordering::SeqCst);
        return twilio_error(20429, "Too Many Requests", StatusCode::TOO_MANY_REQUESTS);
    }
    server
        .admitted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(arrived);
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let seq = server.created.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(CREATE_LATENCY).await;
    let message_sid = format!("SM{seq:032x}");
    let now = chrono::Utc::now().to_rfc2822();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    json_response(
        StatusCode::CREATED,
        &json!({
            "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": field("Body"),
            "date_created": now, "date_sent": null, "date_updated": now,
            "direction": "outbound-api", "error_code": null, "error_message": null, "from": field("From"),
            "messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": null, "price_unit": "USD",
            "sid": message_sid, "status": "queued",
            "subresource_uris": {"media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media.json")},
            "to": field("To"), "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}.json")
        }),
    )
}

/// Start the server on an ephemeral loopback port; returns its base URL.
async fn start_fake_twilio(server: Arc<FakeTwilio>) -> String {
    let app = Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake Twilio stopped: {e}");
        }
    });
    url
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A distinct valid US number for each `i` (below 800,000).
fn phone(i: usize) -> String {
    format!("+1415{:03}{:04}", 200 + i / 10_000, i % 10_000)
}

/// Peak resident set size of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

#[allow(clippy::cast_precision_loss)]
fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b.max(1) as f64
}

#[tokio::main]
async fn main() {
    let messages = env_usize("BENCH_MESSAGES", 10_000);
    let baseline_messages = env_usize("BENCH_BASELINE", 200);
    let bucket = std::env::var("BENCH_LIMITER").is_ok_and(|v| v.eq_ignore_ascii_case("bucket"));
    let limiter = if bucket {
        Limiter::Bucket {
            tokens: f64::from(limit_mps()),
            refilled: Instant::now(),
        }
    } else {
        Limiter::Window(VecDeque::new())
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    let server = Arc::new(FakeTwilio {
        limiter: Mutex::new(limiter),
        authorization: format!("Basic {basic}"),
        admitted: Mutex::default(),
        created: AtomicUsize::new(0),
        throttled: AtomicUsize::new(0),
    });
    let twilio_base = start_fake_twilio(server.clone()).await;

    let dir = match std::env::var("BENCH_SQLITE_DIR") {
        Ok(d) if !d.is_empty() => tempfile::tempdir_in(d),
        _ => tempfile::tempdir(),
    }
    .expect("temp dir");
    let db = dir.path().join("bench.db");
    let pairs: HashMap<&str, String> = [
        ("SMSRELAY_API_KEY", "bench-key".to_owned()),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("TWILIO_API_BASE", twilio_base.clone()),
        ("TWILIO_FROM_NUMBER", FROM.to_owned()),
        ("SMSRELAY_PUBLIC_URL", CALLBACK_BASE.to_owned()),
        ("SMSRELAY_SENDER_MPS", limit_mps().to_string()),
        ("SMSRELAY_RATE_LIMIT_PER_HOUR", "1000000".to_owned()),
        ("SMSRELAY_DAILY_LIMIT", "1000000".to_owned()),
        ("SMSRELAY_QUIET_HOURS", "off".to_owned()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_lookup(|k| pairs.get(k).cloned()).expect("valid configuration");
    let provider = provider_for(&config).expect("Twilio client");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(CountingStore::new(Arc::new(
        SqliteStore::open(&db).expect("SQLite store"),
    )));
    let queue = Arc::new(SqliteJobQueue::open(&db, 5, clock.clone()).expect("SQLite queue"));
    let deps = Deps::new(config.clone(), store.clone(), queue, provider.clone(), clock);

    println!(
        "== batch: {messages} messages, one sender, provider limit {}/s, create latency {} ms",
        limit_mps(),
        CREATE_LATENCY.as_millis()
    );
    println!(
        "   SQLite in {}; fake Twilio at {twilio_base}; limiter: {}",
        dir.path().display(),
        if bucket {
            "token bucket (capacity 100, refill 100/s)"
        } else {
            "sliding 1 s window (100)"
        }
    );
    let calls = messages.div_ceil(MAX_BATCH);
    let mut totals: HashMap<String, u64> = HashMap::new();
    let started = Instant::now();
    for call in 0..calls {
        let range = call * MAX_BATCH..((call + 1) * MAX_BATCH).min(messages);
        let items: Vec<Value> = range
            .map(|i| json!({"to": phone(i), "body": format!("Your appointment is confirmed (bench {i})")}))
            .collect();
        let request = BatchRequest {
            messages: Some(items),
            from: None,
        };
        let call_started = Instant::now();
        let out = send_batch(ctx(&deps, CALLBACK_BASE), request, CALL_BUDGET)
            .await
            .expect("batch accepted");
        let field = |k: &str| out[k].as_u64().unwrap_or(0);
        println!(
            "   call {:>2}: {:>4} items  sent {:>4}  queued {:>4}  failed {:>3}  rejected {:>3}  {:>6.2} s",
            call + 1,
            field("total"),
            field("sent"),
            field("queued"),
            field("failed"),
            field("rejected"),
            call_started.elapsed().as_secs_f64()
        );
        for k in [
            "total",
            "sent",
            "queued",
            "failed",
            "rejected",
            "suppressed",
            "rate_limited",
        ] {
            *totals.entry(k.to_owned()).or_default() += field(k);
        }
    }
    let wall = started.elapsed();
    let batch_calls = store.calls_by_method();
    let batch_total = store.total_calls();
    let sent = usize::try_from(totals["sent"]).unwrap_or(usize::MAX);
    let mps = per_second(sent, wall);
    let throttled = server.throttled();

    println!();
    println!("messages            {messages} ({calls} calls of up to {MAX_BATCH})");
    println!(
        "outcome             sent {}  queued {}  failed {}  rejected {}",
        totals["sent"], totals["queued"], totals["failed"], totals["rejected"]
    );
    println!("wall time           {:.2} s", wall.as_secs_f64());
    print_verdict(
        "achieved            ",
        mps,
        throttled,
        server.created(),
        server.busiest_second(),
    );
    println!(
        "store calls         {batch_total} total, {:.2} per message",
        ratio(batch_total, messages)
    );
    let mut listed = 0;
    for (method, n) in batch_calls.iter().filter(|(_, n)| *n > 0) {
        listed += n;
        println!("   {method:<18} {n:>7}  {:>6.2}/message", ratio(*n, messages));
    }
    if listed != batch_total {
        println!("   (other)            {:>7}", batch_total - listed);
    }
    match peak_rss_mib() {
        Some(mib) => println!("peak RSS            {mib:.1} MiB (VmHWM; the fake server runs in this process)"),
        None => println!("peak RSS            unavailable (no /proc/self/status)"),
    }

    // The naive baseline: one message at a time, 100 ms sleep between them.
    let throttled_before = server.throttled();
    let base_started = Instant::now();
    let mut base_sent = 0;
    for i in 0..baseline_messages {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sms = OutboundSms {
            to: PhoneNumber::parse_e164(&phone(500_000 + i)).expect("phone"),
            from: Sender::parse(FROM).expect("sender"),
            body: MessageBody::parse(format!("Your appointment is confirmed (baseline {i})")).expect("body"),
            status_callback: format!("{CALLBACK_BASE}/webhooks/twilio/status"),
        };
        if provider.send(&sms).await.is_ok() {
            base_sent += 1;
        }
    }
    let base_wall = base_started.elapsed();
    let base_mps = per_second(base_sent, base_wall);
    println!();
    println!("== naive baseline: {baseline_messages} messages one at a time, 100 ms sleep between");
    println!(
        "baseline            {base_sent} sent in {:.2} s = {base_mps:.2} messages/s ({} 429s)",
        base_wall.as_secs_f64(),
        server.throttled() - throttled_before
    );
    let extrapolated = f64::from(u32::try_from(messages).unwrap_or(u32::MAX)) / base_mps;
    println!(
        "baseline for {messages}  {extrapolated:.0} s ({:.1} min), vs {:.1} s batched",
        extrapolated / 60.0,
        wall.as_secs_f64()
    );
    println!("speed-up            {:.1}x (batch MPS / baseline MPS)", mps / base_mps);

    shared_schedule(&server, &config).await;
}

/// Two batch workers, each with its own `Deps` (its own DynamoDB client, Twilio client and
/// queue), as two batch Lambdas would have, sending concurrently through one sender to one
/// DynamoDB Local table: the sender's pacing schedule in the table is all they share. Without it
/// each would pace itself to the full MPS and together they would send twice it.
async fn shared_schedule(server: &FakeTwilio, config: &Config) {
    if std::env::var_os("SMSRELAY_TEST_DYNAMODB_URL").is_none() {
        println!();
        println!("== two concurrent batches: skipped (SMSRELAY_TEST_DYNAMODB_URL unset; scripts/bench.sh sets it)");
        return;
    }
    let per_worker = env_usize("BENCH_SHARED_MESSAGES", 2_000).min(50_000);
    let table = smsrelay::testing::dynamodb_local_store().await.table().to_owned();
    let dir = tempfile::tempdir().expect("temp dir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let count = env_usize("BENCH_WORKERS", 2).clamp(1, 8);
    let workers: Vec<Deps> = (0..count)
        .map(|w| {
            let store = Arc::new(DynamoMessageStore::new(
                smsrelay::testing::dynamodb_local_client(),
                table.clone(),
            ));
            let queue = Arc::new(
                SqliteJobQueue::open(&dir.path().join(format!("queue-{w}.db")), 5, clock.clone()).expect("queue"),
            );
            let provider = provider_for(config).expect("Twilio client");
            Deps::new(config.clone(), store, queue, provider, clock.clone())
        })
        .collect();
    println!();
    println!(
        "== {count} concurrent batches: {per_worker} messages each, one sender, own Deps each, one DynamoDB Local table {table}"
    );
    // Warm-up, not counted: DynamoDB Local is a JVM, and its first thousands of requests run
    // before the JIT compiles them (the first call's record writes took 3 s cold, 1 s warm).
    // Lambdas against DynamoDB have no such phase, so it stays out of the figure.
    let warmup = env_usize("BENCH_SHARED_WARMUP", 200).min(MAX_BATCH);
    if warmup > 0 {
        let started = Instant::now();
        let warm = workers.iter().enumerate().map(|(w, deps)| async move {
            let items: Vec<Value> = (0..warmup)
                .map(|i| json!({"to": phone(900_000 + w * 1_000 + i), "body": format!("Warm-up (worker {w}, {i})")}))
                .collect();
            let request = BatchRequest {
                messages: Some(items),
                from: None,
            };
            send_batch(ctx(deps, CALLBACK_BASE), request, CALL_BUDGET)
                .await
                .expect("warm-up batch accepted")["sent"]
                .as_u64()
                .unwrap_or(0)
        });
        let sent: u64 = futures_util::future::join_all(warm).await.into_iter().sum();
        // Let the server's one-second window and the sender's schedule empty before measuring.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        println!(
            "warm-up             {count} x {warmup} messages, {sent} sent in {:.2} s (not counted below)",
            started.elapsed().as_secs_f64()
        );
    }
    let (throttled_before, created_before) = (server.throttled(), server.created());
    let started = Instant::now();
    let runs = workers.iter().enumerate().map(|(w, deps)| async move {
        let mut sent = 0;
        for call in 0..per_worker.div_ceil(MAX_BATCH) {
            let range = call * MAX_BATCH..((call + 1) * MAX_BATCH).min(per_worker);
            let items: Vec<Value> = range
                .map(|i| json!({"to": phone(600_000 + w * 50_000 + i), "body": format!("Shared pace (worker {w}, {i})")}))
                .collect();
            let request = BatchRequest {
                messages: Some(items),
                from: None,
            };
            let out = send_batch(ctx(deps, CALLBACK_BASE), request, CALL_BUDGET)
                .await
                .expect("batch accepted");
            sent += out["sent"].as_u64().unwrap_or(0);
            println!(
                "   worker {w} call {:>2}: sent {:>4}  queued {:>4}  failed {:>3}  in {} ms",
                call + 1,
                out["sent"],
                out["queued"],
                out["failed"],
                out["duration_ms"]
            );
        }
        sent
    });
    let sent: u64 = futures_util::future::join_all(runs).await.into_iter().sum();
    let wall = started.elapsed();
    let sent = usize::try_from(sent).unwrap_or(usize::MAX);
    let mps = per_second(sent, wall);
    let throttled = server.throttled() - throttled_before;
    println!(
        "outcome             sent {sent} of {} in {:.2} s",
        count * per_worker,
        wall.as_secs_f64()
    );
    let timeline: Vec<String> = server
        .per_second_since(started)
        .iter()
        .map(ToString::to_string)
        .collect();
    println!("creates per second  {}", timeline.join(" "));
    print_verdict(
        "combined            ",
        mps,
        throttled,
        server.created() - created_before,
        server.busiest_second_since(Some(started)),
    );
}

/// The rate against the goal (95 % of the limit), the 429s against 0, and what the server saw.
fn print_verdict(label: &str, mps: f64, throttled: usize, created: usize, busiest: usize) {
    let goal = f64::from(limit_mps()) * GOAL_SHARE;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "{label}{mps:.1} messages/s (sent / wall time)  goal >= {goal:.0}/s: {}",
        verdict(mps >= goal)
    );
    println!("429s at the server  {throttled} (goal 0: {})", verdict(throttled == 0));
    println!("server              {created} creates admitted, at most {busiest} in any 1 s");
}
