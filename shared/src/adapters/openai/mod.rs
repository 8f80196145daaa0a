//! The `openai` agent: any OpenAI-compatible Chat Completions server (`POST {OPENAI_BASE_URL}/chat/completions`,
//! conversation-facts §3), with the standard tool loop and a strict JSON-schema classifier.
//!
//! A thin reqwest client rather than `async-openai` (conversation-facts §3.5): reqwest (rustls,
//! json) is already a dependency; the surface used is one POST, a handful of request fields and
//! `choices[0].message.{content, tool_calls}`; and async-openai's built-in retry layer (3 retries,
//! `Retry-After` uncapped, no HTTP-date or `retry-after-ms`) and its strict enums (`finish_reason`)
//! fit neither a Lambda's deadline nor lenient compatible servers (Ollama, vLLM). Here the retry
//! policy is the official SDK's (408, 409, 429 except `insufficient_quota`, 5xx, timeouts and
//! connection errors; `x-should-retry`; `retry-after-ms` then `Retry-After` seconds or date,
//! capped), inside the caller's deadline, sleeping on the [`Clock`] so tests never really wait.
//! Responses are read leniently (`serde_json::Value`), and the assistant message with its tool
//! calls is sent back unchanged.

pub mod tools;

use crate::domain::{AgentSpec, Direction, Outcome, Turn};
use crate::ports::{Agent, AgentError, AgentReply, AgentRequest, Classification, Clock, Moment, ToolHost};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Model calls in one turn, tool rounds included; the last one allows no more tools.
const MAX_ROUNDS: usize = 4;
/// What the model may write per call.
const MAX_COMPLETION_TOKENS: u32 = 400;

/// How the client retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per model call, the first included.
    pub max_attempts: u32,
    /// The longest server-asked delay honoured (`Retry-After`); longer ones are cut to this.
    pub max_retry_after: Duration,
    /// First backoff when the server names no delay, doubled per try.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_retry_after: Duration::from_secs(10),
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
        }
    }
}

/// Where and how to reach the server.
#[derive(Clone)]
pub struct OpenAiSettings {
    /// `OPENAI_BASE_URL` without a trailing slash (`…/v1`).
    pub base_url: String,
    /// `OPENAI_API_KEY` (local servers may need none).
    pub api_key: Option<SecretString>,
    /// `SMSRELAY_AGENT_MODEL`, used when the campaign names no model.
    pub default_model: Option<String>,
}

/// The Chat Completions agent.
#[derive(Clone)]
pub struct OpenAiAgent {
    settings: OpenAiSettings,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
}

/// One failed try: whether to try again, after how long the server asked, and what happened.
struct Failure {
    retry: bool,
    server_delay: Option<Duration>,
    what: String,
    /// A 2xx whose body is not a completion (the server answered, in the wrong shape).
    bad_output: bool,
}

const HOUSE_RULES: &str = "You are answering by SMS. Reply in plain text, at most 320 characters, \
one message. Use the tools to record decisions: book_appointment only for a slot the lead confirmed, \
escalate_to_human when the lead asks for a person or is upset. Never invent a booking.";

