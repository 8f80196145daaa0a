//! The operator console (issue 14) over real HTTP on smsrelay-local: scoped API keys, sign-in
//! (cookie flags, a `send` key refused, wrong keys throttled), CSRF on every form, masked phone
//! numbers in lists, the security headers, and every page rendering from the seeded data.
//! (`browser.rs` drives the same pages in headless Chromium.)

use crate::helpers::{AppOptions, TestApp, API_KEY};
use crate::inbound::signed_inbound;
use serde_json::{json, Value};
use smsrelay::config::SIMULATOR_AUTH_TOKEN;
use std::time::Duration;

/// A second admin key (rotation: both live at once) and a send-only key.
pub(crate) const ADMIN_KEY_2: &str = "second-admin-key";
pub(crate) const SEND_KEY: &str = "web-form-send-key";
/// The recipient whose second message is held `rate_limited` (the failed list).
pub(crate) const HELD: &str = "+14155550160";
/// The lead of the seeded conversation.
pub(crate) const LEAD: &str = "+14155550123";
const OURS: &str = "+15005550006";

/// smsrelay-local with the simulator, a queue worker, an hourly limit of 1 and three keys.
pub(crate) async fn console_app() -> TestApp {
    TestApp::with(AppOptions {
        queue_poll: Some(Duration::from_millis(20)),
        env: vec![
            ("SMSRELAY_API_KEYS", format!("admin:{ADMIN_KEY_2},send:{SEND_KEY}")),
            ("SMSRELAY_RATE_LIMIT_PER_HOUR", "1".to_owned()),
        ],
        ..AppOptions::default()
    })
    .await
}

/// What [`seed`] made.
pub(crate) struct Seeded {
    /// A `rate_limited` message on the failed list.
    pub failed_id: String,
    /// A conversation with both directions.
    pub conversation_id: String,
    /// The campaign.
    pub campaign_id: String,
}

/// A failed message (the second to [`HELD`] inside the hour), and a campaign whose lead got
/// step 1 and replied (a conversation with both directions).
pub(crate) async fn seed(app: &TestApp) -> Seeded {
    let first = app.send(HELD, "Your technician arrives at 10:00").await;
    app.wait_for(first["id"].as_str().expect("id"), Duration::from_secs(5), |m| {
        m["status"] == "delivered"
    })
    .await;
    let held = app.send(HELD, "Your technician is running 15 minutes late").await;
    assert_eq!(held["status"], "rate_limited", "{held}");
    let campaign = json!({
        "id": "roof-leads", "name": "Roof leads", "from": OURS,
        "steps": [
            {"delay": "0s", "body": "Hi {{first_name}}, thanks for your roof request! Reply STOP to opt out."},
            {"delay": "2h", "body": "Still interested, {{first_name}}?"}
        ],
        "stop_on_reply": true,
        "agent": {"provider": "scripted", "rules": [], "fallback": "Thanks, a person will follow up."}
    });
    let resp = app
        .post_json("/v1/campaigns", &campaign)
        .send()
        .await
        .expect("campaign");
    assert_eq!(resp.status(), 201);
    let lead = json!({"phone": LEAD, "campaign_id": "roof-leads", "first_name": "Ana"});
    let resp = app.post_json("/v1/leads", &lead).send().await.expect("lead");
    assert_eq!(resp.status(), 201);
    let enrolled: Value = resp.json().await.expect("json");
    let step = enrolled["first_message_id"].as_str().expect("step 1 sent").to_owned();
    app.wait_for(&step, Duration::from_secs(5), |m| m["status"] == "delivered")
        .await;
    let resp = signed_inbound(
        app,
        "SMc0000000000000000000000000000001",
        (LEAD, OURS),
        "Yes, Thursday morning works",
        &[],
        Some(SIMULATOR_AUTH_TOKEN),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let list: Value = app
        .get(&format!("/v1/conversations?phone={}", LEAD.replace('+', "%2B")))
        .send()
        .await
        .expect("conversations")
        .json()
        .await
        .expect("json");
    let conversation_id = list["data"][0]["id"].as_str().expect("a conversation").to_owned();
    Seeded {
        failed_id: held["id"].as_str().expect("id").to_owned(),
        conversation_id,
        campaign_id: "roof-leads".to_owned(),
    }
}

/// A client that follows no redirect (the tests read each 303 and its cookies).
fn client() -> reqwest::Client {
    smsrelay::wiring::install_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `name=value` of each `Set-Cookie`, and the whole header of `name`.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_pair(header: &str) -> String {
    header.split(';').next().unwrap_or("").to_owned()
}

/// The hidden `csrf` value of the first form in `html`.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap_or("").to_owned()
}

/// A console visitor: its cookie jar is the one cookie the console sets.
pub(crate) struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
    forwarded_for: String,
}

