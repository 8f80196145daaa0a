//! `RetellClient`: [`RetellChats`] over Retell's REST API (`https://api.retellai.com`,
//! `Authorization: Bearer <RETELL_API_KEY>`; protocol-facts §9.1, conversation-facts §1.6).
//!
//! `create-sms-chat` has no idempotency support (the official SDK declares an idempotency header
//! and never sets it, yet retries by default), so this client makes exactly one request per call
//! and sorts the failures: a 4xx other than 408/429 is definitive (nothing sent); a 429 or a
//! connection that never opened sent nothing; a 5xx, a timeout or an unreadable 2xx is
//! ambiguous, and the caller reconciles with `find_sms_chat` (`POST /v3/list-chats`, our
//! `metadata.smsrelay` matched here) before deciding to send again.
//!
//! The list's server-side filter shape is not confirmed in a primary source (the SDK names
//! `filter_criteria`; which keys it honours is UNCONFIRMED), so every item is also checked here:
//! its agent, its start time and our metadata.

use crate::ports::{RetellChats, SmsChat, SmsChatError, SmsChatRequest};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// Pages of `v3/list-chats` read when reconciling.
const FIND_PAGES: usize = 3;
/// Chats per page.
const FIND_PAGE_SIZE: u32 = 50;

/// Retell's REST API.
#[derive(Clone)]
pub struct RetellClient {
    base_url: String,
    api_key: SecretString,
    http: reqwest::Client,
}

impl RetellClient {
    /// A client of `base_url` (`https://api.retellai.com`, tests a local server).
    pub fn new(base_url: impl Into<String>, api_key: SecretString, http: reqwest::Client) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            http,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Option<Value>), SmsChatError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    SmsChatError::NotSent("could not connect".to_owned())
                } else if e.is_timeout() {
                    SmsChatError::Ambiguous("timed out".to_owned())
                } else {
                    SmsChatError::Ambiguous("the request failed after it may have been sent".to_owned())
                }
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).ok()))
    }
}

fn chat_of(v: &Value) -> Option<SmsChat> {
    Some(SmsChat {
        chat_id: v["chat_id"].as_str()?.to_owned(),
        chat_status: v["chat_status"].as_str().map(str::to_owned),
    })
}

fn failure(status: u16, body: Option<&Value>) -> SmsChatError {
    let message: String = body
        .and_then(|b| b["message"].as_str())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    match status {
        429 => SmsChatError::NotSent(format!("HTTP 429: {message}")),
        408 | 500..=599 => SmsChatError::Ambiguous(format!("HTTP {status}: {message}")),
        _ => SmsChatError::Rejected { status, message },
    }
}

#[async_trait]
impl RetellChats for RetellClient {
    async fn create_sms_chat(&self, request: &SmsChatRequest) -> Result<SmsChat, SmsChatError> {
        let body = json!({
            "from_number": request.from_number,
            "to_number": request.to_number,
            "override_agent_id": request.agent_id,
            "retell_llm_dynamic_variables": request.dynamic_variables,
            "metadata": { "smsrelay": request.smsrelay_metadata },
        });
        let (status, answer) = self.post("/create-sms-chat", &body).await?;
        if (200..300).contains(&status) {
            // A 2xx without a chat id: it may well have been sent.
            return answer
                .as_ref()
                .and_then(chat_of)
                .ok_or_else(|| SmsChatError::Ambiguous(format!("HTTP {status} without a chat_id")));
        }
        Err(failure(status, answer.as_ref()))
    }

    async fn find_sms_chat(
        &self,
        agent_id: &str,
        since_ms: i64,
        key: &str,
        value: &str,
    ) -> Result<Option<SmsChat>, SmsChatError> {
        let mut pagination_key: Option<String> = None;
        for _ in 0..FIND_PAGES {
            let mut body = json!({
                "filter_criteria": { "agent_id": [agent_id] },
                "sort_order": "descending",
                "limit": FIND_PAGE_SIZE,
            });
            if let Some(k) = &pagination_key {
                body["pagination_key"] = json!(k);
            }
            let (status, answer) = self.post("/v3/list-chats", &body).await?;
            if !(200..300).contains(&status) {
                return Err(match failure(status, answer.as_ref()) {
                    // Reading changes nothing: any failure is "not known yet".
                    SmsChatError::Rejected { status, message } => {
                        SmsChatError::NotSent(format!("HTTP {status}: {message}"))
                    }
                    other => other,
                });
            }
            let answer = answer.unwrap_or(Value::Null);
            let items = answer["items"].as_array().cloned().unwrap_or_default();
            let mut older = false;
            for item in &items {
                let started = item["start_timestamp"].as_i64().unwrap_or(i64::MAX);
                if started < since_ms {
                    older = true;
                    continue;
                }
                let ours = item["metadata"]["smsrelay"][key].as_str() == Some(value);
                if ours && item["agent_id"].as_str().is_none_or(|a| a == agent_id) {
                    return Ok(chat_of(item));
                }
            }
            match answer["pagination_key"].as_str() {
                Some(next) if !older && answer["has_more"].as_bool() != Some(false) && !items.is_empty() => {
                    pagination_key = Some(next.to_owned());
                }
                _ => break,
            }
        }
        Ok(None)
    }
}