impl OpenAiAgent {
    /// An agent on `http`, sleeping on `clock` between tries.
    pub fn new(settings: OpenAiSettings, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings: OpenAiSettings {
                base_url: settings.base_url.trim_end_matches('/').to_owned(),
                ..settings
            },
            http,
            clock,
            retry: RetryPolicy::default(),
        }
    }

    /// Replace the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn model_and_prompt<'a>(&'a self, spec: &'a AgentSpec) -> Result<(&'a str, &'a str), AgentError> {
        let AgentSpec::Openai { prompt, model } = spec else {
            return Err(AgentError::NotConfigured("openai"));
        };
        let model = model
            .as_deref()
            .or(self.settings.default_model.as_deref())
            .ok_or_else(|| AgentError::Refused("no model: set agent.model or SMSRELAY_AGENT_MODEL".to_owned()))?;
        Ok((model, prompt))
    }

    /// POST one request, retrying what may succeed later, until `deadline`.
    async fn complete(&self, body: &Value, deadline: Moment) -> Result<Value, AgentError> {
        let url = format!("{}/chat/completions", self.settings.base_url);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_since(self.clock.monotonic());
            if remaining.is_zero() {
                return Err(AgentError::DeadlineExceeded);
            }
            let failure = match self.try_once(&url, body, remaining).await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if failure.bad_output {
                return Err(AgentError::BadOutput(failure.what));
            }
            if !failure.retry {
                return Err(AgentError::Refused(failure.what));
            }
            if attempt >= self.retry.max_attempts {
                return Err(AgentError::Unavailable(failure.what));
            }
            let wait = failure
                .server_delay
                .map_or_else(|| self.backoff(attempt), |d| d.min(self.retry.max_retry_after));
            let wake = self.clock.monotonic() + wait;
            if wake >= deadline {
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, what = %failure.what, "model server: no time left for another try");
                return Err(AgentError::DeadlineExceeded);
            }
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, what = %failure.what, "model server: retrying");
            self.clock.sleep_until(wake).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.retry.cap);
        // 75–100 % of the step: spreads concurrent retries, never waits longer than the step.
        exp.mul_f64(0.75 + rand::random::<f64>() * 0.25)
    }

    async fn try_once(&self, url: &str, body: &Value, remaining: Duration) -> Result<Value, Failure> {
        let mut req = self.http.post(url).json(body).timeout(remaining);
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key.expose_secret());
        }
        let resp = req.send().await.map_err(|e| Failure {
            // Timeouts and connection errors may pass; anything else about the request will not.
            retry: e.is_timeout() || e.is_connect() || e.is_request(),
            server_delay: None,
            bad_output: false,
            what: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                "could not reach the server".to_owned()
            },
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|_| Failure {
            retry: true,
            server_delay: None,
            bad_output: false,
            what: format!("HTTP {status}: the body could not be read"),
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|_| Failure {
                retry: false,
                server_delay: None,
                bad_output: true,
                what: format!("HTTP {status}: the body is not JSON"),
            });
        }
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = error["error"]["code"]
            .as_str()
            .or(error["error"]["type"].as_str())
            .unwrap_or("");
        let message: String = error["error"]["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let mut retry = matches!(status, 408 | 409 | 429 | 500..=599) && code != "insufficient_quota";
        match header("x-should-retry") {
            Some("true") => retry = true,
            Some("false") => retry = false,
            _ => {}
        }
        Err(Failure {
            retry,
            bad_output: false,
            server_delay: retry_after(header("retry-after-ms"), header("retry-after"), self.clock.now()),
            what: format!("HTTP {status} {code}: {message}"),
        })
    }
}

/// The delay a server asked for: `retry-after-ms`, else `Retry-After` in seconds or as an HTTP
/// date (openai-python `_parse_retry_after_header`).
fn retry_after(ms: Option<&str>, header: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if let Some(ms) = ms
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let raw = header?;
    if let Some(secs) = raw.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).to_std().unwrap_or_default())
}

/// The turns as Chat Completions messages: the lead is `user`, the business `assistant`.
fn transcript(system: String, turns: &[Turn]) -> Vec<Value> {
    let mut messages = vec![json!({ "role": "system", "content": system })];
    messages.extend(turns.iter().map(|t| {
        let role = match t.direction {
            Direction::Inbound => "user",
            Direction::Outbound => "assistant",
        };
        json!({ "role": role, "content": t.body })
    }));
    messages
}

fn first_message(response: &Value) -> Result<&Value, AgentError> {
    response["choices"]
        .get(0)
        .map(|c| &c["message"])
        .filter(|m| m.is_object())
        .ok_or_else(|| AgentError::BadOutput("no choices[0].message".to_owned()))
}

/// The outcome schema of the classifier (strict structured output, conversation-facts §3.3).
fn outcome_format() -> Value {
    let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "lead_outcome",
            "strict": true,
            "schema": {
                "type": "object",
                "additionalProperties": false,
                "required": ["outcome", "reason"],
                "properties": {
                    "outcome": { "type": "string", "enum": names },
                    "reason": { "type": "string" }
                }
            }
        }
    })
}

