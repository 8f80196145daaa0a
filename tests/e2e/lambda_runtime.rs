//! The Lambda binaries themselves, under cargo-lambda's runtime emulator, on DynamoDB Local and
//! moto: `main.rs`, the configuration read from the environment (`events/env.json`, with its
//! secrets resolved from Secrets Manager at cold start), the cold start and the runtime loop run
//! as in AWS, not only the handlers (`lambda_events.rs` covers those in-process).
//!
//! `cargo lambda watch --only-lambda-apis` serves the Lambda Runtime API; each function's binary
//! is started against it with the variables Lambda gives (`AWS_LAMBDA_RUNTIME_API`, ...), and
//! every `events/` file is sent to its function with `cargo lambda invoke --data-file`. The
//! expectations are the in-process test's table ([`event_expectations`]), so the two cannot drift.
//!
//! The binaries are the workspace's debug builds (this test builds them first, as `cargo build`
//! would), or those in `SMSRELAY_LAMBDA_BINARIES` (`scripts/bench.sh` points it at the release
//! builds, `<dir>/<function>/bootstrap` as cargo-lambda lays them out). The time from a binary's
//! start to its first answer is printed, never asserted (the goal lives in `scripts/bench.sh`).
//! cargo-lambda is found on `PATH` (`scripts/test.sh` installs it from PyPI); without it the test
//! fails, never skips.

