//! An in-process Amazon SQS for the simulation: an HTTP server on 127.0.0.1 (an ephemeral port)
//! that speaks SQS's JSON protocol (awsJson1_0: `POST /`, `X-Amz-Target: AmazonSQS.<Action>`,
//! `Content-Type: application/x-amz-json-1.0`) for every call `SqsJobQueue` and
//! `create_queue_pair` make, with standard-queue semantics on the simulation's clock, so the
//! real adapter runs through the AWS SDK under the manual clock (moto keeps real time).
//!
//! - `CreateQueue` (`VisibilityTimeout`, `DelaySeconds`, `MessageRetentionPeriod`,
//!   `RedrivePolicy`), `GetQueueUrl`, `GetQueueAttributes` (`QueueArn`, the three approximate
//!   counts, the settings; `All`).
//! - `SendMessage`: `DelaySeconds` 0–900 (the queue's when absent) hides the message until then;
//!   the answer carries its `MessageId` and `MD5OfMessageBody`.
//! - `ReceiveMessage`: up to `MaxNumberOfMessages` (1–10) visible messages, oldest first, each
//!   hidden for `VisibilityTimeout` (0–43,200; the queue's when absent), its receive count
//!   incremented, a new receipt handle each time; only the system attributes asked for
//!   (`MessageSystemAttributeNames`, or the older `AttributeNames`). A message already received
//!   `maxReceiveCount` times is moved to the redrive policy's dead-letter queue instead (SQS
//!   moves it when a receive finds it visible again). `WaitTimeSeconds` is accepted; a receive
//!   never waits (the clock is the simulation's; it moves only between calls).
//! - `DeleteMessage`: the latest receipt handle of a message deletes it, whether its visibility
//!   has run out or not; a handle of a message already deleted succeeds; a handle superseded by a
//!   later receive succeeds and deletes nothing (what the SQS API reference says of standard
//!   queues: "If you use an old ReceiptHandle, the request will succeed, but the message might
//!   not be deleted"; the knowledge-center's "receipt handle has expired" error is FIFO's);
//!   a handle that is not one of this queue's is `ReceiptHandleIsInvalid`.
//! - Messages older than the queue's retention period (4 days unless set) are gone, in the
//!   dead-letter queue too (its age counts from the first enqueue, as in SQS).
//!
//! Errors are SQS's JSON errors: status 400, `x-amzn-query-error: <code>;Sender` and a body
//! `{"__type": "com.amazonaws.sqs#<Shape>", "message": …}`. Any other action is
//! `UnsupportedOperation` (the adapter makes none; `ChangeMessageVisibility` among them).
//!
//! Determinism: message ids, receipt handles and request ids come from counters, receives take
//! messages in the order they were sent, time is the clock's, and every answer goes into the
//! run's trace. The simulation's scheduler lets one port call run at a time and moves the clock
//! only when none runs, so the server sees each request at one clock reading.

use crate::faults::{lock, Faults};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use smsrelay::ports::{Clock, JobPayload, JobQueue, QueueError, QueueStats, ReceivedJob};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The account in queue URLs and ARNs.
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";
/// SQS's defaults and limits.
const DEFAULT_VISIBILITY: u32 = 30;
const DEFAULT_RETENTION: u32 = 345_600;
const MAX_DELAY: i64 = 900;
const MAX_VISIBILITY: i64 = 43_200;

/// The server, running until dropped.
pub struct SqsServer {
    /// `http://127.0.0.1:<port>`, for the SDK's endpoint URL.
    pub endpoint: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SqsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    clock: Arc<dyn Clock>,
    /// Where answers are traced (the simulation); `None` outside it.
    faults: Option<Arc<Faults>>,
    state: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    endpoint: String,
    by_name: BTreeMap<String, Queue>,
    next_message: u64,
    next_receipt: u64,
    next_request: u64,
    seen: Seen,
}

