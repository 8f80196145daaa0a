//! Invariants of `template.yaml` that a deploy would only reveal too late.

use serde_yaml::Value;

pub(crate) fn template() -> Value {
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

pub(crate) fn functions(t: &Value) -> Vec<(String, Value)> {
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
    // The console's HTML pages are no API route: the admin function takes all of /console.
    let admin = Group::Admin.function().expect("the admin function");
    for (method, path) in smsrelay::entrypoints::console::DEPLOYED_ROUTES {
        want.entry(admin.to_owned())
            .or_default()
            .push(format!("{method} {path}"));
    }
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

fn resources_of_type(t: &Value, ty: &str) -> Vec<(String, Value)> {
    t["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_owned(), r.clone()))
        .collect()
}

/// `!Ref X` / `!GetAtt X.Arn` / `!GetAtt X.QueueName` → `X`.
fn referenced(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) => t.value.as_str().and_then(|s| s.split('.').next()).map(str::to_owned),
        _ => None,
    }
}

/// The function's `Properties[key]`, or the Globals' when it sets none.
fn setting(t: &Value, f: &Value, key: &str) -> Value {
    let own = &f["Properties"][key];
    if own.is_null() {
        t["Globals"]["Function"][key].clone()
    } else {
        own.clone()
    }
}

#[test]
fn every_alarm_pages_the_topic_and_every_function_has_error_and_throttle_alarms() {
    let t = template();
    let topics = resources_of_type(&t, "AWS::SNS::Topic");
    assert_eq!(topics.len(), 1, "one alarm topic");
    let topic = topics[0].0.clone();
    let subscription = &resources_of_type(&t, "AWS::SNS::Subscription")[0].1;
    assert_eq!(referenced(&subscription["Properties"]["TopicArn"]), Some(topic.clone()));
    assert_eq!(
        referenced(&subscription["Properties"]["Endpoint"]).as_deref(),
        Some("AlarmEmail")
    );
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let mut watched: Vec<(String, String)> = Vec::new();
    for (name, a) in &alarms {
        let p = &a["Properties"];
        let actions: Vec<Option<String>> = p["AlarmActions"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no AlarmActions"))
            .iter()
            .map(referenced)
            .collect();
        assert_eq!(actions, [Some(topic.clone())], "{name}");
        for d in p["Dimensions"].as_sequence().into_iter().flatten() {
            if let Some(target) = referenced(&d["Value"]) {
                watched.push((p["MetricName"].as_str().unwrap_or_default().to_owned(), target));
            }
        }
    }
    for (name, _) in functions(&t) {
        for metric in ["Errors", "Throttles"] {
            assert!(
                watched.contains(&(metric.to_owned(), name.clone())),
                "{name} has no {metric} alarm"
            );
        }
    }
    for (metric, target) in [
        ("ApproximateNumberOfMessagesVisible", "RetryDeadLetterQueue"),
        ("ApproximateAgeOfOldestMessage", "RetryQueue"),
        ("5xx", "HttpApi"),
        ("Invocations", "ProcessorFunction"),
    ] {
        assert!(
            watched.contains(&(metric.to_owned(), target.to_owned())),
            "no {metric} alarm on {target}: {watched:?}"
        );
    }
    let not_invoked = alarms
        .iter()
        .map(|(_, a)| &a["Properties"])
        .find(|p| p["MetricName"] == "Invocations")
        .expect("processor not-invoked alarm");
    assert_eq!(not_invoked["TreatMissingData"], "breaching");
    let window = not_invoked["Period"].as_u64().unwrap_or(0) * not_invoked["EvaluationPeriods"].as_u64().unwrap_or(0);
    assert_eq!(window, 15 * 60, "not invoked for 15 minutes");
}

#[test]
fn alert_raised_events_reach_the_alarm_topic() {
    let t = template();
    let topic = resources_of_type(&t, "AWS::SNS::Topic")[0].0.clone();
    let rules = resources_of_type(&t, "AWS::Events::Rule");
    let rule = rules
        .iter()
        .map(|(_, r)| &r["Properties"])
        .find(|p| {
            p["EventPattern"]["detail-type"]
                .as_sequence()
                .is_some_and(|d| d.iter().any(|v| v == smsrelay::adapters::eventbridge::ALERT_RAISED))
        })
        .expect("a rule for alert.raised");
    assert_eq!(referenced(&rule["EventBusName"]).as_deref(), Some("EventBus"));
    let sources = rule["EventPattern"]["source"].as_sequence().expect("source");
    assert!(sources.iter().any(|s| s == smsrelay::adapters::eventbridge::SOURCE));
    let targets: Vec<Option<String>> = rule["Targets"]
        .as_sequence()
        .expect("Targets")
        .iter()
        .map(|x| referenced(&x["Arn"]))
        .collect();
    assert_eq!(targets, [Some(topic)]);
    // The topic policy lets EventBridge publish (a topic policy replaces the default one, so it
    // must name CloudWatch too).
    let policy = serde_yaml::to_string(&resources_of_type(&t, "AWS::SNS::TopicPolicy")[0].1).expect("yaml");
    assert!(
        policy.contains("events.amazonaws.com") && policy.contains("cloudwatch.amazonaws.com"),
        "{policy}"
    );
}

#[test]
fn function_timeouts_outlast_the_http_deadlines_and_the_processor_runs_alone() {
    let t = template();
    let deadline = smsrelay::wiring::HTTP_TIMEOUT
        .max(smsrelay::adapters::twilio::DEFAULT_TIMEOUT)
        .as_secs();
    for (name, f) in functions(&t) {
        let timeout = setting(&t, &f, "Timeout").as_u64().expect("Timeout");
        // One provider call, the store writes around it, and an alert to Slack.
        assert!(timeout >= 2 * deadline + 5, "{name}: {timeout} s");
        let http = f["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, e)| e["Type"] == "HttpApi");
        if http {
            assert!(timeout < 30, "{name}: the HTTP API gives up after 30 s");
        }
    }
    let processor = &t["Resources"]["ProcessorFunction"]["Properties"];
    assert_eq!(processor["ReservedConcurrentExecutions"], 1);
    assert_eq!(processor["EventInvokeConfig"]["MaximumRetryAttempts"], 0);
    let schedule = processor["Events"]
        .as_mapping()
        .expect("Events")
        .values()
        .find(|e| e["Type"] == "Schedule")
        .expect("schedule");
    assert_eq!(schedule["Properties"]["RetryPolicy"]["MaximumRetryAttempts"], 0);
    let consumer = t["Resources"]["RetryConsumerFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("Events")
        .values()
        .find(|e| e["Type"] == "SQS")
        .expect("SQS event")
        .clone();
    assert!(!consumer["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_null());
}

#[test]
fn functions_are_arm64_binaries_named_by_their_packages() {
    let t = template();
    for (name, f) in functions(&t) {
        assert_eq!(
            serde_yaml::to_string(&setting(&t, &f, "Architectures")).expect("yaml"),
            "- arm64\n",
            "{name}"
        );
        let code = f["Properties"]["CodeUri"].as_str().expect("CodeUri");
        let manifest = std::fs::read_to_string(format!("{}/../{code}/Cargo.toml", env!("CARGO_MANIFEST_DIR")))
            .expect("Cargo.toml");
        let package = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .expect("package name")
            .trim_matches('"');
        assert_eq!(f["Metadata"]["BuildProperties"]["Binary"], package, "{name}");
    }
    let ignore = std::fs::read_to_string(format!("{}/../.gitignore", env!("CARGO_MANIFEST_DIR"))).expect(".gitignore");
    for entry in ["/target", "/.aws-sam"] {
        assert!(ignore.lines().any(|l| l == entry), "{entry} not ignored");
    }
    let samconfig =
        std::fs::read_to_string(format!("{}/../samconfig.toml", env!("CARGO_MANIFEST_DIR"))).expect("samconfig.toml");
    for key in [
        "stack_name",
        "capabilities",
        "resolve_s3 = true",
        "lint = true",
        "beta_features = true",
    ] {
        assert!(samconfig.contains(key), "samconfig.toml lacks {key}");
    }
}

#[test]
fn logs_traces_and_what_outlives_the_stack() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    assert_eq!(globals["Tracing"], "Active");
    for (name, f) in functions(&t) {
        let group = referenced(&f["Properties"]["LoggingConfig"]["LogGroup"]).unwrap_or_else(|| panic!("{name}"));
        let g = &t["Resources"][group.as_str()];
        assert_eq!(g["Type"], "AWS::Logs::LogGroup", "{name}");
        assert_eq!(
            referenced(&g["Properties"]["RetentionInDays"]).as_deref(),
            Some("LogRetentionDays")
        );
    }
    let api = &t["Resources"]["HttpApi"]["Properties"];
    assert!(!api["DefaultRouteSettings"]["ThrottlingRateLimit"].is_null());
    assert!(!api["DefaultRouteSettings"]["ThrottlingBurstLimit"].is_null());
    let format = api["AccessLogSettings"]["Format"].as_str().expect("access log format");
    serde_json::from_str::<serde_json::Value>(format).expect("JSON access log lines");
    assert!(
        format.contains("$context.routeKey") && !format.contains("$context.path"),
        "no raw paths (phone numbers)"
    );
    let table = &t["Resources"]["Table"];
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["Properties"]["DeletionProtectionEnabled"], true);
    assert_eq!(t["Resources"]["RetryDeadLetterQueue"]["DeletionPolicy"], "Retain");
}

#[test]
fn twilio_needs_a_real_sender_and_every_webhook_url_is_an_output() {
    let t = template();
    let from = &t["Parameters"]["TwilioFromNumber"]["Default"];
    assert_ne!(from, smsrelay::config::SIMULATOR_FROM);
    let rule = serde_yaml::to_string(&t["Rules"]).expect("yaml");
    assert!(
        rule.contains("TwilioAccountSid")
            && rule.contains("TwilioFromNumber")
            && rule.contains("TwilioMessagingServiceSid"),
        "{rule}"
    );
    let outputs = serde_yaml::to_string(&t["Outputs"]).expect("yaml");
    let urls: Vec<String> = t["Outputs"]
        .as_mapping()
        .expect("Outputs")
        .values()
        .filter_map(|o| match &o["Value"] {
            Value::Tagged(v) => v.value.as_str().map(str::to_owned),
            _ => None,
        })
        .collect();
    let webhooks: Vec<String> = smsrelay::entrypoints::route_table()
        .into_iter()
        .filter(|r| r.path.starts_with("/webhooks/"))
        .map(|r| r.path)
        .collect();
    assert!(webhooks.len() >= 3, "{webhooks:?}");
    for path in webhooks {
        assert!(
            urls.iter().any(|u| u.ends_with(&format!("amazonaws.com{path}"))),
            "no output for {path}: {urls:?}"
        );
    }
    for value in [
        "!Ref EventBus",
        "!Ref RetryQueue",
        "!Ref RetryDeadLetterQueue",
        "!Ref AlarmTopic",
    ] {
        assert!(outputs.contains(value), "no output {value}");
    }
}
