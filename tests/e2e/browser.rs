//! The console in a real browser: Debian's Chromium, headless, driven by chromedriver over the
//! W3C WebDriver protocol (plain JSON over HTTP, spoken here with the reqwest client the tests
//! already use). A missing browser fails the test, never skips it: scripts/test.sh installs
//! `chromium` and `chromium-driver`.
//!
//! The operator's path: a `send` key is refused at sign-in; the admin key signs in; the failed
//! message is on the list; Retry; its page reaches `delivered`; a conversation shows both
//! directions; a campaign report shows its chart. Screenshots go to `target/console-screenshots/`.

use crate::console::{console_app, seed, SEND_KEY};
use crate::helpers::API_KEY;
use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // (the browser goes with the driver's session; the driver is ours to end)
        if let Err(e) = self.child.kill() {
            eprintln!("chromedriver already gone: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("chromedriver not reaped: {e}");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Driver {
    async fn start() -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does: \
                 apt-get install -y chromium chromium-driver)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = smsrelay::wiring::plain_http_client();
        let start = Instant::now();
        loop {
            let ready = http.get(format!("{url}/status")).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let resp: Value = http
            .post(format!("{url}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {resp}"))
            .to_owned();
        Self {
            child,
            url,
            http,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.url, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("webdriver call");
        let status = resp.status();
        let v: Value = resp.json().await.expect("webdriver json");
        assert!(status.is_success(), "{path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's address once `want` holds for it: a click that submits a form returns before
    /// the browser has always finished navigating (seen with the other core busy).
    async fn wait_url(&self, want: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.current_url().await;
            if want(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "never reached {what}; at {url}: {}",
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching `css` (panics naming the page when there is none).
    async fn find(&self, css: &str) -> String {
        let url = format!("{}/session/{}/element", self.url, self.session);
        let resp = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("find");
        let v: Value = resp.json().await.expect("json");
        match v["value"][ELEMENT].as_str() {
            Some(id) => id.to_owned(),
            None => panic!("no {css} on {}: {}", self.current_url().await, self.text("body").await),
        }
    }

    async fn count(&self, css: &str) -> usize {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array().map_or(0, Vec::len)
    }

    async fn text(&self, css: &str) -> String {
        let url = format!("{}/session/{}/element", self.url, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("find")
            .json()
            .await
            .expect("json");
        let Some(id) = v["value"][ELEMENT].as_str() else {
            return String::new();
        };
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Click `css`, then wait for what the click loads: a click that submits a form or follows
    /// a link can return before the browser has replaced the page (seen with the other core
    /// busy). The page is tagged first; the wait ends when a new, fully loaded page is there,
    /// or after a second without one (a click that stays on the page).
    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.script("window.__smsrelayBeforeClick = true; return true").await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({})))
            .await;
        let start = Instant::now();
        loop {
            let state = self
                .script("return [window.__smsrelayBeforeClick === true, document.readyState]")
                .await;
            let (same_page, ready) = (state[0].as_bool(), state[1].as_str());
            if same_page == Some(false) && ready == Some("complete") {
                return;
            }
            if same_page == Some(true) && start.elapsed() > Duration::from_secs(1) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{css}: the page it opened never loaded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `js` in the page; `Null` while the browser is between pages.
    async fn script(&self, js: &str) -> Value {
        let url = format!("{}/session/{}/execute/sync", self.url, self.session);
        let Ok(resp) = self
            .http
            .post(url)
            .json(&json!({"script": js, "args": []}))
            .send()
            .await
        else {
            return Value::Null;
        };
        resp.json::<Value>()
            .await
            .map(|v| v["value"].clone())
            .unwrap_or(Value::Null)
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or(""))
            .expect("a PNG");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(name), bytes).expect("screenshot written");
    }

    async fn quit(&self) {
        let url = format!("{}/session/{}", self.url, self.session);
        if let Err(e) = self.http.delete(url).send().await {
            eprintln!("session not closed: {e}");
        }
    }
}

/// `target/console-screenshots/` of the workspace (the test artefacts).
fn screenshots() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"))
        .join("console-screenshots")
}

async fn sign_in(b: &Driver, base: &str, key: &str) {
    b.goto(&format!("{base}/console")).await;
    assert!(
        b.current_url().await.ends_with("/console/login"),
        "a visitor is sent to sign in"
    );
    b.type_into("#key", key).await;
    b.click("form[action='/console/login'] button").await;
}

#[tokio::test]
async fn an_operator_signs_in_retries_a_failed_message_to_delivered_and_reads_a_conversation_and_a_report() {
    let app = console_app().await;
    let seeded = seed(&app).await;
    let b = Driver::start().await;
    let base = app.url.clone();

    // A send-scoped key cannot sign in.
    sign_in(&b, &base, SEND_KEY).await;
    assert!(b.current_url().await.ends_with("/console/login"));
    assert!(
        b.text("[role=alert]").await.contains("send scope"),
        "{}",
        b.text("body").await
    );

    // The admin key can; the overview has its chart.
    sign_in(&b, &base, API_KEY).await;
    b.wait_url(|u| u.ends_with("/console"), "the overview").await;
    assert_eq!(b.count("#hourly-chart svg").await, 1);
    b.screenshot("overview.png").await;

    // The failed message is listed, masked; retry it.
    b.click("nav a[href='/console/failed']").await;
    let row = format!("tr[data-id='{}']", seeded.failed_id);
    let listed = b.text(&row).await;
    assert!(
        listed.contains("+1415***0160") && listed.contains("rate_limited"),
        "{listed}"
    );
    b.screenshot("failed.png").await;
    b.click(&format!("{row} button.retry")).await;
    let page = format!("/console/messages/{}", seeded.failed_id);
    b.wait_url(|u| u.contains(&page), "the retried message's page").await;
    assert!(b.text("[role=status]").await.contains("Retried"));
    // Watch it reach delivered (the simulator's callbacks take real milliseconds).
    let start = Instant::now();
    loop {
        let status = b.text("#message-status").await;
        if status == "delivered" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still {status}: {}",
            b.text("body").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.goto(&b.current_url().await).await;
    }
    b.screenshot("message-delivered.png").await;
    b.goto(&format!("{base}/console/failed")).await;
    assert_eq!(b.count(&row).await, 0, "off the failed list");

    // A conversation, both directions: from the open ones of every lead.
    b.click("nav a[href='/console/conversations']").await;
    b.click(&format!(
        "#conversations a[href='/console/conversations/{}']",
        seeded.conversation_id
    ))
    .await;
    let outbound = b.text("#transcript li.outbound").await;
    let inbound = b.text("#transcript li.inbound").await;
    assert!(outbound.contains("thanks for your roof request"), "{outbound}");
    assert!(inbound.contains("Yes, Thursday morning works"), "{inbound}");
    b.screenshot("conversation.png").await;
    // A person sets the outcome from here.
    b.click("select[name=outcome] option[value=success]").await;
    b.type_into("input[name=reason]", "booked Thursday 9:00 by phone").await;
    b.click("form[action$='/outcome'] button").await;
    assert_eq!(b.text("#outcome").await, "success");
    assert_eq!(b.text("#outcome-reason").await, "booked Thursday 9:00 by phone");
    assert_eq!(b.text("#conversation-status").await, "ended");
    b.goto(&format!("{base}/console/conversations?status=ended")).await;
    assert_eq!(
        b.count(&format!(
            "#conversations a[href='/console/conversations/{}']",
            seeded.conversation_id
        ))
        .await,
        1,
        "listed as ended"
    );

    // The campaign report and its chart.
    b.click("nav a[href='/console/campaigns']").await;
    b.click(&format!("a[href='/console/campaigns/{}']", seeded.campaign_id))
        .await;
    assert_eq!(b.count("#outcomes-chart svg").await, 1);
    assert!(b.text("#enrolments").await.contains("Active"));
    let outcomes = b.text("#outcomes").await;
    assert!(outcomes.contains("success"), "{outcomes}");
    b.screenshot("campaign.png").await;

    b.quit().await;
    drop(b);
    app.stop().await;
}
