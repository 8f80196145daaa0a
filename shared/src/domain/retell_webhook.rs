//! Retell's webhook bodies (conversation-facts §1) as values, told apart by `event`:
//! - `chat_inbound` (inbound-SMS webhook of a number): only the numbers, nested under
//!   `chat_inbound` or, in some integrations, at the top level — both are read;
//! - `chat_started` / `chat_ended` / `chat_analyzed` (chat events): the chat object under `chat`,
//!   its turns in `message_with_tool_calls`, our ids in `metadata.smsrelay`;
//! - the older `sms_inbound` shape, which carries the text (`sms_inbound.message`);
//! - empty pings (`""`, `{}`, `[]`) and unknown events, which change nothing.
//!
//! Parsing is lenient about fields Retell adds and strict about JSON itself: a body that is not
//! JSON is an error (400), never a panic. Pure: no I/O (the signature is checked by the adapter).

use serde::Deserialize;
use serde_json::Value;

/// One Retell webhook, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum RetellEvent {
    /// A text arrived on a Retell number (no text in it): answer with the agent to use.
    ChatInbound {
        /// The texter.
        from_number: String,
        /// Our Retell number.
        to_number: String,
        /// Retell's agent for the number, if it says.
        agent_id: Option<String>,
        /// Retell's pre-allocated chat id, when sent (stable across retries).
        chat_id: Option<String>,
    },
    /// A chat event with the chat's turns so far.
    Chat {
        /// `chat_started`, `chat_ended` or `chat_analyzed`.
        event: String,
        /// The chat.
        chat: RetellChat,
    },
    /// The older inbound shape that carries the text.
    SmsInbound {
        /// The texter.
        from_number: String,
        /// Our Retell number.
        to_number: String,
        /// The text.
        message: String,
    },
    /// An empty ping or an event we do not use: answered 200, nothing changes.
    Ignored {
        /// The event name, if there was one.
        event: Option<String>,
    },
}

/// The part of Retell's chat object the product uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetellChat {
    /// Retell's chat id.
    pub chat_id: String,
    /// The agent that ran it.
    pub agent_id: Option<String>,
    /// `ongoing`, `ended`, `error`.
    pub chat_status: Option<String>,
    /// Our conversation id, from `metadata.smsrelay.conversation_id` (set when we answered
    /// `chat_inbound` or created the chat).
    pub conversation_id: Option<String>,
    /// The lead's number, from `metadata.smsrelay.from_number` (chat objects carry no numbers).
    pub from_number: Option<String>,
    /// Our number, from `metadata.smsrelay.to_number`.
    pub to_number: Option<String>,
    /// The user/agent text turns, in order.
    pub turns: Vec<RetellTurn>,
    /// Whether a `book_appointment` tool call returned successfully.
    pub booked: bool,
    /// `chat_analysis.custom_analysis_data.outcome`, when present.
    pub analysed_outcome: Option<String>,
    /// `chat_analysis.chat_summary`, when present.
    pub summary: Option<String>,
}

/// One text turn of a Retell chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetellTurn {
    /// Retell's message id (turns are deduplicated on it); `None` when Retell sent none.
    pub message_id: Option<String>,
    /// `true` for the lead (`user`), `false` for the agent.
    pub from_lead: bool,
    /// The text.
    pub content: String,
    /// When (ms since the epoch), if given.
    pub created_ms: Option<i64>,
}

/// The body is not JSON, or a known event lacks what it must carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetellWebhookError {
    /// Not JSON (or trailing data after it).
    #[error("request body is not valid JSON")]
    InvalidJson,
    /// A known event without a required field.
    #[error("`{0}` is missing")]
    Missing(&'static str),
}

#[derive(Deserialize)]
struct RawTurn {
    role: Option<String>,
    content: Option<String>,
    message_id: Option<String>,
    created_timestamp: Option<i64>,
    name: Option<String>,
    tool_call_id: Option<String>,
    successful: Option<bool>,
}

