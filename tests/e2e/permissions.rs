//! IAM in `template.yaml` against the code: DynamoDB Local and moto enforce no IAM, so a call the
//! policy does not grant only fails in AWS (a denied `GetQueueAttributes` on the DLQ once kept the
//! dead-letter alert from ever firing). These tests derive, for each function, the AWS actions its
//! wired adapters can call, from the adapters' own SDK calls, and check the template grants each
//! on the resource the function's environment points that adapter at, and nothing more.
//!
//! The derivation reads source text, so it leans on how the adapters are written: every SDK call
//! is a `client.<operation>()` chain ending in `.send()`, an index is named by a `keys::GSI…`
//! constant, and the SQS adapter addresses its queues through its `queue_url` and
//! `dead_letter_url` fields. A new adapter or call shape that it cannot read fails a test below
//! rather than passing unseen.

use super::template::{functions, template};
use regex_lite::Regex;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One action on one resource. Resources are written `arn:<LogicalId>[/suffix]` for an ARN of a
/// resource in the template, `secret:<name>` for a Secrets Manager secret matched by its exact
/// name plus the six-character suffix AWS adds, and as the template text otherwise.
type Grant = (String, String);

fn root() -> String {
    format!("{}/..", env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", root())).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The source of `path` without its `#[cfg(test)]` module (always at the end of the file).
fn production_source(path: &str) -> String {
    let text = read(path);
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// `get_queue_attributes` → `GetQueueAttributes`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// One SDK call in an adapter: the operation, the function it is written in, and its builder
/// chain up to `.send()`.
struct SdkCall {
    op: String,
    in_fn: String,
    chain: String,
}

/// The name of the `fn` whose body holds byte `at`.
fn enclosing_fn(text: &str, at: usize) -> String {
    let re = Regex::new(r"\bfn\s+([a-z_0-9]+)").expect("regex");
    re.captures_iter(&text[..at])
        .last()
        .map(|c| c[1].to_owned())
        .unwrap_or_default()
}

/// The body of `fn name` (to the next `fn`), empty if there is none.
fn fn_body<'a>(text: &'a str, name: &str) -> &'a str {
    let Some(start) = text.find(&format!("fn {name}(")) else {
        return "";
    };
    let rest = &text[start + 3..];
    let end = rest
        .find("\n    fn ")
        .or_else(|| rest.find("\nfn "))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn sdk_calls(source: &str) -> Vec<SdkCall> {
    let re = Regex::new(r"\bclient(?:\(\))?\s*\.\s*([a-z_]+)\(\)").expect("regex");
    re.captures_iter(source)
        .map(|c| {
            let whole = c.get(0).expect("match");
            let rest = &source[whole.start()..];
            let end = rest.find(".send()").unwrap_or(rest.len().min(400));
            SdkCall {
                op: c[1].to_owned(),
                in_fn: enclosing_fn(source, whole.start()),
                chain: rest[..end].to_owned(),
            }
        })
        .collect()
}

/// Functions that provision tables and queues for tests and smsrelay-local; deployed resources
/// come from the template, so no Lambda calls them (checked below).
const PROVISIONING: [&str; 2] = ["create_table", "create_queue_pair"];
/// `JobQueue` methods only `entrypoints::jobs::drain_queue_once` calls (smsrelay-local's worker);
/// in Lambda the SQS event source receives and deletes (checked below).
const LOCAL_WORKER_ONLY: [&str; 2] = ["receive", "ack"];

/// What `wiring::Deps::from_env` wires, as (adapter source files, the variable naming its target).
fn dynamodb_sources() -> Vec<String> {
    let dir = format!("{}/shared/src/adapters/dynamodb", root());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("adapters/dynamodb")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs"))
        .map(|n| format!("shared/src/adapters/dynamodb/{n}"))
        .collect();
    files.sort();
    files
}

/// `keys::GSI2` → `gsi2`, read from the constants in `keys.rs`.
fn index_names() -> BTreeMap<String, String> {
    let re = Regex::new(r#"pub const (GSI[0-9]+): &str = "([a-z0-9]+)";"#).expect("regex");
    re.captures_iter(&read("shared/src/adapters/dynamodb/keys.rs"))
        .map(|c| (format!("keys::{}", &c[1]), c[2].to_owned()))
        .collect()
}

/// The actions the adapters `Deps::from_env` wires can call, each with the environment variable
/// that names its target (`SMSRELAY_TABLE`, …) and a resource suffix (`/index/gsi1`), or, for
/// secrets, `*_SECRET`.
fn adapter_actions() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let indexes = index_names();
    let transact_item = Regex::new(r"TransactWriteItem::builder\(\)\s*\.\s*([a-z_]+)\(").expect("regex");
    let index_arg = Regex::new(r"\.index_name\(([^)]*)\)").expect("regex");
    for file in dynamodb_sources() {
        let source = production_source(&file);
        for call in sdk_calls(&source) {
            if PROVISIONING.contains(&call.in_fn.as_str()) {
                continue;
            }
            let mut add = |action: &str, suffix: String| {
                out.insert((format!("dynamodb:{action}"), "SMSRELAY_TABLE".to_owned(), suffix));
            };
            match call.op.as_str() {
                // A transaction is authorised as the item actions inside it.
                "transact_write_items" => {
                    let kinds: Vec<String> = transact_item
                        .captures_iter(&source)
                        .map(|c| pascal(&c[1]) + "Item")
                        .collect();
                    assert!(
                        !kinds.is_empty(),
                        "{file}: a TransactWriteItems whose items are not readable"
                    );
                    for kind in kinds {
                        add(&kind, String::new());
                    }
                }
                "transact_get_items" => add("GetItem", String::new()),
                "batch_write_item" => add("BatchWriteItem", String::new()),
                op => {
                    let suffix = match index_arg.captures(&call.chain) {
                        Some(c) => {
                            let name = indexes
                                .get(c[1].trim())
                                .unwrap_or_else(|| panic!("{file}: index {} is not a keys::GSI constant", &c[1]));
                            format!("/index/{name}")
                        }
                        None => String::new(),
                    };
                    add(&pascal(op), suffix);
                }
            }
        }
    }
    let sqs = production_source("shared/src/adapters/sqs_queue.rs");
    let field_var = [
        ("queue_url", "SMSRELAY_QUEUE_URL"),
        ("dead_letter_url", "SMSRELAY_DLQ_URL"),
    ];
    for call in sdk_calls(&sqs) {
        if PROVISIONING.contains(&call.in_fn.as_str()) || LOCAL_WORKER_ONLY.contains(&call.in_fn.as_str()) {
            continue;
        }
        let action = format!("sqs:{}", pascal(call.op.trim_end_matches("_batch")));
        // The queue: a field in the chain itself, or else every field the callers of a helper
        // (`counts(url, …)`) pass it.
        let callers: Vec<String> = Regex::new(&format!(r"\.{}\(", call.in_fn))
            .expect("regex")
            .find_iter(&sqs)
            .map(|m| enclosing_fn(&sqs, m.start()))
            .collect();
        let mut targets = Vec::new();
        for (field, var) in field_var {
            let named = |text: &str| text.contains(&format!("self.{field}"));
            if named(&call.chain) || callers.iter().any(|c| named(fn_body(&sqs, c))) {
                targets.push(var);
            }
        }
        assert!(
            !targets.is_empty(),
            "sqs_queue.rs: cannot tell which queue {} addresses",
            call.op
        );
        for var in targets {
            out.insert((action.clone(), var.to_owned(), String::new()));
        }
    }
    for (file, service, var) in [
        ("shared/src/adapters/eventbridge.rs", "events", "SMSRELAY_EVENT_BUS"),
        ("shared/src/adapters/secrets.rs", "secretsmanager", "*_SECRET"),
    ] {
        let calls = sdk_calls(&production_source(file));
        assert!(!calls.is_empty(), "{file}: no SDK call found");
        for call in calls {
            out.insert((format!("{service}:{}", pascal(&call.op)), var.to_owned(), String::new()));
        }
    }
    out
}

/// `!GetAtt X.Arn`, `!Ref X`, `!Sub "…"`, a string: the resource as this file writes it.
fn resource_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let text = t.value.as_str().unwrap_or_default();
            match tag.trim_start_matches('!') {
                "GetAtt" => format!("arn:{}", text.trim_end_matches(".Arn")),
                "Ref" => format!("ref:{text}"),
                "Sub" => {
                    let text = Regex::new(r"\$\{([A-Za-z0-9]+)\.Arn\}")
                        .expect("regex")
                        .replace_all(text, "arn:$1")
                        .into_owned();
                    let secret = Regex::new(
                        r"^arn:\$\{AWS::Partition\}:secretsmanager:\$\{AWS::Region\}:\$\{AWS::AccountId\}:secret:(.+)-\?\?\?\?\?\?$",
                    )
                    .expect("regex");
                    match secret.captures(&text) {
                        Some(c) => format!("secret:{}", &c[1]),
                        None => text,
                    }
                }
                other => format!("{other}:{}", serde_yaml::to_string(&t.value).unwrap_or_default()),
            }
        }
        other => serde_yaml::to_string(other).unwrap_or_default(),
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// The function's environment: the Globals' variables, then its own.
fn environment(t: &Value, f: &Value) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    for vars in [
        &t["Globals"]["Function"]["Environment"]["Variables"],
        &f["Properties"]["Environment"]["Variables"],
    ] {
        for (k, v) in vars.as_mapping().into_iter().flatten() {
            env.insert(k.as_str().unwrap_or_default().to_owned(), v.clone());
        }
    }
    env
}