/// What the server did that only SQS's semantics make happen (for the run's report).
#[derive(Default, Clone, Copy)]
pub struct Seen {
    /// Sends with a delay.
    pub delayed_sends: u64,
    /// Receives of a message received before (its visibility ran out undeleted).
    pub redeliveries: u64,
    /// Deletes by a handle a later receive superseded (succeeded, deleted nothing).
    pub superseded_deletes: u64,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: u64,
}

struct Queue {
    url: String,
    arn: String,
    visibility: u32,
    delay: u32,
    retention: u32,
    /// The redrive policy: the dead-letter queue's name and `maxReceiveCount`.
    redrive: Option<(String, u32)>,
    /// The policy as given, for `GetQueueAttributes`.
    redrive_text: Option<String>,
    /// By send order (a message moved here from another queue keeps its place in time).
    messages: BTreeMap<u64, Stored>,
}

struct Stored {
    id: String,
    body: String,
    md5: String,
    sent: DateTime<Utc>,
    visible_at: DateTime<Utc>,
    receives: u32,
    first_receive: Option<DateTime<Utc>>,
    /// The latest receipt handle's number (a handle names its message and this).
    receipt: Option<u64>,
}

/// An SQS error answer.
struct SqsError {
    code: &'static str,
    shape: &'static str,
    message: String,
}

impl SqsError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidParameterValue",
            shape: "InvalidParameterValue",
            message: message.into(),
        }
    }

    fn no_queue() -> Self {
        Self {
            code: "AWS.SimpleQueueService.NonExistentQueue",
            shape: "QueueDoesNotExist",
            message: "The specified queue does not exist.".to_owned(),
        }
    }
}

type Answer = Result<Value, SqsError>;

impl SqsServer {
    /// Start a server on an ephemeral port of 127.0.0.1, on `clock`, tracing every answer into
    /// `faults`' trace when given.
    pub async fn start(clock: Arc<dyn Clock>, faults: Option<Arc<Faults>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the SQS server: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the SQS server's address: {e}"))
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            clock,
            faults,
            state: Mutex::new(Queues {
                endpoint: endpoint.clone(),
                ..Queues::default()
            }),
        });
        let app = axum::Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("the simulation's SQS server stopped: {e}");
            }
        });
        Self { endpoint, shared, task }
    }

    /// An SDK client for this server (dummy credentials, `us-east-1`). The SDK's own retries are
    /// off: one port call is one request, and the fault wrappers inject the failures.
    pub fn client(&self) -> aws_sdk_sqs::Client {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sqs::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("sim", "sim", None, None, "smsrelay-sim"))
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        lock(&self.shared.state).next_request
    }

    /// What it did that only SQS's semantics make happen.
    pub fn seen(&self) -> Seen {
        lock(&self.shared.state).seen
    }
}

/// `SqsJobQueue` on a server of its own on the real clock, for the job queue contract suite
/// (the one moto passes); the server lives as long as the queue.
pub struct ContractQueue {
    queue: smsrelay::adapters::sqs_queue::SqsJobQueue,
    _server: SqsServer,
}

/// A fresh [`ContractQueue`] (its pair made by the adapter's `create_queue_pair`).
pub async fn contract_queue() -> ContractQueue {
    let clock: Arc<dyn Clock> = Arc::new(smsrelay::adapters::system_clock::SystemClock);
    let sqs = SimSqs::start(clock, None, smsrelay::testing::queue_contract::MAX_RECEIVES).await;
    ContractQueue {
        queue: sqs.queue(),
        _server: sqs.server,
    }
}

#[async_trait::async_trait]
impl JobQueue for ContractQueue {
    async fn enqueue(&self, payload: &JobPayload, delay: std::time::Duration) -> Result<(), QueueError> {
        self.queue.enqueue(payload, delay).await
    }

    async fn receive(&self, max: usize, visibility: std::time::Duration) -> Result<Vec<ReceivedJob>, QueueError> {
        self.queue.receive(max, visibility).await
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.queue.ack(receipt).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.queue.stats().await
    }
}