impl RetellEvent {
    /// Parse a webhook body (the raw bytes that were signed).
    ///
    /// # Errors
    /// [`RetellWebhookError`] for a body that is not JSON or a known event missing its fields.
    pub fn parse(body: &[u8]) -> Result<Self, RetellWebhookError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::Ignored { event: None });
        }
        let value: Value = serde_json::from_slice(body).map_err(|_| RetellWebhookError::InvalidJson)?;
        let Some(obj) = value.as_object() else {
            // `[]` and other non-objects are the dashboard's pings.
            return Ok(Self::Ignored { event: None });
        };
        let event = obj.get("event").and_then(Value::as_str).map(str::to_owned);
        let text = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_owned);
        match event.as_deref() {
            Some("chat_inbound") => {
                // Nested first (Retell's documented envelope), then the top level.
                let nested = obj.get("chat_inbound");
                let field = |k: &str| text(nested, k).or_else(|| text(Some(&value), k));
                Ok(Self::ChatInbound {
                    from_number: field("from_number").ok_or(RetellWebhookError::Missing("from_number"))?,
                    to_number: field("to_number").ok_or(RetellWebhookError::Missing("to_number"))?,
                    agent_id: field("agent_id"),
                    chat_id: field("chat_id"),
                })
            }
            Some("sms_inbound") => {
                let nested = obj.get("sms_inbound");
                let field = |k: &str| text(nested, k).or_else(|| text(Some(&value), k));
                Ok(Self::SmsInbound {
                    from_number: field("from_number").ok_or(RetellWebhookError::Missing("from_number"))?,
                    to_number: field("to_number").ok_or(RetellWebhookError::Missing("to_number"))?,
                    message: field("message").unwrap_or_default(),
                })
            }
            Some(name @ ("chat_started" | "chat_ended" | "chat_analyzed" | "transcript_updated")) => {
                let chat = obj.get("chat").ok_or(RetellWebhookError::Missing("chat"))?;
                Ok(Self::Chat {
                    event: name.to_owned(),
                    chat: parse_chat(chat)?,
                })
            }
            _ => Ok(Self::Ignored { event }),
        }
    }
}