/// The first `!Sub` string inside `v` (looking into `!If` branches).
fn first_sub(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag.to_string().trim_start_matches('!') == "Sub" => t.value.as_str().map(str::to_owned),
        Value::Tagged(t) => first_sub(&t.value),
        Value::Sequence(s) => s.iter().find_map(first_sub),
        _ => None,
    }
}

/// What function `name` must be granted: the adapters' actions on the resources its environment
/// names, and what its SQS event sources need.
fn required(t: &Value, name: &str, f: &Value) -> Result<BTreeSet<Grant>, String> {
    let code = f["Properties"]["CodeUri"].as_str().unwrap_or_default();
    let main = read(&format!("{code}/src/main.rs"));
    if !main.contains("Deps::from_env()") {
        return Err(format!(
            "{name}: {code}/src/main.rs does not wire Deps::from_env; teach tests/e2e/permissions.rs its adapters"
        ));
    }
    let env = environment(t, f);
    let target = |var: &str| -> Result<String, String> {
        match env.get(var) {
            Some(Value::Tagged(r)) if r.tag.to_string().trim_start_matches('!') == "Ref" => {
                Ok(format!("arn:{}", r.value.as_str().unwrap_or_default()))
            }
            other => Err(format!("{name}: {var} is not a !Ref to a resource: {other:?}")),
        }
    };
    let secret_vars: BTreeSet<&str> = smsrelay::config::SECRET_REFERENCES.iter().map(|(r, _)| *r).collect();
    let mut secrets = BTreeSet::new();
    for (var, value) in &env {
        if var.ends_with("_SECRET") {
            if !secret_vars.contains(var.as_str()) {
                return Err(format!("{name}: {var} is not in config::SECRET_REFERENCES"));
            }
            let reference = first_sub(value).ok_or_else(|| format!("{name}: {var} is not a !Sub reference"))?;
            let id = reference.split('#').next().unwrap_or_default().to_owned();
            secrets.insert(format!("secret:{id}"));
        }
    }
    let mut out = BTreeSet::new();
    for (action, var, suffix) in adapter_actions() {
        if var == "*_SECRET" {
            for s in &secrets {
                out.insert((action.clone(), s.clone()));
            }
        } else {
            out.insert((action, format!("{}{suffix}", target(&var)?)));
        }
    }
    for e in f["Properties"]["Events"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(_, e)| e)
    {
        if e["Type"] == "SQS" {
            let queue = resource_name(&e["Properties"]["Queue"]);
            for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"] {
                out.insert((action.to_owned(), queue.clone()));
            }
        }
    }
    Ok(out)
}

