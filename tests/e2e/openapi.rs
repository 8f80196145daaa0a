//! The OpenAPI document (issue 8 item 2): the committed `docs/openapi.json` is the one the code
//! builds, `GET /openapi.json` serves it, and every documented route, driven against
//! smsrelay-local, answers with a status the document lists and a body its schema accepts.
//!
//! Regenerate the committed copy with `UPDATE_OPENAPI=1 cargo test -p e2e --test e2e openapi`.

use crate::helpers::{TestApp, API_KEY};
use serde_json::{json, Value};
use smsrelay::config::SIMULATOR_AUTH_TOKEN;
use std::collections::BTreeSet;

fn committed_path() -> String {
    format!("{}/../docs/openapi.json", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_committed_document_is_current() {
    let built = smsrelay::entrypoints::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path(), format!("{built}\n")).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed.trim_end() == built.trim_end(),
        "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p e2e --all-features --test e2e openapi` and commit it"
    );
}

#[test]
fn the_document_lists_every_route_of_the_table_and_only_those() {
    let doc: Value = serde_json::from_str(&smsrelay::entrypoints::openapi::document_json()).expect("json");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if op.get("responses").is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<(String, String)> = smsrelay::entrypoints::route_table()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(documented, table);
}

/// A small JSON Schema (2020-12 subset utoipa emits) validator: `$ref` to components, `type`
/// (one or several), `properties`, `required`, `items`, `enum`, `oneOf`/`anyOf`/`allOf`,
/// `additionalProperties`, `maxItems`. Returns the first mismatch, with its path.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: unresolved {r}"));
        }
        return validate(doc, target, v, at);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, v, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let ok = alts.iter().filter(|s| validate(doc, s, v, at).is_ok()).count();
            if ok == 0 || (key == "oneOf" && ok > 1) {
                return Err(format!("{at}: {ok} alternatives of {key} match {v}"));
            }
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |ty: &str| match ty {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            _ => false,
        };
        if !types.iter().any(|ty| fits(ty)) {
            return Err(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = r.as_str().unwrap_or("");
            if !obj.contains_key(name) {
                return Err(format!("{at}: missing required `{name}`"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, val, &format!("{at}.{k}"))?,
                None => {
                    if let Some(extra) = schema.get("additionalProperties") {
                        if extra == &Value::Bool(false) {
                            return Err(format!("{at}: unexpected `{k}`"));
                        }
                        if extra.is_object() {
                            validate(doc, extra, val, &format!("{at}.{k}"))?;
                        }
                    }
                }
            }
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                return Err(format!("{at}: more than {max} items"));
            }
        }
        if let Some(s) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(doc, s, item, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}

const RETELL_KEY: &str = "retell-test-key";

#[test]
fn the_validator_rejects_what_it_should() {
    let doc = json!({"components": {"schemas": {"E": {"type": "object", "required": ["code"],
        "properties": {"code": {"type": "string"}, "n": {"type": ["integer", "null"]}}}}}});
    let r = json!({"$ref": "#/components/schemas/E"});
    assert!(validate(&doc, &r, &json!({"code": "x", "n": null}), "$").is_ok());
    assert!(validate(&doc, &r, &json!({"n": 1}), "$").is_err(), "required");
    assert!(validate(&doc, &r, &json!({"code": 1}), "$").is_err(), "type");
    assert!(
        validate(&doc, &r, &json!({"code": "x", "n": 1.5}), "$").is_err(),
        "integer"
    );
    assert!(validate(&doc, &json!({"$ref": "#/components/schemas/Nope"}), &json!({}), "$").is_err());
}

struct Call {
    method: &'static str,
    path: String,
    body: Option<String>,
    form: Option<Vec<(String, String)>>,
    auth: bool,
    headers: Vec<(&'static str, String)>,
}

fn call(method: &'static str, path: impl Into<String>) -> Call {
    Call {
        method,
        path: path.into(),
        body: None,
        form: None,
        auth: true,
        headers: Vec::new(),
    }
}

impl Call {
    fn json(mut self, v: Value) -> Self {
        self.body = Some(v.to_string());
        self
    }
    fn open(mut self) -> Self {
        self.auth = false;
        self
    }
    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Send `c`, check its status and body against the document; return the status and body.
async fn check(app: &TestApp, doc: &Value, template: &str, c: Call) -> (u16, Value) {
    let url = format!("{}{}", app.url, c.path);
    let sent_body: Option<Value> = c.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
    let mut req = app.http.request(c.method.parse().expect("method"), &url);
    if c.auth {
        req = req.bearer_auth(API_KEY);
    }
    for (name, value) in &c.headers {
        req = req.header(*name, value);
    }
    if let Some(b) = c.body {
        req = req.header("content-type", "application/json").body(b);
    }
    if let Some(form) = &c.form {
        let sig = smsrelay::adapters::twilio::compute_signature(SIMULATOR_AUTH_TOKEN, &url, form);
        req = req.header("x-twilio-signature", sig).form(form);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    let op = &doc["paths"][template][c.method.to_lowercase()];
    assert!(op.is_object(), "{} {template} is not documented", c.method);
    if let (true, Some(sent)) = ((200..300).contains(&status), &sent_body) {
        // An accepted request body fits the documented request schema (the DTO and its
        // description agree).
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{} {template}: no request schema", c.method);
        if let Err(e) = validate(doc, schema, sent, "request") {
            panic!("{} {}: accepted body does not fit its schema: {e}", c.method, c.path);
        }
    }
    let documented = &op["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{} {}: status {status} is not documented: {text}",
        c.method,
        c.path
    );
    let body = match documented.get("content").and_then(Value::as_object) {
        None => {
            assert!(text.is_empty(), "{} {}: undocumented body {text}", c.method, c.path);
            Value::Null
        }
        Some(content) => {
            let media = content
                .get(content_type.as_str())
                .unwrap_or_else(|| panic!("{} {}: content type {content_type} not documented", c.method, c.path));
            if content_type == "application/json" {
                let v: Value = serde_json::from_str(&text).expect("JSON body");
                if let Err(e) = validate(doc, &media["schema"], &v, "$") {
                    panic!("{} {} → {status}: {e}\n{v}", c.method, c.path);
                }
                v
            } else {
                Value::String(text)
            }
        }
    };
    (status, body)
}

#[tokio::test]
async fn every_documented_route_answers_as_its_schema_says() {
    let app = TestApp::with(crate::helpers::AppOptions {
        queue_poll: Some(std::time::Duration::from_millis(20)),
        env: vec![("RETELL_API_KEY", RETELL_KEY.to_owned())],
        ..crate::helpers::AppOptions::default()
    })
    .await;
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let doc: Value = serde_json::from_str(&smsrelay::entrypoints::openapi::document_json()).expect("json");
    assert_eq!(served, doc, "GET /openapi.json serves the document");
    let mut driven: BTreeSet<(String, String)> = BTreeSet::new();
    let mut drive = |method: &str, template: &str| {
        driven.insert((method.to_owned(), template.to_owned()));
    };

    // public
    check(&app, &doc, "/health", call("GET", "/health").open()).await;
    drive("GET", "/health");
    check(&app, &doc, "/openapi.json", call("GET", "/openapi.json").open()).await;
    drive("GET", "/openapi.json");

    // send
    let t = "/v1/messages";
    let (_, sent) = check(
        &app,
        &doc,
        t,
        call("POST", t).json(
            json!({"to": "+14155550100", "body": "hi", "ref": {"type": "job", "id": "j1"},
            "metadata": {"lead": "L1", "tags": ["a"]}}),
        ),
    )
    .await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let (_, scheduled) = check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"to": "+14155550101", "body": "later", "send_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
            "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "UTC"}, "ref": {"type": "job", "id": "j2"}})),
    )
    .await;
    let failed = check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"to": "+15005550001", "body": "x"})),
    )
    .await
    .1;
    assert_eq!(failed["status"], "failed");
    let failed_too = check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"to": "+15005550001", "body": "y"})),
    )
    .await
    .1;
    assert_eq!(failed_too["status"], "failed", "{failed_too}");
    check(&app, &doc, t, call("POST", t).json(json!({"to": "12", "body": "x"}))).await;
    check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"to": "+14155550100", "body": "x"})).open(),
    )
    .await;
    drive("POST", t);
    check(&app, &doc, t, call("GET", "/v1/messages?to=%2B14155550100&limit=1")).await;
    check(&app, &doc, t, call("GET", "/v1/messages")).await;
    drive("GET", t);
    let t = "/v1/messages/{id}";
    check(&app, &doc, t, call("GET", format!("/v1/messages/{id}"))).await;
    check(
        &app,
        &doc,
        t,
        call("GET", "/v1/messages/msg_01JD0000000000000000000000"),
    )
    .await;
    drive("GET", t);
    let t = "/v1/messages/{id}/cancel";
    let sid = scheduled["id"].as_str().expect("id");
    let (status, _) = check(&app, &doc, t, call("POST", format!("/v1/messages/{sid}/cancel"))).await;
    assert_eq!(status, 200);
    let (status, _) = check(&app, &doc, t, call("POST", format!("/v1/messages/{id}/cancel"))).await;
    assert_eq!(status, 409);
    drive("POST", t);
    let t = "/v1/messages/cancel";
    check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"ref": {"type": "job", "id": "nothing"}})),
    )
    .await;
    check(&app, &doc, t, call("POST", t).json(json!({}))).await;
    drive("POST", t);

    // status-callback
    let t = "/webhooks/twilio/status";
    let form = vec![
        ("MessageSid".to_owned(), "SMcccccccccccccccccccccccccccccccc".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
    ];
    let mut c = call("POST", t).open();
    c.form = Some(form);
    let (status, _) = check(&app, &doc, t, c).await;
    assert_eq!(status, 200);
    check(&app, &doc, t, call("POST", t).open()).await;
    drive("POST", t);

    // batch
    let t = "/v1/batches";
    let (_, batch) = check(
        &app,
        &doc,
        t,
        call("POST", t).json(
            json!({"messages": [{"to": "+14155550102", "body": "a"}, {"to": "12", "body": "b"},
            {"to": "+15005550001", "body": "c"}]}),
        ),
    )
    .await;
    check(&app, &doc, t, call("POST", t).json(json!({"messages": []}))).await;
    drive("POST", t);
    let t = "/v1/batches/{id}";
    let bid = batch["batch_id"].as_str().expect("batch id");
    check(&app, &doc, t, call("GET", format!("/v1/batches/{bid}"))).await;
    check(&app, &doc, t, call("GET", "/v1/batches/bat_nothing")).await;
    drive("GET", t);

    // admin
    let t = "/v1/failed-messages";
    check(&app, &doc, t, call("GET", t)).await;
    check(&app, &doc, t, call("GET", "/v1/failed-messages?limit=0")).await;
    drive("GET", t);
    let fid = failed["id"].as_str().expect("id");
    let t = "/v1/failed-messages/{id}/retry";
    let (status, _) = check(&app, &doc, t, call("POST", format!("/v1/failed-messages/{fid}/retry"))).await;
    assert_eq!(status, 202);
    check(
        &app,
        &doc,
        t,
        call("POST", "/v1/failed-messages/msg_01JD0000000000000000000000/retry"),
    )
    .await;
    drive("POST", t);
    let t = "/v1/failed-messages/{id}";
    let gone = failed_too["id"].as_str().expect("id");
    let (status, _) = check(&app, &doc, t, call("DELETE", format!("/v1/failed-messages/{gone}"))).await;
    assert_eq!(status, 204);
    check(&app, &doc, t, call("DELETE", "/v1/failed-messages/nope")).await;
    drive("DELETE", t);
    let t = "/v1/processor/run";
    check(&app, &doc, t, call("POST", t)).await;
    check(&app, &doc, t, call("POST", t).open()).await;
    drive("POST", t);
    let t = "/v1/health";
    check(&app, &doc, t, call("GET", t)).await;
    drive("GET", t);

    // inbound
    let t = "/webhooks/twilio/inbound";
    let lead = "+14155550177";
    let form = smsrelay::adapters::twilio::inbound::inbound_params(
        "SM0000000000000000000000000000aa01",
        "AC00000000000000000000000000000000",
        lead,
        "+15005550006",
        "yes please",
    );
    let mut c = call("POST", t).open();
    c.form = Some(form);
    let (status, _) = check(&app, &doc, t, c).await;
    assert_eq!(status, 200);
    let mut c = call("POST", t).open();
    c.form = Some(vec![("Body".to_owned(), "hi".to_owned())]);
    let (status, _) = check(&app, &doc, t, c).await;
    assert_eq!(status, 400, "signed but without MessageSid/From/To");
    check(&app, &doc, t, call("POST", t).open()).await;
    drive("POST", t);
    let t = "/webhooks/retell";
    let ping = br#"{"event":"chat_inbound","chat_inbound":{"from_number":"+14155550177","to_number":"+15005550006"}}"#;
    let now = chrono::Utc::now().timestamp_millis();
    let mut c = call("POST", t).open().header(
        "x-retell-signature",
        smsrelay::adapters::retell::sign_retell(RETELL_KEY, ping, now),
    );
    c.body = Some(String::from_utf8_lossy(ping).into_owned());
    let (status, _) = check(&app, &doc, t, c).await;
    assert_eq!(status, 200);
    let mut c = call("POST", t)
        .open()
        .header("x-retell-signature", "v=1,d=00".to_owned());
    c.body = Some("{}".to_owned());
    check(&app, &doc, t, c).await;
    drive("POST", t);
    let t = "/v1/simulator/inbound";
    let (status, _) = check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"from": lead, "body": "can you call me"})),
    )
    .await;
    assert_eq!(status, 200);
    check(&app, &doc, t, call("POST", t).json(json!({"from": "x", "body": "y"}))).await;
    drive("POST", t);

    // conversations and consent
    let t = "/v1/conversations";
    let (_, page) = check(&app, &doc, t, call("GET", "/v1/conversations?phone=%2B14155550177")).await;
    check(&app, &doc, t, call("GET", "/v1/conversations?phone=12")).await;
    drive("GET", t);
    let conv = page["data"][0]["id"].as_str().expect("a conversation").to_owned();
    let t = "/v1/conversations/{id}";
    check(&app, &doc, t, call("GET", format!("/v1/conversations/{conv}"))).await;
    check(
        &app,
        &doc,
        t,
        call("GET", "/v1/conversations/conv_01JD0000000000000000000000"),
    )
    .await;
    drive("GET", t);
    let t = "/v1/conversations/{id}/messages";
    let (status, _) = check(
        &app,
        &doc,
        t,
        call("POST", format!("/v1/conversations/{conv}/messages")).json(json!({"body": "Calling you now"})),
    )
    .await;
    assert_eq!(status, 202);
    check(
        &app,
        &doc,
        t,
        call("POST", format!("/v1/conversations/{conv}/messages")).json(json!({})),
    )
    .await;
    drive("POST", t);
    let t = "/v1/conversations/{id}/outcome";
    let (status, _) = check(
        &app,
        &doc,
        t,
        call("POST", format!("/v1/conversations/{conv}/outcome")).json(json!({"outcome": "qualified"})),
    )
    .await;
    assert_eq!(status, 200);
    check(
        &app,
        &doc,
        t,
        call("POST", format!("/v1/conversations/{conv}/outcome")).json(json!({"outcome": "x"})),
    )
    .await;
    let (status, _) = check(
        &app,
        &doc,
        "/v1/conversations/{id}/messages",
        call("POST", format!("/v1/conversations/{conv}/messages")).json(json!({"body": "late"})),
    )
    .await;
    assert_eq!(status, 409);
    drive("POST", t);
    // campaigns, leads, enrolments
    let t = "/v1/campaigns";
    let roof = json!({"id": "roof-leads", "name": "Roof leads", "from": "+15005550006",
        "steps": [{"delay": "0s", "body": "Hi {{first_name}}"}, {"delay": "2h", "body": "Still there?"}],
        "quiet_hours": {"start": "21:00", "end": "08:00"}, "daily_limit": 3, "no_response_after": "3d",
        "agent": {"provider": "scripted", "rules": [{"match": "yes", "reply": "Great", "outcome": "qualified"}]}});
    let (status, _) = check(&app, &doc, t, call("POST", t).json(roof.clone())).await;
    assert_eq!(status, 201);
    check(&app, &doc, t, call("POST", t).json(roof.clone())).await;
    check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"id": "x", "name": "x", "steps": [{"delay": "0s", "body": "{{nope}}"}]})),
    )
    .await;
    check(&app, &doc, t, call("GET", t)).await;
    check(&app, &doc, t, call("GET", "/v1/campaigns?limit=0")).await;
    drive("POST", t);
    drive("GET", t);
    let t = "/v1/campaigns/{id}";
    check(&app, &doc, t, call("GET", "/v1/campaigns/roof-leads")).await;
    check(&app, &doc, t, call("GET", "/v1/campaigns/unknown")).await;
    drive("GET", t);
    let (status, _) = check(&app, &doc, t, call("PUT", "/v1/campaigns/roof-leads").json(roof)).await;
    assert_eq!(status, 200);
    check(
        &app,
        &doc,
        t,
        call("PUT", "/v1/campaigns/roof-leads").json(json!({"name": "no steps"})),
    )
    .await;
    drive("PUT", t);
    let t = "/v1/leads";
    let lead_body = json!({"phone": "+14155550188", "campaign_id": "roof-leads", "first_name": "Ana",
        "attributes": {"source": "web-form", "score": 7}});
    let (status, enrolled) = check(&app, &doc, t, call("POST", t).json(lead_body.clone())).await;
    assert_eq!(status, 201, "{enrolled}");
    let (status, _) = check(&app, &doc, t, call("POST", t).json(lead_body)).await;
    assert_eq!(status, 200);
    check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"phone": "+14155550189", "campaign_id": "unknown", "first_name": "A"})),
    )
    .await;
    check(
        &app,
        &doc,
        t,
        call("POST", t).json(json!({"campaign_id": "roof-leads"})),
    )
    .await;
    drive("POST", t);
    let enrollment = enrolled["enrollment_id"].as_str().expect("an enrollment").to_owned();
    let t = "/v1/enrollments/{id}";
    check(&app, &doc, t, call("GET", format!("/v1/enrollments/{enrollment}"))).await;
    check(
        &app,
        &doc,
        t,
        call("GET", "/v1/enrollments/enr_01JD0000000000000000000000"),
    )
    .await;
    drive("GET", t);
    let t = "/v1/enrollments/{id}/resume";
    let (status, _) = check(
        &app,
        &doc,
        t,
        call("POST", format!("/v1/enrollments/{enrollment}/resume")),
    )
    .await;
    assert_eq!(status, 409, "an active enrollment is not paused");
    check(&app, &doc, t, call("POST", "/v1/enrollments/nope/resume")).await;
    drive("POST", t);
    let t = "/v1/campaigns/{id}/report";
    let (status, report) = check(&app, &doc, t, call("GET", "/v1/campaigns/roof-leads/report")).await;
    assert_eq!((status, &report["enrolled"]), (200, &json!(1)), "{report}");
    check(&app, &doc, t, call("GET", "/v1/campaigns/unknown/report")).await;
    drive("GET", t);

    let t = "/v1/consent/{phone}";
    check(&app, &doc, t, call("GET", "/v1/consent/%2B14155550177")).await;
    check(&app, &doc, t, call("GET", "/v1/consent/12")).await;
    drive("GET", t);
    let (status, _) = check(
        &app,
        &doc,
        t,
        call("POST", "/v1/consent/%2B14155550177").json(json!({"status": "opted_out"})),
    )
    .await;
    assert_eq!(status, 200);
    check(
        &app,
        &doc,
        t,
        call("POST", "/v1/consent/%2B14155550177").json(json!({"status": "maybe"})),
    )
    .await;
    drive("POST", t);

    let table: BTreeSet<(String, String)> = smsrelay::entrypoints::route_table()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(driven, table, "every route of the table is driven here");
    app.stop().await;
}
