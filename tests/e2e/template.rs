//! Invariants of `template.yaml` that a deploy would only reveal too late.

use serde_yaml::Value;

fn template() -> Value {
    let path = format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("template.yaml")).expect("valid YAML")
}

fn workspace_members() -> Vec<String> {
    let path = format!("{}/../Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("Cargo.toml");
    let line = text
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("members line")
        .to_owned();
    line.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

fn functions(t: &Value) -> Vec<(String, Value)> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_owned(), r.clone()))
        .collect()
}

#[test]
fn every_function_is_a_workspace_member_built_with_cargo_lambda() {
    let t = template();
    let members = workspace_members();
    let fns = functions(&t);
    assert!(fns.len() >= 2);
    for (name, f) in fns {
        assert!(name.ends_with("Function"), "{name}");
        let code = f["Properties"]["CodeUri"].as_str().expect("CodeUri");
        assert!(
            members.iter().any(|m| m == code),
            "{name}: CodeUri {code} is not a workspace member"
        );
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        assert!(
            f["Properties"]["Policies"].is_sequence(),
            "{name} needs its own least-privilege policy"
        );
    }
}

#[test]
fn the_table_has_ttl_point_in_time_recovery_and_on_demand_billing() {
    let t = template();
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], "expires_at");
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
}

#[test]
fn no_policy_grants_wildcard_actions_or_scan() {
    let t = template();
    for (name, f) in functions(&t) {
        let text = serde_yaml::to_string(&f["Properties"]["Policies"]).expect("yaml");
        assert!(
            !text.contains("dynamodb:*") && !text.contains("'*'") && !text.contains("dynamodb:Scan"),
            "{name}: {text}"
        );
    }
}

/// The route table (`smsrelay::entrypoints::route_table`, the same declarations the routers and
/// the OpenAPI document are built from) and the template's HttpApi events agree, function by
/// function: every route is deployed on the function of its group, and nothing else is.
#[test]
fn the_http_routes_match_the_functions_that_serve_them() {
    use smsrelay::entrypoints::Group;
    use std::collections::BTreeMap;
    let t = template();
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in smsrelay::entrypoints::route_table() {
        let group = Group::from_tag(r.group).expect("known group");
        let Some(function) = group.function() else {
            // smsrelay-local only: never deployed.
            assert!(r.path.starts_with("/v1/simulator/"), "{} has no function", r.path);
            continue;
        };
        want.entry(function.to_owned())
            .or_default()
            .push(format!("{} {}", r.method, r.path));
    }
    assert!(want.len() >= 4, "{want:?}");
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, f) in functions(&t) {
        let Some(events) = f["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for e in events.values().filter(|e| e["Type"] == "HttpApi") {
            got.entry(name.clone()).or_default().push(format!(
                "{} {}",
                e["Properties"]["Method"].as_str().unwrap_or(""),
                e["Properties"]["Path"].as_str().unwrap_or("")
            ));
        }
    }
    for routes in want.values_mut().chain(got.values_mut()) {
        routes.sort();
    }
    assert_eq!(got, want);
}

#[test]
fn the_retry_consumer_reports_partial_batch_failures_and_its_queue_redrives_to_a_dlq() {
    let t = template();
    let events = t["Resources"]["RetryConsumerFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("Events");
    let sqs: Vec<&Value> = events.values().filter(|e| e["Type"] == "SQS").collect();
    assert_eq!(sqs.len(), 1);
    let types = sqs[0]["Properties"]["FunctionResponseTypes"]
        .as_sequence()
        .expect("FunctionResponseTypes");
    assert!(types.iter().any(|v| v == "ReportBatchItemFailures"));
    let queues: Vec<(String, Value)> = t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::SQS::Queue")
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_owned(), r.clone()))
        .collect();
    let sources: Vec<&(String, Value)> = queues
        .iter()
        .filter(|(_, q)| !q["Properties"]["RedrivePolicy"].is_null())
        .collect();
    assert!(!sources.is_empty());
    for (name, q) in sources {
        let max = q["Properties"]["RedrivePolicy"]["maxReceiveCount"]
            .as_u64()
            .expect("maxReceiveCount");
        assert!((1..=1000).contains(&max), "{name}");
        let vis = q["Properties"]["VisibilityTimeout"]
            .as_u64()
            .expect("VisibilityTimeout");
        let timeout = t["Resources"]["RetryConsumerFunction"]["Properties"]["Timeout"]
            .as_u64()
            .expect("Timeout");
        assert!(
            vis >= 6 * timeout,
            "{name}: visibility timeout must be at least 6x the consumer timeout"
        );
    }
    let alarms = t["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .count();
    assert!(alarms >= 1, "a dead-letter depth alarm is required");
}

#[test]
fn the_processor_runs_every_five_minutes() {
    let t = template();
    let events = t["Resources"]["ProcessorFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("Events");
    let schedule: Vec<&Value> = events.values().filter(|e| e["Type"] == "Schedule").collect();
    assert_eq!(schedule.len(), 1);
    assert_eq!(schedule[0]["Properties"]["Schedule"], "rate(5 minutes)");
}

#[test]
fn the_retry_consumer_runs_agents_with_a_deadline_inside_its_timeout_and_the_key_from_the_secret() {
    let t = template();
    let props = &t["Resources"]["RetryConsumerFunction"]["Properties"];
    let vars = &props["Environment"]["Variables"];
    let timeout = props["Timeout"].as_u64().expect("Timeout");
    let deadline = smsrelay::domain::parse_duration(vars["SMSRELAY_AGENT_DEADLINE"].as_str().expect("deadline"))
        .expect("a duration");
    assert!(deadline.as_secs() + 5 <= timeout, "room for the send after the model");
    // The key is a Secrets Manager reference (resolved at cold start), never a value.
    let secret = serde_yaml::to_string(&vars["OPENAI_API_KEY_SECRET"]).expect("yaml");
    assert!(secret.contains("#openai_api_key"), "{secret}");
    assert!(vars.get("OPENAI_API_KEY").is_none());
    assert!(smsrelay::config::SECRET_REFERENCES.contains(&("OPENAI_API_KEY_SECRET", "OPENAI_API_KEY")));
}