#[async_trait]
impl Agent for OpenAiAgent {
    async fn reply(&self, request: AgentRequest<'_>, host: &dyn ToolHost) -> Result<AgentReply, AgentError> {
        let (model, prompt) = self.model_and_prompt(request.spec)?;
        let mut messages = transcript(format!("{prompt}\n\n{HOUSE_RULES}"), request.turns);
        let mut calls = Vec::new();
        for round in 1..=MAX_ROUNDS {
            let body = json!({
                "model": model,
                "messages": messages,
                "tools": tools::definitions(),
                "tool_choice": if round == MAX_ROUNDS { "none" } else { "auto" },
                "parallel_tool_calls": false,
                "max_completion_tokens": MAX_COMPLETION_TOKENS,
            });
            let response = self.complete(&body, request.deadline).await?;
            let message = first_message(&response)?.clone();
            let tool_calls = message["tool_calls"].as_array().cloned().unwrap_or_default();
            if tool_calls.is_empty() || round == MAX_ROUNDS {
                let text = message["content"]
                    .as_str()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                return Ok(AgentReply { text, calls });
            }
            // The assistant message goes back unchanged, then one `tool` message per call.
            messages.push(message);
            for tc in &tool_calls {
                let id = tc["id"].as_str().unwrap_or("").to_owned();
                let name = tc["function"]["name"].as_str().unwrap_or("");
                let arguments = tc["function"]["arguments"].as_str().unwrap_or("");
                let result = match tools::parse_call(name, arguments) {
                    Ok(call) => match host.execute(&call).await {
                        Ok(v) => {
                            calls.push(call);
                            v
                        }
                        Err(e) => json!({ "error": e }),
                    },
                    Err(e) => {
                        tracing::info!(conversation_id = %request.conversation_id, tool = name, "tool call refused: {e}");
                        json!({ "error": e })
                    }
                };
                messages.push(json!({ "role": "tool", "tool_call_id": id, "content": result.to_string() }));
            }
        }
        Ok(AgentReply { text: None, calls })
    }

    async fn classify(&self, request: AgentRequest<'_>) -> Result<Option<Classification>, AgentError> {
        let (model, prompt) = self.model_and_prompt(request.spec)?;
        let lines: Vec<String> = request
            .turns
            .iter()
            .map(|t| match t.direction {
                Direction::Inbound => format!("Lead: {}", t.body),
                Direction::Outbound => format!("Business: {}", t.body),
            })
            .collect();
        let system = format!(
            "Classify how this SMS conversation between a business and a lead ended, now that the lead \
             has been silent. Outcomes: success (an appointment was confirmed), qualified (a good lead \
             to follow up), unqualified (not a fit), escalated (needs a person), no_response (the lead \
             never engaged), discarded (wrong number, spam, opted out). The business's instructions \
             to its agent were:\n{prompt}"
        );
        let body = json!({
            "model": model,
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": lines.join("\n") }
            ],
            "response_format": outcome_format(),
            "max_completion_tokens": MAX_COMPLETION_TOKENS,
        });
        let response = self.complete(&body, request.deadline).await?;
        let message = first_message(&response)?;
        if let Some(refusal) = message["refusal"].as_str() {
            return Err(AgentError::BadOutput(format!("refused: {refusal}")));
        }
        let content = message["content"]
            .as_str()
            .ok_or_else(|| AgentError::BadOutput("no content".to_owned()))?;
        let parsed: Value =
            serde_json::from_str(content).map_err(|_| AgentError::BadOutput("content is not JSON".to_owned()))?;
        let outcome = parsed["outcome"]
            .as_str()
            .and_then(|o| o.parse::<Outcome>().ok())
            .ok_or_else(|| AgentError::BadOutput("`outcome` is not one of the six".to_owned()))?;
        let reason = parsed["reason"]
            .as_str()
            .unwrap_or("")
            .trim()
            .chars()
            .take(500)
            .collect::<String>();
        Ok(Some(Classification {
            outcome,
            reason: if reason.is_empty() {
                "classified by the model".to_owned()
            } else {
                reason
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_milliseconds_then_seconds_then_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T15:00:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        assert_eq!(
            retry_after(Some("250"), Some("3"), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(None, Some("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(None, Some("1.5"), now), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after(None, Some("Tue, 01 Dec 2026 15:00:07 GMT"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(None, Some("Tue, 01 Dec 2026 14:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("soon"), Some("-1"), now), None);
        assert_eq!(retry_after(None, None, now), None);
    }
}
