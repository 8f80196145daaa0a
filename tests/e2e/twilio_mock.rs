//! A Twilio-shaped server for tests (wiremock), answering with bodies shaped as Twilio's OpenAPI
//! spec: 201 message resources, error JSON with `code`/`message`/`more_info`/`status`, list pages.

use crate::helpers::TWILIO_SID;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
}

/// A Twilio message resource.
pub fn message_json(sid: &str, to: &str, body: &str, status: &str) -> Value {
    json!({
        "account_sid": TWILIO_SID, "api_version": "2010-04-01", "body": body,
        "date_created": chrono::Utc::now().to_rfc2822(), "date_sent": null, "date_updated": chrono::Utc::now().to_rfc2822(),
        "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+15005550006",
        "messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": null, "price_unit": "USD",
        "sid": sid, "status": status, "subresource_uris": {"media": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}/Media.json")},
        "to": to, "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json")
    })
}

/// Twilio's legacy error body.
pub fn error_json(code: u32, message: &str, status: u16) -> Value {
    json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status})
}

/// A list page holding `messages`.
pub fn page_json(messages: Vec<Value>) -> Value {
    let n = messages.len();
    json!({
        "messages": messages, "end": n.saturating_sub(1), "first_page_uri": messages_path() + "?PageSize=50&Page=0",
        "next_page_uri": null, "page": 0, "page_size": 50, "previous_page_uri": null, "start": 0, "uri": messages_path()
    })
}

/// Mount: creates answer `status`/`body`, at most `times` times (None: always), at `priority` (1 wins).
pub async fn on_create(server: &MockServer, status: u16, body: Value, times: Option<u64>, priority: u8) {
    let mut m = Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(status).set_body_json(body));
    if let Some(n) = times {
        m = m.up_to_n_times(n);
    }
    m.with_priority(priority).mount(server).await;
}

/// Mount: the list endpoint answers with `messages`.
pub async fn on_list(server: &MockServer, messages: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(page_json(messages)))
        .mount(server)
        .await;
}

/// How many create requests the server received.
pub async fn creates(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == messages_path())
        .count()
}
