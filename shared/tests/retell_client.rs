//! The Retell client against a wiremock server speaking Retell's REST shapes (conversation-facts
//! §1.6: `create-sms-chat` → `ChatResponse`, errors `{"status":"error","message":…}`;
//! `v3/list-chats` → `{items, pagination_key, has_more}`): one request per create, failures
//! sorted into rejected / not sent / ambiguous, and an ambiguous create reconciled by metadata.

use secrecy::SecretString;
use serde_json::{json, Value};
use smsrelay::adapters::retell::RetellClient;
use smsrelay::ports::{RetellChats, SmsChat, SmsChatError, SmsChatRequest};
use std::collections::BTreeMap;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer) -> RetellClient {
    RetellClient::new(
        server.uri(),
        SecretString::from("key_test"),
        smsrelay::wiring::plain_http_client(),
    )
}

fn request() -> SmsChatRequest {
    SmsChatRequest {
        from_number: "+14155550100".to_owned(),
        to_number: "+12125550123".to_owned(),
        agent_id: "agent_dispatch_verbatim".to_owned(),
        dynamic_variables: BTreeMap::from([(
            "message_body".to_owned(),
            "Hi Dana, still want an inspection?".to_owned(),
        )]),
        smsrelay_metadata: BTreeMap::from([("message_id".to_owned(), "msg_01".to_owned())]),
    }
}

fn retell_error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"status": "error", "message": message}))
}

async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn create_sms_chat_posts_the_documented_body_once_and_reads_the_chat() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/create-sms-chat"))
        .and(header("authorization", "Bearer key_test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "chat_id": "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6", "agent_id": "agent_dispatch_verbatim",
            "chat_status": "ongoing", "chat_type": "sms_chat", "start_timestamp": 1_703_302_407_333_i64,
            "message_with_tool_calls": [{"message_id": "m1", "role": "agent", "content": "Hi Dana, still want an inspection?"}]
        })))
        .mount(&server)
        .await;

    let chat = client(&server).create_sms_chat(&request()).await.expect("created");

    assert_eq!(
        chat,
        SmsChat {
            chat_id: "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6".to_owned(),
            chat_status: Some("ongoing".to_owned())
        }
    );
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0],
        json!({
            "from_number": "+14155550100", "to_number": "+12125550123",
            "override_agent_id": "agent_dispatch_verbatim",
            "retell_llm_dynamic_variables": {"message_body": "Hi Dana, still want an inspection?"},
            "metadata": {"smsrelay": {"message_id": "msg_01"}}
        })
    );
}

#[tokio::test]
async fn failures_are_sorted_and_none_is_retried() {
    for (status, expect) in [
        (422, "rejected"),
        (402, "rejected"),
        (429, "not_sent"),
        (500, "ambiguous"),
        (503, "ambiguous"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/create-sms-chat"))
            .respond_with(retell_error(status, "Cannot find requested asset under given api key."))
            .mount(&server)
            .await;
        let err = client(&server).create_sms_chat(&request()).await.expect_err("fails");
        let got = match err {
            SmsChatError::Rejected { status: s, .. } if s == status => "rejected",
            SmsChatError::NotSent(_) => "not_sent",
            SmsChatError::Ambiguous(_) => "ambiguous",
            SmsChatError::Rejected { .. } => "wrong status",
        };
        assert_eq!(got, expect, "HTTP {status}");
        assert_eq!(requests(&server).await.len(), 1, "HTTP {status}: exactly one request");
    }
    // A 2xx without a chat id may have sent the SMS.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/create-sms-chat"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>ok</html>"))
        .mount(&server)
        .await;
    assert!(matches!(
        client(&server).create_sms_chat(&request()).await,
        Err(SmsChatError::Ambiguous(_))
    ));
    // Nobody listening: nothing was sent.
    let gone = RetellClient::new(
        "http://127.0.0.1:9",
        SecretString::from("k"),
        smsrelay::wiring::plain_http_client(),
    );
    assert!(matches!(
        gone.create_sms_chat(&request()).await,
        Err(SmsChatError::NotSent(_))
    ));
}

#[tokio::test]
async fn an_ambiguous_create_is_reconciled_by_our_metadata_across_pages() {
    let server = MockServer::start().await;
    let chat = |id: &str, agent: &str, start: i64, message_id: &str| {
        json!({"chat_id": id, "agent_id": agent, "chat_status": "ongoing", "chat_type": "sms_chat",
               "start_timestamp": start, "metadata": {"smsrelay": {"message_id": message_id}}})
    };
    Mock::given(method("POST"))
        .and(path("/v3/list-chats"))
        .and(wiremock::matchers::body_string_contains("page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [chat("chat_mine", "agent_dispatch_verbatim", 2_000, "msg_01"),
                      chat("chat_old", "agent_dispatch_verbatim", 500, "msg_01")],
            "has_more": false
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/list-chats"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [chat("chat_other_agent", "agent_other", 3_000, "msg_01"),
                      chat("chat_other_message", "agent_dispatch_verbatim", 2_500, "msg_02")],
            "pagination_key": "page2", "has_more": true
        })))
        .mount(&server)
        .await;
    let retell = client(&server);

    let found = retell
        .find_sms_chat("agent_dispatch_verbatim", 1_000, "message_id", "msg_01")
        .await
        .expect("listed");
    assert_eq!(found.map(|c| c.chat_id).as_deref(), Some("chat_mine"));
    let sent = requests(&server).await;
    assert_eq!(
        sent[0]["filter_criteria"]["agent_id"],
        json!(["agent_dispatch_verbatim"])
    );
    assert_eq!(sent[1]["pagination_key"], "page2");

    let missing = retell
        .find_sms_chat("agent_dispatch_verbatim", 1_000, "message_id", "msg_99")
        .await
        .expect("listed");
    assert_eq!(missing, None, "not created: safe to send again");
}