impl Visitor {
    fn new(app: &TestApp, forwarded_for: &str) -> Self {
        Self {
            http: client(),
            base: app.url.clone(),
            cookie: String::new(),
            forwarded_for: forwarded_for.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-forwarded-for", &self.forwarded_for)
            .send()
            .await
            .expect("get")
    }

    async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.expect("html")
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-forwarded-for", &self.forwarded_for)
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// Open the sign-in page and post `key` with its token; returns the answer.
    async fn sign_in(&mut self, key: &str) -> reqwest::Response {
        let form = self.get("/console/login").await;
        let login_cookie = set_cookie(&form, "smsrelay_console_login").expect("the form's token cookie");
        self.cookie = cookie_pair(&login_cookie);
        let token = csrf_of(&form.text().await.expect("html"));
        let resp = self.post("/console/login", &[("key", key), ("csrf", &token)]).await;
        if let Some(session) = set_cookie(&resp, "smsrelay_console") {
            self.cookie = cookie_pair(&session);
        }
        resp
    }
}

async fn status_with(app: &TestApp, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
    let mut req = app.http.request(method, format!("{}{path}", app.url)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request").status().as_u16()
}

#[tokio::test]
async fn a_send_key_sends_and_enrols_but_gets_403_on_admin_routes_and_both_admin_keys_work() {
    let app = console_app().await;
    let msg = json!({"to": "+14155550101", "body": "from the web form"});
    use reqwest::Method;
    assert_eq!(
        status_with(&app, SEND_KEY, Method::POST, "/v1/messages", Some(msg)).await,
        202
    );
    assert_eq!(
        status_with(&app, SEND_KEY, Method::GET, "/v1/messages?to=%2B14155550101", None).await,
        200
    );
    // A lead for an unknown campaign: refused for what it says, not for the key.
    let lead = json!({"phone": LEAD, "campaign_id": "nope", "first_name": "Ana"});
    let s = status_with(&app, SEND_KEY, Method::POST, "/v1/leads", Some(lead)).await;
    assert!(s != 401 && s != 403, "{s}");
    for (method, path) in [
        (Method::GET, "/v1/failed-messages"),
        (Method::DELETE, "/v1/failed-messages/msg_01JD0000000000000000000000"),
        (Method::GET, "/v1/health"),
        (Method::GET, "/v1/campaigns"),
        (Method::POST, "/v1/processor/run"),
    ] {
        assert_eq!(
            status_with(&app, SEND_KEY, method.clone(), path, None).await,
            403,
            "{path}"
        );
    }
    let resp = app
        .http
        .get(format!("{}/v1/failed-messages", app.url))
        .bearer_auth(SEND_KEY)
        .send()
        .await
        .expect("get");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "insufficient_scope", "{body}");
    for key in [API_KEY, ADMIN_KEY_2] {
        assert_eq!(
            status_with(&app, key, Method::GET, "/v1/failed-messages", None).await,
            200
        );
    }
    assert_eq!(
        status_with(&app, "not-a-key", Method::GET, "/v1/failed-messages", None).await,
        401
    );
    assert_eq!(
        status_with(&app, "not-a-key", Method::POST, "/v1/messages", Some(json!({}))).await,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_key_signs_in_with_a_strict_http_only_expiring_cookie_and_a_send_key_cannot() {
    let app = console_app().await;
    let mut anonymous = Visitor::new(&app, "198.51.100.1");
    let resp = anonymous.get("/console").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console/login");
    let resp = anonymous.get("/console/failed").await;
    assert_eq!(resp.status(), 303, "every page needs a session");

    let resp = anonymous.sign_in(SEND_KEY).await;
    assert_eq!(resp.status(), 403);
    assert!(
        set_cookie(&resp, "smsrelay_console").is_none(),
        "no session for a send key"
    );
    assert!(resp.text().await.expect("html").contains("send scope"));

    let mut operator = Visitor::new(&app, "198.51.100.2");
    let resp = operator.sign_in(ADMIN_KEY_2).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console");
    let cookie = set_cookie(&resp, "smsrelay_console").expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http locally: {cookie}");
    assert!(!cookie.contains(ADMIN_KEY_2), "the key is never in the cookie");
    let overview = operator.page("/console").await;
    assert!(
        overview.contains("Overview") && overview.contains("<svg"),
        "{overview:.300}"
    );

    // Behind HTTPS the cookie is Secure.
    let form = client()
        .get(format!("{}/console/login", app.url))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("get");
    assert!(set_cookie(&form, "smsrelay_console_login")
        .expect("cookie")
        .contains("Secure"));

    // The sign-in form itself needs its token.
    let resp = client()
        .post(format!("{}/console/login", app.url))
        .form(&[("key", API_KEY)])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 403);
    assert!(set_cookie(&resp, "smsrelay_console").is_none());

    // Signing out clears the cookie.
    let token = csrf_of(&overview);
    let resp = operator.post("/console/logout", &[("csrf", &token)]).await;
    assert_eq!(resp.status(), 303);
    assert!(set_cookie(&resp, "smsrelay_console")
        .expect("cleared")
        .contains("Max-Age=0"));
    app.stop().await;
}

#[tokio::test]
async fn wrong_keys_are_throttled_per_client_then_even_the_right_key_waits() {
    let app = console_app().await;
    let mut guesser = Visitor::new(&app, "203.0.113.7");
    for i in 0..5 {
        let resp = guesser.sign_in(&format!("guess-{i}")).await;
        assert_eq!(resp.status(), 401, "guess {i}");
    }
    let resp = guesser.sign_in(API_KEY).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "60");
    assert!(set_cookie(&resp, "smsrelay_console").is_none());
    // Another client is not held up by the guesser.
    let mut operator = Visitor::new(&app, "203.0.113.8");
    assert_eq!(operator.sign_in(API_KEY).await.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn no_console_form_changes_anything_without_its_sessions_csrf_token() {
    let app = console_app().await;
    let seeded = seed(&app).await;
    let mut operator = Visitor::new(&app, "198.51.100.3");
    assert_eq!(operator.sign_in(API_KEY).await.status(), 303);
    let mut other = Visitor::new(&app, "198.51.100.4");
    assert_eq!(other.sign_in(API_KEY).await.status(), 303);
    let others_token = csrf_of(&other.page("/console").await);
    let id = &seeded.failed_id;
    let conv = &seeded.conversation_id;
    let forms: [(String, Vec<(&str, &str)>); 6] = [
        (format!("/console/failed/{id}/retry"), vec![]),
        (format!("/console/failed/{id}/delete"), vec![]),
        (format!("/console/conversations/{conv}/reply"), vec![("body", "hello")]),
        (
            format!("/console/conversations/{conv}/outcome"),
            vec![("outcome", "qualified"), ("reason", "x")],
        ),
        ("/console/processor/run".to_owned(), vec![]),
        ("/console/logout".to_owned(), vec![]),
    ];
    for (path, fields) in &forms {
        for token in [None, Some(""), Some(others_token.as_str())] {
            let mut form = fields.clone();
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let resp = operator.post(path, &form).await;
            assert_eq!(resp.status(), 403, "{path} with {token:?}");
        }
    }
    // Nothing changed: still on the failed list, the conversation open, nothing sent to the lead.
    let m = app.message(id).await;
    assert_eq!(m["status"], "rate_limited", "{m}");
    let c: Value = app.get_json(&format!("/v1/conversations/{conv}")).await;
    assert_ne!(c["status"], "ended", "{c}");
    assert!(c["outcome"].is_null(), "{c}");
    let failed = operator.page("/console/failed").await;
    assert!(failed.contains(id.as_str()));

    // With its own token the same form works.
    let token = csrf_of(&failed);
    let resp = operator
        .post(&format!("/console/failed/{id}/retry"), &[("csrf", &token)])
        .await;
    assert_eq!(resp.status(), 303);
    app.wait_for(id, Duration::from_secs(5), |m| m["status"] == "delivered")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn lists_never_show_a_full_phone_number_and_only_a_messages_own_page_does() {
    let app = console_app().await;
    let seeded = seed(&app).await;
    let mut operator = Visitor::new(&app, "198.51.100.5");
    assert_eq!(operator.sign_in(API_KEY).await.status(), 303);
    let lists = [
        "/console".to_owned(),
        "/console/failed".to_owned(),
        format!("/console/messages?phone={}", HELD.replace('+', "%2B")),
        format!("/console/conversations?phone={}", LEAD.replace('+', "%2B")),
        "/console/conversations?status=open".to_owned(),
        format!("/console/conversations/{}", seeded.conversation_id),
        "/console/campaigns".to_owned(),
        format!("/console/campaigns/{}", seeded.campaign_id),
    ];
    for path in &lists {
        let html = operator.page(path).await;
        for full in [HELD, LEAD, "4155550160", "4155550123"] {
            assert!(!html.contains(full), "{path} shows {full}");
        }
    }
    let failed = operator.page("/console/failed").await;
    assert!(failed.contains("+1415***0160"), "masked in the list");
    let search = operator
        .page(&format!("/console/messages?phone={}", HELD.replace('+', "%2B")))
        .await;
    assert!(search.contains("+1415***0160") && search.contains(&seeded.failed_id));
    let own = operator.page(&format!("/console/messages/{}", seeded.failed_id)).await;
    assert!(own.contains(HELD), "the message's own page shows the number");
    app.stop().await;
}

#[tokio::test]
async fn every_console_page_renders_from_the_stores_with_the_security_headers() {
    let app = console_app().await;
    let seeded = seed(&app).await;
    let mut operator = Visitor::new(&app, "198.51.100.6");
    assert_eq!(operator.sign_in(API_KEY).await.status(), 303);
    let checks: [(String, &[&str]); 8] = [
        (
            "/console/conversations".to_owned(),
            &[seeded.conversation_id.as_str(), "every lead", "+1415***0123"],
        ),
        (
            "/console".to_owned(),
            &["id=\"hourly-chart\"", "<svg", "Processor last run"],
        ),
        ("/console/failed".to_owned(), &["rate_limited", "Retry", "Remove"]),
        (
            format!("/console/messages/{}", seeded.failed_id),
            &["running 15 minutes late", "History", "rate_limited"],
        ),
        (
            format!("/console/conversations?phone={}&status=open", LEAD.replace('+', "%2B")),
            &[seeded.conversation_id.as_str()],
        ),
        (
            format!("/console/conversations/{}", seeded.conversation_id),
            &[
                "class=\"outbound\"",
                "thanks for your roof request",
                "class=\"inbound\"",
                "Yes, Thursday morning works",
                "Set the outcome",
            ],
        ),
        ("/console/campaigns".to_owned(), &["roof-leads", "Roof leads"]),
        (
            format!("/console/campaigns/{}", seeded.campaign_id),
            &[
                "id=\"outcomes-chart\"",
                "<svg",
                "Enrolments by state",
                "Still interested",
            ],
        ),
    ];
    for (path, wants) in &checks {
        let resp = operator.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("script-src") && !csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-type"].to_str().expect("ct").starts_with("text/html"),
            "{path}"
        );
        let html = resp.text().await.expect("html");
        assert!(!html.contains("<script"), "{path} has a script");
        for want in *wants {
            assert!(html.contains(want), "{path} lacks {want}");
        }
    }
    // The sign-in page and the stylesheet carry them too; the stylesheet is in the binary.
    let login = client()
        .get(format!("{}/console/login", app.url))
        .send()
        .await
        .expect("get");
    assert_eq!(login.headers()["x-content-type-options"], "nosniff");
    let css = operator.get("/console/assets/console.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/css"));
    assert!(css.text().await.expect("css").contains("ol.transcript"));
    // A person replies and ends the conversation from the console.
    let page = operator
        .page(&format!("/console/conversations/{}", seeded.conversation_id))
        .await;
    let token = csrf_of(&page);
    let conv = &seeded.conversation_id;
    let resp = operator
        .post(
            &format!("/console/conversations/{conv}/reply"),
            &[("csrf", token.as_str()), ("body", "Thursday 9:00 is booked, Ana.")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let resp = operator
        .post(
            &format!("/console/conversations/{conv}/outcome"),
            &[
                ("csrf", token.as_str()),
                ("outcome", "success"),
                ("reason", "booked by phone"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let page = operator.page(&format!("/console/conversations/{conv}")).await;
    assert!(
        page.contains("Thursday 9:00 is booked, Ana."),
        "the reply is in the transcript"
    );
    assert!(page.contains("booked by phone") && page.contains(">success<"), "{page}");
    let open = operator.page("/console/conversations?status=open").await;
    assert!(!open.contains(conv.as_str()), "no longer open");
    let ended = operator.page("/console/conversations?status=ended").await;
    assert!(ended.contains(conv.as_str()), "listed as ended");
    app.stop().await;
}