fn parse_chat(chat: &Value) -> Result<RetellChat, RetellWebhookError> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let ours = chat
        .get("metadata")
        .and_then(|m| m.get("smsrelay"))
        .unwrap_or(&Value::Null);
    let raw: Vec<RawTurn> = chat
        .get("message_with_tool_calls")
        .and_then(Value::as_array)
        .map(|turns| turns.iter().filter_map(|t| RawTurn::deserialize(t).ok()).collect())
        .unwrap_or_default();
    // A booking counts only when its tool result says it succeeded (never inferred from text).
    let booking_calls: Vec<&str> = raw
        .iter()
        .filter(|t| t.role.as_deref() == Some("tool_call_invocation") && t.name.as_deref() == Some("book_appointment"))
        .filter_map(|t| t.tool_call_id.as_deref())
        .collect();
    let booked = raw.iter().any(|t| {
        t.role.as_deref() == Some("tool_call_result")
            && t.successful == Some(true)
            && t.tool_call_id.as_deref().is_some_and(|id| booking_calls.contains(&id))
    });
    let turns = raw
        .iter()
        .filter_map(|t| {
            let from_lead = match t.role.as_deref() {
                Some("user") => true,
                Some("agent") => false,
                _ => return None,
            };
            Some(RetellTurn {
                message_id: t.message_id.clone(),
                from_lead,
                content: t.content.clone()?,
                created_ms: t.created_timestamp,
            })
        })
        .collect();
    let analysis = chat.get("chat_analysis").unwrap_or(&Value::Null);
    Ok(RetellChat {
        chat_id: s(chat, "chat_id").ok_or(RetellWebhookError::Missing("chat.chat_id"))?,
        agent_id: s(chat, "agent_id"),
        chat_status: s(chat, "chat_status"),
        conversation_id: s(ours, "conversation_id"),
        from_number: s(ours, "from_number"),
        to_number: s(ours, "to_number"),
        turns,
        booked,
        analysed_outcome: analysis
            .get("custom_analysis_data")
            .and_then(|d| d.get("outcome"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        summary: s(analysis, "chat_summary"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_inbound_is_read_nested_and_at_the_top_level() {
        let nested = br#"{"event":"chat_inbound","event_timestamp":1780012672105,"chat_inbound":{"chat_id":"chat_8f2","agent_id":"agent_12345","agent_version":1,"from_number":"+12125550123","to_number":"+14155550100"}}"#;
        let top = br#"{"event":"chat_inbound","from_number":"+12125550123","to_number":"+14155550100"}"#;
        for (body, chat_id, agent) in [
            (&nested[..], Some("chat_8f2"), Some("agent_12345")),
            (&top[..], None, None),
        ] {
            assert_eq!(
                RetellEvent::parse(body),
                Ok(RetellEvent::ChatInbound {
                    from_number: "+12125550123".to_owned(),
                    to_number: "+14155550100".to_owned(),
                    agent_id: agent.map(str::to_owned),
                    chat_id: chat_id.map(str::to_owned),
                })
            );
        }
    }

    #[test]
    fn chat_events_carry_text_turns_metadata_booking_and_analysis() {
        let body = br#"{"event":"chat_analyzed","chat":{"chat_id":"chat_98c","agent_id":"agent_r","chat_status":"ended",
          "message_with_tool_calls":[
            {"message_id":"msg_01","role":"user","content":"Is Thursday open?","created_timestamp":1780012672400},
            {"message_id":"msg_02","role":"agent","content":"10am or 2pm?","created_timestamp":1780012674100},
            {"message_id":"msg_04","role":"tool_call_invocation","tool_call_id":"tc_7f1","name":"book_appointment","arguments":"{}"},
            {"message_id":"msg_05","role":"tool_call_result","tool_call_id":"tc_7f1","content":"{}","successful":true},
            {"role":"node_transition","former_node_id":"a","new_node_id":"b"}],
          "metadata":{"smsrelay":{"conversation_id":"conv_01J","from_number":"+12125550123","to_number":"+14155550100"}},
          "chat_analysis":{"chat_summary":"Booked.","custom_analysis_data":{"outcome":"success"}}}}"#;
        let Ok(RetellEvent::Chat { event, chat }) = RetellEvent::parse(body) else {
            panic!("not a chat event");
        };
        assert_eq!(event, "chat_analyzed");
        assert_eq!(chat.conversation_id.as_deref(), Some("conv_01J"));
        assert_eq!(chat.turns.len(), 2);
        assert!(chat.turns[0].from_lead && !chat.turns[1].from_lead);
        assert_eq!(chat.turns[1].message_id.as_deref(), Some("msg_02"));
        assert!(chat.booked);
        assert_eq!(chat.analysed_outcome.as_deref(), Some("success"));
        assert_eq!(chat.summary.as_deref(), Some("Booked."));
    }

    #[test]
    fn a_failed_or_other_tool_result_is_not_a_booking() {
        let body = br#"{"event":"chat_ended","chat":{"chat_id":"c","message_with_tool_calls":[
            {"role":"tool_call_invocation","tool_call_id":"t1","name":"book_appointment"},
            {"role":"tool_call_result","tool_call_id":"t1","successful":false},
            {"role":"tool_call_invocation","tool_call_id":"t2","name":"lookup"},
            {"role":"tool_call_result","tool_call_id":"t2","successful":true}]}}"#;
        let Ok(RetellEvent::Chat { chat, .. }) = RetellEvent::parse(body) else {
            panic!("not a chat event");
        };
        assert!(!chat.booked);
    }

    #[test]
    fn the_older_sms_inbound_shape_carries_the_text() {
        let body = br#"{"event":"sms_inbound","sms_inbound":{"from_number":"+12125550123","to_number":"+14155550100","message":"yes","agent_id":"a"}}"#;
        assert_eq!(
            RetellEvent::parse(body),
            Ok(RetellEvent::SmsInbound {
                from_number: "+12125550123".to_owned(),
                to_number: "+14155550100".to_owned(),
                message: "yes".to_owned(),
            })
        );
    }

    #[test]
    fn pings_and_unknown_events_are_ignored_and_garbage_is_an_error() {
        for ping in [&b""[..], b"  ", b"{}", b"[]"] {
            assert_eq!(RetellEvent::parse(ping), Ok(RetellEvent::Ignored { event: None }));
        }
        assert_eq!(
            RetellEvent::parse(br#"{"event":"call_ended","call":{}}"#),
            Ok(RetellEvent::Ignored {
                event: Some("call_ended".to_owned())
            })
        );
        assert_eq!(RetellEvent::parse(b"{nope"), Err(RetellWebhookError::InvalidJson));
        assert_eq!(RetellEvent::parse(b"{} {}"), Err(RetellWebhookError::InvalidJson));
        assert_eq!(
            RetellEvent::parse(br#"{"event":"chat_inbound","chat_inbound":{"to_number":"+1"}}"#),
            Err(RetellWebhookError::Missing("from_number"))
        );
        assert_eq!(
            RetellEvent::parse(br#"{"event":"chat_ended"}"#),
            Err(RetellWebhookError::Missing("chat"))
        );
    }
}