/// The simulation's retry queue on SQS: the server, and the queue pair `create_queue_pair`
/// made on it (the adapter's own helper: redrive to `<name>-dlq` after `max_receives`).
pub struct SimSqs {
    pub server: SqsServer,
    url: String,
    dead_letter_url: String,
}

/// The queue's name on the simulation's SQS.
pub const QUEUE: &str = "smsrelay-sim-retry";

impl SimSqs {
    pub async fn start(clock: Arc<dyn Clock>, faults: Option<Arc<Faults>>, max_receives: u32) -> Self {
        let server = SqsServer::start(clock, faults).await;
        let (url, dead_letter_url) =
            smsrelay::adapters::sqs_queue::create_queue_pair(&server.client(), QUEUE, max_receives)
                .await
                .unwrap_or_else(|e| panic!("create the queue pair on the simulation's SQS: {e:?}"));
        Self {
            server,
            url,
            dead_letter_url,
        }
    }

    /// The production adapter on this queue, with a client of its own (a process's).
    pub fn queue(&self) -> smsrelay::adapters::sqs_queue::SqsJobQueue {
        smsrelay::adapters::sqs_queue::SqsJobQueue::new(
            self.server.client(),
            self.url.clone(),
            Some(self.dead_letter_url.clone()),
        )
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json_1_0 = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-amz-json-1.0"));
    let now = shared.clock.now();
    let (answer, request_id) = {
        let mut state = lock(&shared.state);
        state.next_request += 1;
        let request_id = format!("00000000-0000-4000-a000-{:012x}", state.next_request);
        let answer = match (target.strip_prefix("AmazonSQS."), json_1_0) {
            (Some(action), true) => match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(input)) => state.dispatch(action, &input, now),
                _ => Err(SqsError {
                    code: "SerializationException",
                    shape: "SerializationException",
                    message: "the body is not a JSON object".to_owned(),
                }),
            },
            _ => Err(SqsError {
                code: "InvalidAction",
                shape: "InvalidAction",
                message: format!("not an SQS JSON request: {target}"),
            }),
        };
        (answer, request_id)
    };
    let (status, text, query_error) = match answer {
        Ok(v) => (StatusCode::OK, v.to_string(), None),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json!({"__type": format!("com.amazonaws.sqs#{}", e.shape), "message": e.message}).to_string(),
            Some(format!("{};Sender", e.code)),
        ),
    };
    if let Some(f) = &shared.faults {
        // Queue URLs name the server's port, which is the OS's pick: not part of the run.
        let endpoint = lock(&shared.state).endpoint.clone();
        f.sched
            .record(&["sqs", &target, status.as_str(), &text.replace(&endpoint, "<endpoint>")]);
    }
    let mut response = (status, text).into_response();
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Some(v) = query_error.and_then(|q| HeaderValue::from_str(&q).ok()) {
        h.insert("x-amzn-query-error", v);
    }
    response
}

fn string<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, SqsError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| SqsError::invalid(format!("The request must contain the parameter {key}.")))
}

/// An optional integer parameter within `range`.
fn int(input: &Map<String, Value>, key: &str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, SqsError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(SqsError::invalid(format!(
                "Value {v} for parameter {key} is invalid. Reason: must be between {} and {}.",
                range.start(),
                range.end()
            ))),
        },
    }
}

/// A numeric queue attribute given as a string.
fn attribute(attrs: &Map<String, Value>, key: &str, max: u32) -> Result<Option<u32>, SqsError> {
    match attrs.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(SqsError {
                code: "InvalidAttributeValue",
                shape: "InvalidAttributeValue",
                message: format!("Invalid value for the parameter {key}."),
            }),
        },
    }
}

fn seconds(n: impl Into<i64>) -> chrono::Duration {
    chrono::Duration::seconds(n.into())
}

fn millis(t: DateTime<Utc>) -> String {
    t.timestamp_millis().to_string()
}