/// What the template grants function `f`: its inline statements and the statements of the
/// template's managed policies it references. Anything else (an AWS managed policy, a SAM policy
/// template) cannot be read here and is a problem.
fn granted(t: &Value, name: &str, f: &Value) -> (BTreeSet<Grant>, Vec<String>) {
    let mut grants = BTreeSet::new();
    let mut problems = Vec::new();
    for policy in list(&f["Properties"]["Policies"]) {
        let statements = match &policy {
            Value::Mapping(m) if m.contains_key("Statement") => list(&policy["Statement"]),
            Value::Tagged(r) if r.tag.to_string().trim_start_matches('!') == "Ref" => {
                let id = r.value.as_str().unwrap_or_default();
                let res = &t["Resources"][id];
                if res["Type"] != "AWS::IAM::ManagedPolicy" {
                    problems.push(format!(
                        "{name}: policy !Ref {id} is not a managed policy of this template"
                    ));
                    continue;
                }
                list(&res["Properties"]["PolicyDocument"]["Statement"])
            }
            other => {
                problems.push(format!(
                    "{name}: a policy this test cannot read (managed ARN or policy template): {other:?}"
                ));
                continue;
            }
        };
        for s in statements {
            if s["Effect"] != "Allow" {
                continue;
            }
            for action in list(&s["Action"]) {
                let action = action.as_str().unwrap_or_default().to_owned();
                for resource in list(&s["Resource"]) {
                    grants.insert((action.clone(), resource_name(&resource)));
                }
            }
        }
    }
    (grants, problems)
}

/// Every problem with the template's grants: a call the code makes that is not granted on its
/// resource, a grant the code never uses, wildcards and Scan.
fn permission_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in functions(t) {
        let want = match required(t, &name, &f) {
            Ok(w) => w,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let (got, mut unreadable) = granted(t, &name, &f);
        problems.append(&mut unreadable);
        for (action, resource) in want.difference(&got) {
            problems.push(format!("{name}: missing {action} on {resource}"));
        }
        for (action, resource) in got.difference(&want) {
            problems.push(format!(
                "{name}: grants {action} on {resource}, which its code never calls"
            ));
        }
        for (action, resource) in &got {
            if action.contains('*') || action == "dynamodb:Scan" || resource.contains('*') {
                problems.push(format!("{name}: too broad: {action} on {resource}"));
            }
        }
    }
    problems
}