use crate::lambda_events::{event_expectations, event_files, load, twilio_created, Expect, ACCOUNT_SID};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The SAM logical id of each function binary (its section in `events/env.json`).
const FUNCTIONS: [(&str, &str); 8] = [
    ("send", "SendFunction"),
    ("status-callback", "StatusCallbackFunction"),
    ("batch", "BatchFunction"),
    ("admin", "AdminFunction"),
    ("inbound", "InboundFunction"),
    ("campaigns", "CampaignsFunction"),
    ("retry-consumer", "RetryConsumerFunction"),
    ("processor", "ProcessorFunction"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo-lambda` on PATH, or a loud failure.
fn cargo_lambda() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("cargo-lambda"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("cargo-lambda is not on PATH: run scripts/test.sh, which installs it from PyPI (pip install cargo-lambda)")
        })
}

/// Where each function's binary is: built now (debug), or taken from `SMSRELAY_LAMBDA_BINARIES`.
fn binaries() -> HashMap<&'static str, PathBuf> {
    if let Some(dir) = std::env::var_os("SMSRELAY_LAMBDA_BINARIES") {
        let dir = PathBuf::from(dir);
        return FUNCTIONS
            .iter()
            .map(|(bin, _)| (*bin, dir.join(bin).join("bootstrap")))
            .collect();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace()).args(["build", "--all-features"]);
    for (bin, _) in FUNCTIONS {
        build.args(["-p", bin]);
    }
    let status = build.status().expect("cargo build runs");
    assert!(status.success(), "building the Lambda binaries failed");
    let dir = profile_dir();
    FUNCTIONS.iter().map(|(bin, _)| (*bin, dir.join(bin))).collect()
}

/// `target/<profile>/`, where cargo puts the binaries: the test binary is
/// `target/<profile>/deps/e2e-*`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Where the functions' logs go (one file per function, kept after the run).
fn log_dir() -> PathBuf {
    let dir = profile_dir().join("lambda-runtime-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// The last lines of a log, for a failure message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "{} (last lines):\n{}",
        path.display(),
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

/// A child process killed when dropped (a failing assertion must not leave it running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // Already gone is fine: there is nothing left to stop.
        if self.0.kill().is_ok() {
            self.0.wait().ok();
        }
    }
}

/// `cargo lambda watch --only-lambda-apis` on a free port, once it accepts connections.
fn start_emulator() -> (Running, u16) {
    let port = free_port();
    let log = std::fs::File::create(std::env::temp_dir().join(format!("cargo-lambda-{port}.log"))).expect("log file");
    let child = Command::new(cargo_lambda())
        .current_dir(workspace())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
        ])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cargo lambda watch starts");
    let emulator = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the runtime emulator did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (emulator, port)
}

/// `events/env.json`: the shared `Parameters` overlaid with the function's own section.
fn env_json(logical_id: &str) -> BTreeMap<String, String> {
    let doc = load("env.json");
    let mut vars = BTreeMap::new();
    for section in ["Parameters", logical_id] {
        for (k, v) in doc[section].as_object().into_iter().flatten() {
            vars.insert(k.clone(), v.as_str().expect("env.json values are strings").to_owned());
        }
    }
    vars
}

/// Fresh resources on the emulators for one run, named after `events/env.json`'s.
struct Stack {
    table: String,
    queue_url: String,
    dlq_url: String,
    secret: String,
    bus: String,
}

async fn create_stack(moto: &str) -> Stack {
    let store = smsrelay::testing::dynamodb_local_store().await;
    let unique = format!("smsrelay-{}", ulid::Ulid::new().to_string().to_lowercase());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(smsrelay::wiring::aws_http_client())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    let (queue_url, dlq_url) =
        smsrelay::adapters::sqs_queue::create_queue_pair(&aws_sdk_sqs::Client::new(&sdk), &unique, 5)
            .await
            .expect("queues");
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&unique)
        .secret_string(
            json!({"api_key": "test-api-key", "twilio_auth_token": "12345", "retell_api_key": "test-api-key"})
                .to_string(),
        )
        .send()
        .await
        .expect("create secret");
    aws_sdk_eventbridge::Client::new(&sdk)
        .create_event_bus()
        .name(&unique)
        .send()
        .await
        .expect("create event bus");
    Stack {
        table: store.table().to_owned(),
        queue_url,
        dlq_url,
        secret: unique.clone(),
        bus: unique,
    }
}

/// The environment Lambda would give `bin`: env.json's variables pointed at this run's
/// resources, the emulator endpoints, and the Runtime API of the emulator.
fn function_env(logical_id: &str, bin: &str, stack: &Stack, twilio: &str, runtime: u16) -> BTreeMap<String, String> {
    let dynamodb = std::env::var("SMSRELAY_TEST_DYNAMODB_URL")
        .expect("SMSRELAY_TEST_DYNAMODB_URL is not set: run scripts/test.sh, which starts DynamoDB Local");
    let moto = std::env::var("SMSRELAY_TEST_SQS_URL")
        .expect("SMSRELAY_TEST_SQS_URL is not set: run scripts/test.sh, which starts the AWS emulator");
    let mut vars = env_json(logical_id);
    for v in vars.values_mut() {
        if let Some(key) = v.strip_prefix("smsrelay-local#") {
            *v = format!("{}#{key}", stack.secret);
        }
    }
    vars.insert("SMSRELAY_TABLE".into(), stack.table.clone());
    vars.insert("SMSRELAY_QUEUE_URL".into(), stack.queue_url.clone());
    vars.insert("SMSRELAY_DLQ_URL".into(), stack.dlq_url.clone());
    vars.insert("SMSRELAY_EVENT_BUS".into(), stack.bus.clone());
    // Not template variables: what the AWS account and Twilio's address are here.
    for (k, v) in [
        ("TWILIO_API_BASE", twilio.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        // DynamoDB Local keeps one database per access key: the key the tests' client uses.
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
        ("AWS_ENDPOINT_URL_SQS", moto.clone()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.clone()),
        // (the SDK names it after the service id "Secrets Manager")
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto),
        ("AWS_LAMBDA_FUNCTION_NAME", bin.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{runtime}/.rt/{bin}"),
        ),
    ] {
        vars.insert(k.to_owned(), v);
    }
    vars
}

/// The cheapest event each function can answer: what its cold start is timed with.
fn warm_up_event(bin: &str) -> Value {
    match bin {
        "retry-consumer" => json!({"Records": []}),
        "processor" => load("processor-schedule.json"),
        _ => {
            let mut ev = load("send-get-message.json");
            ev["rawPath"] = json!("/no-such-route");
            ev["requestContext"]["http"]["path"] = json!("/no-such-route");
            ev["routeKey"] = json!("$default");
            ev
        }
    }
}

/// `cargo lambda invoke <bin> --data-file <file>` against the emulator: the function's answer.
fn invoke(port: u16, bin: &str, file: &Path) -> Value {
    let out = Command::new(cargo_lambda())
        .args(["lambda", "invoke", bin, "-A", "127.0.0.1", "-P"])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(file)
        .args(["-o", "json"])
        .output()
        .expect("cargo lambda invoke runs");
    assert!(
        out.status.success(),
        "cargo lambda invoke {bin} {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{bin}: the answer is not JSON ({e})"))
}

/// Retell signs with a timestamp that must be within five minutes of the receiver's clock; the
/// binaries run on the system clock, so the Retell events are signed again now (same body).
fn resign_retell(event: &mut Value) {
    if event["headers"]["x-retell-signature"].is_string() {
        let body = event["body"]
            .as_str()
            .expect("Retell events carry a text body")
            .to_owned();
        let now = chrono::Utc::now().timestamp_millis();
        event["headers"]["x-retell-signature"] = json!(smsrelay::adapters::retell::sign_retell(
            "test-api-key",
            body.as_bytes(),
            now
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_file_runs_through_its_real_binary_under_the_lambda_runtime_emulator() {
    let bins = tokio::task::spawn_blocking(binaries).await.expect("build");
    let moto = std::env::var("SMSRELAY_TEST_SQS_URL")
        .expect("SMSRELAY_TEST_SQS_URL is not set: run scripts/test.sh, which starts the AWS emulator");
    let stack = create_stack(&moto).await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created("+14155550100")))
        .mount(&twilio)
        .await;
    assert_eq!(ACCOUNT_SID, env_json("SendFunction")["TWILIO_ACCOUNT_SID"]);
    let (_emulator, port) = start_emulator();
    let client = smsrelay::wiring::plain_http_client();

    // Start every function as Lambda would, and time its cold start to the first answer.
    let mut running = Vec::new();
    let mut cold = Vec::new();
    let logs = log_dir();
    for (bin, logical_id) in FUNCTIONS {
        let path = &bins[bin];
        assert!(path.is_file(), "{} is missing", path.display());
        let log_path = logs.join(format!("{bin}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let started = Instant::now();
        let child = Command::new(path)
            .env_clear()
            .envs(function_env(logical_id, bin, &stack, &twilio.uri(), port))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} starts: {e}"));
        let mut child = Running(child);
        let first = client
            .post(format!(
                "http://127.0.0.1:{port}/2015-03-31/functions/{bin}/invocations"
            ))
            .json(&warm_up_event(bin))
            .timeout(Duration::from_secs(60))
            .send();
        // A binary that dies in its cold start never polls the emulator: fail at once, not at
        // the request's timeout.
        let exited = async {
            loop {
                if let Some(status) = child.0.try_wait().expect("child status") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let answer = tokio::select! {
            answer = first => answer.unwrap_or_else(|e| panic!("{bin}: no answer to its first event: {e}")),
            status = exited => panic!("{bin} exited during its cold start ({status}):\n{}", tail(&log_path)),
        };
        running.push(child);
        let elapsed = started.elapsed();
        let status = answer.status();
        let body: Value = answer.json().await.expect("JSON answer");
        assert!(
            status.is_success(),
            "{bin}: the emulator reports {status}: {body}\n{}",
            tail(&log_path)
        );
        match bin {
            "retry-consumer" => assert_eq!(body["batchItemFailures"], json!([]), "{bin}: {body}"),
            "processor" => assert!(body["duration_ms"].is_u64(), "{bin}: {body}"),
            _ => assert_eq!(body["statusCode"], 404, "{bin}: {body}"),
        }
        // The same event again, warm: the difference is the cold start (init) alone.
        let started = Instant::now();
        let again = client
            .post(format!(
                "http://127.0.0.1:{port}/2015-03-31/functions/{bin}/invocations"
            ))
            .json(&warm_up_event(bin))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{bin}: no answer to its second event: {e}"));
        assert!(again.status().is_success(), "{bin}: {}", again.status());
        let warm = started.elapsed();
        cold.push(format!(
            "{bin} {} ms (warm {} ms, init ≈ {} ms)",
            elapsed.as_millis(),
            warm.as_millis(),
            elapsed.saturating_sub(warm).as_millis()
        ));
    }
    println!("first answer after the binary starts: {}", cold.join("; "));

    // Every events/ file through `cargo lambda invoke`, in the documented order.
    let expected = event_expectations();
    let mut listed: Vec<String> = expected.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    assert_eq!(event_files(), listed, "every events/*.json needs an expectation");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, expect) in &expected {
        let mut event = load(name);
        resign_retell(&mut event);
        let file = dir.path().join(name);
        std::fs::write(&file, event.to_string()).expect("write event");
        let bin = expect.binary();
        let got = tokio::task::spawn_blocking(move || invoke(port, bin, &file))
            .await
            .expect("invoke");
        match expect {
            Expect::Http(_, want) => assert_eq!(got["statusCode"], *want, "{name} through {bin}: {got}"),
            Expect::Sqs(failed) => {
                let ids: Vec<&str> = got["batchItemFailures"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{name}: no batchItemFailures in {got}"))
                    .iter()
                    .map(|f| f["itemIdentifier"].as_str().unwrap_or_default())
                    .collect();
                assert_eq!(ids, *failed, "{name} through {bin}");
            }
            Expect::Schedule => assert!(got["duration_ms"].is_u64(), "{name} through {bin}: {got}"),
        }
    }
    // Each runtime loop is still serving after all of them (no function exited on an event).
    for (i, (bin, _)) in FUNCTIONS.iter().enumerate() {
        assert!(
            running[i].0.try_wait().expect("child status").is_none(),
            "{bin} exited during the run"
        );
    }
}

#[test]
fn env_json_names_only_variables_the_template_declares() {
    // `sam local invoke --env-vars events/env.json` passes only variables the template declares.
    let template = std::fs::read_to_string(workspace().join("template.yaml")).expect("template.yaml");
    let doc = load("env.json");
    let sections = doc.as_object().expect("env.json is an object");
    for (section, vars) in sections {
        assert!(
            section == "Parameters" || FUNCTIONS.iter().any(|(_, id)| id == section),
            "env.json section {section} is not a function of the template"
        );
        for key in vars.as_object().expect("a section is an object").keys() {
            assert!(
                template.contains(&format!("        {key}: ")) || template.contains(&format!("          {key}: ")),
                "env.json sets {key}, which template.yaml does not declare, so sam local would drop it"
            );
        }
    }
}