impl Queues {
    fn dispatch(&mut self, action: &str, input: &Map<String, Value>, now: DateTime<Utc>) -> Answer {
        if action != "CreateQueue" {
            self.expire(now);
        }
        match action {
            "CreateQueue" => self.create_queue(input),
            "GetQueueUrl" => {
                let name = string(input, "QueueName")?;
                let q = self.by_name.get(name).ok_or_else(SqsError::no_queue)?;
                Ok(json!({"QueueUrl": q.url}))
            }
            "GetQueueAttributes" => self.get_attributes(input, now),
            "SendMessage" => self.send(input, now),
            "ReceiveMessage" => self.receive(input, now),
            "DeleteMessage" => self.delete(input),
            other => Err(SqsError {
                code: "AWS.SimpleQueueService.UnsupportedOperation",
                shape: "UnsupportedOperation",
                message: format!("{other} is not simulated"),
            }),
        }
    }

    /// The queue a `QueueUrl` names (its last path segment, as SQS resolves it).
    fn name_of(&self, input: &Map<String, Value>) -> Result<String, SqsError> {
        let url = string(input, "QueueUrl")?;
        let name = url.rsplit('/').next().unwrap_or_default();
        if self.by_name.contains_key(name) {
            Ok(name.to_owned())
        } else {
            Err(SqsError::no_queue())
        }
    }

    fn queue(&mut self, name: &str) -> Result<&mut Queue, SqsError> {
        self.by_name.get_mut(name).ok_or_else(SqsError::no_queue)
    }