#[test]
fn every_function_is_granted_exactly_what_its_wired_adapters_call() {
    let problems = permission_problems(&template());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_derivation_sees_the_calls_it_exists_for() {
    let t = template();
    let processor = &t["Resources"]["ProcessorFunction"];
    let want = required(&t, "ProcessorFunction", processor).expect("derivable");
    for grant in [
        ("sqs:GetQueueAttributes", "arn:RetryDeadLetterQueue"),
        ("sqs:GetQueueAttributes", "arn:RetryQueue"),
        ("sqs:SendMessage", "arn:RetryQueue"),
        ("dynamodb:Query", "arn:Table/index/gsi2"),
        ("dynamodb:PutItem", "arn:Table"),
        ("events:PutEvents", "arn:EventBus"),
        ("secretsmanager:GetSecretValue", "secret:${SecretsName}"),
    ] {
        assert!(
            want.contains(&(grant.0.to_owned(), grant.1.to_owned())),
            "{grant:?} not derived: {want:?}"
        );
    }
    // Lambda never receives or deletes itself, and never provisions.
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:CreateQueue",
        "dynamodb:CreateTable",
    ] {
        assert!(
            want.iter().all(|(a, _)| a != action),
            "{action} derived for the processor"
        );
    }
    let consumer = &t["Resources"]["RetryConsumerFunction"];
    let want = required(&t, "RetryConsumerFunction", consumer).expect("derivable");
    assert!(want.contains(&("sqs:ReceiveMessage".to_owned(), "arn:RetryQueue".to_owned())));
}

/// The exclusions above hold: provisioning and the local worker's receive/ack are not reachable
/// from any Lambda's wiring or entry points.
#[test]
fn what_the_derivation_skips_is_not_called_in_lambda() {
    let wiring = production_source("shared/src/wiring.rs");
    for f in PROVISIONING {
        assert!(!wiring.contains(f), "wiring.rs calls {f}");
    }
    let jobs = production_source("shared/src/entrypoints/jobs.rs");
    for (i, _) in jobs.match_indices(".receive(").chain(jobs.match_indices(".ack(")) {
        assert_eq!(enclosing_fn(&jobs, i), "drain_queue_once");
    }
    let t = template();
    for (name, f) in functions(&t) {
        let code = f["Properties"]["CodeUri"].as_str().unwrap_or_default();
        let main = read(&format!("{code}/src/main.rs"));
        assert!(!main.contains("drain_queue_once"), "{name} drains the queue itself");
    }
}

fn statement_mut<'a>(t: &'a mut Value, sid: &str) -> &'a mut Value {
    t["Resources"]["FunctionAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence_mut()
        .expect("statements")
        .iter_mut()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("statement {sid}"))
}

#[test]
fn a_removed_grant_is_reported_for_every_function_that_needs_it() {
    let mut t = template();
    let dlq = statement_mut(&mut t, "DeadLetterDepth");
    dlq["Action"] = serde_yaml::from_str("[]").expect("yaml");
    let problems = permission_problems(&t);
    assert!(
        problems
            .iter()
            .any(|p| p == "ProcessorFunction: missing sqs:GetQueueAttributes on arn:RetryDeadLetterQueue"),
        "{problems:#?}"
    );
    let functions = functions(&t).len();
    assert_eq!(problems.len(), functions, "{problems:#?}");
}

#[test]
fn a_secret_pattern_that_matches_other_secrets_is_reported() {
    let mut t = template();
    let secret = statement_mut(&mut t, "ReadTheSecret");
    secret["Resource"] = serde_yaml::from_str(
        r#"!Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsName}-*""#,
    )
    .expect("yaml");
    let problems = permission_problems(&t);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("SendFunction: missing secretsmanager:GetSecretValue on secret:${SecretsName}")),
        "{problems:#?}"
    );
    assert!(problems.iter().any(|p| p.contains("too broad")), "{problems:#?}");
}

#[test]
fn scan_and_grants_the_code_never_uses_are_reported() {
    let mut t = template();
    let items = statement_mut(&mut t, "Items");
    items["Action"]
        .as_sequence_mut()
        .expect("actions")
        .push(Value::String("dynamodb:Scan".to_owned()));
    let problems = permission_problems(&t);
    assert!(
        problems
            .iter()
            .any(|p| p == "BatchFunction: too broad: dynamodb:Scan on arn:Table"),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "BatchFunction: grants dynamodb:Scan on arn:Table, which its code never calls"),
        "{problems:#?}"
    );
}