    fn create_queue(&mut self, input: &Map<String, Value>) -> Answer {
        let name = string(input, "QueueName")?.to_owned();
        let valid = !name.is_empty()
            && name.len() <= 80
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(SqsError::invalid(format!(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length: {name}"
            )));
        }
        let empty = Map::new();
        let attrs = input.get("Attributes").and_then(Value::as_object).unwrap_or(&empty);
        let visibility = attribute(attrs, "VisibilityTimeout", 43_200)?.unwrap_or(DEFAULT_VISIBILITY);
        let delay = attribute(attrs, "DelaySeconds", 900)?.unwrap_or(0);
        let retention = attribute(attrs, "MessageRetentionPeriod", 1_209_600)?.unwrap_or(DEFAULT_RETENTION);
        let redrive_text = attrs.get("RedrivePolicy").and_then(Value::as_str).map(str::to_owned);
        let redrive = match &redrive_text {
            None => None,
            Some(text) => {
                let bad = || SqsError {
                    code: "InvalidAttributeValue",
                    shape: "InvalidAttributeValue",
                    message: format!("Value {text} for parameter RedrivePolicy is invalid."),
                };
                let policy: Value = serde_json::from_str(text).map_err(|_| bad())?;
                let arn = policy["deadLetterTargetArn"].as_str().ok_or_else(bad)?;
                let max = match &policy["maxReceiveCount"] {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                }
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=1_000).contains(n))
                .ok_or_else(bad)?;
                let dlq = self
                    .by_name
                    .iter()
                    .find(|(_, q)| q.arn == arn)
                    .map(|(n, _)| n.clone())
                    .ok_or_else(bad)?;
                Some((dlq, max))
            }
        };
        if let Some(q) = self.by_name.get(&name) {
            let same = (q.visibility, q.delay, q.retention, &q.redrive) == (visibility, delay, retention, &redrive);
            return if same {
                Ok(json!({"QueueUrl": q.url}))
            } else {
                Err(SqsError {
                    code: "QueueAlreadyExists",
                    shape: "QueueNameExists",
                    message: "A queue already exists with the same name and a different value for attribute(s)"
                        .to_owned(),
                })
            };
        }
        let url = format!("{}/{ACCOUNT}/{name}", self.endpoint);
        self.by_name.insert(
            name.clone(),
            Queue {
                url: url.clone(),
                arn: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
                visibility,
                delay,
                retention,
                redrive,
                redrive_text,
                messages: BTreeMap::new(),
            },
        );
        Ok(json!({"QueueUrl": url}))
    }

    fn get_attributes(&mut self, input: &Map<String, Value>, now: DateTime<Utc>) -> Answer {
        let name = self.name_of(input)?;
        let q = self.queue(&name)?;
        let asked: Vec<&str> = input
            .get("AttributeNames")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let count = |f: &dyn Fn(&Stored) -> bool| q.messages.values().filter(|m| f(m)).count().to_string();
        let mut all: BTreeMap<&str, String> = BTreeMap::new();
        all.insert("QueueArn", q.arn.clone());
        all.insert("ApproximateNumberOfMessages", count(&|m| m.visible_at <= now));
        all.insert(
            "ApproximateNumberOfMessagesNotVisible",
            count(&|m| m.visible_at > now && m.receives > 0),
        );
        all.insert(
            "ApproximateNumberOfMessagesDelayed",
            count(&|m| m.visible_at > now && m.receives == 0),
        );
        all.insert("VisibilityTimeout", q.visibility.to_string());
        all.insert("DelaySeconds", q.delay.to_string());
        all.insert("MessageRetentionPeriod", q.retention.to_string());
        if let Some(p) = &q.redrive_text {
            all.insert("RedrivePolicy", p.clone());
        }
        let mut out = Map::new();
        for name in asked {
            if name == "All" {
                out.extend(all.iter().map(|(k, v)| ((*k).to_owned(), json!(v))));
            } else if let Some(v) = all.get(name) {
                out.insert(name.to_owned(), json!(v));
            } else if name != "RedrivePolicy" {
                return Err(SqsError {
                    code: "InvalidAttributeName",
                    shape: "InvalidAttributeName",
                    message: format!("Unknown Attribute {name}."),
                });
            }
        }
        Ok(json!({"Attributes": out}))
    }

    fn send(&mut self, input: &Map<String, Value>, now: DateTime<Utc>) -> Answer {
        let name = self.name_of(input)?;
        let body = string(input, "MessageBody")?.to_owned();
        if body.is_empty() {
            return Err(SqsError::invalid("The request must contain the parameter MessageBody."));
        }
        let delay = int(input, "DelaySeconds", 0..=MAX_DELAY)?;
        self.next_message += 1;
        let seq = self.next_message;
        let id = format!("00000000-0000-4000-8000-{seq:012x}");
        let md5 = crate::sqs::md5_hex(body.as_bytes());
        let delay = delay.unwrap_or_else(|| i64::from(self.by_name.get(&name).map_or(0, |q| q.delay)));
        self.seen.delayed_sends += u64::from(delay > 0);
        let q = self.queue(&name)?;
        q.messages.insert(
            seq,
            Stored {
                id: id.clone(),
                body,
                md5: md5.clone(),
                sent: now,
                visible_at: now + seconds(delay),
                receives: 0,
                first_receive: None,
                receipt: None,
            },
        );
        Ok(json!({"MessageId": id, "MD5OfMessageBody": md5}))
    }

    fn receive(&mut self, input: &Map<String, Value>, now: DateTime<Utc>) -> Answer {
        let name = self.name_of(input)?;
        let max = int(input, "MaxNumberOfMessages", 1..=10)?.unwrap_or(1);
        let visibility = int(input, "VisibilityTimeout", 0..=MAX_VISIBILITY)?;
        int(input, "WaitTimeSeconds", 0..=20)?;
        let asked: Vec<String> = ["MessageSystemAttributeNames", "AttributeNames"]
            .iter()
            .filter_map(|k| input.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let wants = |a: &str| asked.iter().any(|x| x == a || x == "All");
        let (redrive, default_visibility) = {
            let q = self.queue(&name)?;
            (q.redrive.clone(), q.visibility)
        };
        let visibility = visibility.unwrap_or_else(|| i64::from(default_visibility));
        let visible: Vec<u64> = self
            .queue(&name)?
            .messages
            .iter()
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let mut out = Vec::new();
        for seq in visible {
            if out.len() >= usize::try_from(max).unwrap_or(1) {
                break;
            }
            let receives = self
                .by_name
                .get(&name)
                .and_then(|q| q.messages.get(&seq))
                .map_or(0, |m| m.receives);
            let spent = redrive
                .as_ref()
                .is_some_and(|(_, max_receives)| receives >= *max_receives);
            if let (true, Some((dlq, _))) = (spent, &redrive) {
                // Received maxReceiveCount times and visible again: SQS moves it, not returns it.
                let Some(mut m) = self.queue(&name)?.messages.remove(&seq) else {
                    continue;
                };
                m.visible_at = now;
                m.receipt = None;
                if let Some(d) = self.by_name.get_mut(dlq) {
                    d.messages.insert(seq, m);
                    self.seen.dead_lettered += 1;
                }
                continue;
            }
            self.next_receipt += 1;
            self.seen.redeliveries += u64::from(receives > 0);
            let receipt = self.next_receipt;
            let q = self.queue(&name)?;
            let Some(m) = q.messages.get_mut(&seq) else {
                continue;
            };
            m.receives += 1;
            m.first_receive.get_or_insert(now);
            m.receipt = Some(receipt);
            m.visible_at = now + seconds(visibility);
            let mut attrs = Map::new();
            if wants("ApproximateReceiveCount") {
                attrs.insert("ApproximateReceiveCount".into(), json!(m.receives.to_string()));
            }
            if wants("SentTimestamp") {
                attrs.insert("SentTimestamp".into(), json!(millis(m.sent)));
            }
            if wants("ApproximateFirstReceiveTimestamp") {
                attrs.insert(
                    "ApproximateFirstReceiveTimestamp".into(),
                    json!(millis(m.first_receive.unwrap_or(now))),
                );
            }
            let mut message = json!({
                "MessageId": m.id,
                "ReceiptHandle": handle_text(receipt, seq, &name),
                "MD5OfBody": m.md5,
                "Body": m.body,
            });
            if !attrs.is_empty() {
                message["Attributes"] = Value::Object(attrs);
            }
            out.push(message);
        }
        Ok(if out.is_empty() {
            json!({})
        } else {
            json!({ "Messages": out })
        })
    }

    fn delete(&mut self, input: &Map<String, Value>) -> Answer {
        let name = self.name_of(input)?;
        let text = string(input, "ReceiptHandle")?;
        let invalid = || SqsError {
            code: "ReceiptHandleIsInvalid",
            shape: "ReceiptHandleIsInvalid",
            message: format!("The input receipt handle \"{text}\" is not a valid receipt handle."),
        };
        let (receipt, seq, of) = parse_handle(text).ok_or_else(invalid)?;
        if of != name || receipt == 0 || receipt > self.next_receipt {
            return Err(invalid());
        }
        let q = self.queue(&name)?;
        match q.messages.get(&seq).map(|m| m.receipt == Some(receipt)) {
            Some(true) => drop(q.messages.remove(&seq)),
            Some(false) => self.seen.superseded_deletes += 1,
            None => {}
        }
        // Gone already, or received again since (a superseded handle): success, nothing deleted.
        Ok(json!({}))
    }

    /// Drop what outlived its queue's retention period.
    fn expire(&mut self, now: DateTime<Utc>) {
        for q in self.by_name.values_mut() {
            let keep = seconds(q.retention);
            q.messages.retain(|_, m| now - m.sent < keep);
        }
    }
}

/// A receipt handle: opaque to the adapter; names its receive, its message and its queue.
fn handle_text(receipt: u64, seq: u64, queue: &str) -> String {
    format!("AQEB{receipt:016x}.{seq:016x}.{queue}")
}

fn parse_handle(text: &str) -> Option<(u64, u64, &str)> {
    let mut parts = text.strip_prefix("AQEB")?.splitn(3, '.');
    let receipt = u64::from_str_radix(parts.next()?, 16).ok()?;
    let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
    Some((receipt, seq, parts.next()?))
}

/// MD5 (RFC 1321) of `data` as lowercase hex, as SQS reports `MD5OfMessageBody`.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
