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

    // ---- properties ----

    use proptest::prelude::*;
    use serde_json::json;

    /// Any JSON value, a few levels deep, with the keys the parser looks for among the random ones.
    fn any_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "event",
                "chat",
                "chat_inbound",
                "sms_inbound",
                "from_number",
                "to_number",
                "agent_id",
                "chat_id",
                "message",
                "metadata",
                "smsrelay",
                "message_with_tool_calls",
                "role",
                "content",
                "chat_analysis",
                "custom_analysis_data",
                "outcome",
                "tool_call_id",
                "successful",
                "name",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop::sample::select(vec![
                "chat_inbound",
                "sms_inbound",
                "chat_started",
                "chat_ended",
                "chat_analyzed",
                "transcript_updated",
                "user",
                "agent",
                "tool_call_invocation",
                "tool_call_result",
                "book_appointment",
            ])
            .prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop::option::of("\\PC{0,16}")
    }

    /// A chat object as Retell sends it, and what the parser must make of it.
    fn any_chat() -> impl Strategy<Value = (Value, RetellChat)> {
        let turn = (
            prop::sample::select(vec![
                "user",
                "agent",
                "tool_call_invocation",
                "tool_call_result",
                "node_transition",
            ]),
            opt_text(),
            prop::option::of(any::<i64>()),
            prop::option::of("\\PC{0,20}"),
            any::<bool>(),
            prop::sample::select(vec!["book_appointment", "lookup"]),
            0u8..3,
        );
        (
            "[a-z0-9_]{1,16}",
            opt_text(),
            prop::option::of(prop::sample::select(vec!["ongoing", "ended", "error"])),
            opt_text(),
            opt_text(),
            opt_text(),
            prop::collection::vec(turn, 0..10),
            opt_text(),
            opt_text(),
        )
            .prop_map(
                |(chat_id, agent_id, status, conversation_id, from, to, turns, outcome, summary)| {
                    let mut raw = Vec::new();
                    let mut want_turns = Vec::new();
                    let mut invoked = Vec::new();
                    for (role, message_id, created, content, ok, tool, call) in turns {
                        let call_id = format!("tc_{call}");
                        let mut t = json!({"role": role, "content": content});
                        if let Some(id) = &message_id {
                            t["message_id"] = json!(id);
                        }
                        if let Some(ms) = created {
                            t["created_timestamp"] = json!(ms);
                        }
                        match (role, &content) {
                            // A text turn without content (null) is not a turn.
                            ("user" | "agent", Some(text)) => want_turns.push(RetellTurn {
                                message_id: message_id.clone(),
                                from_lead: role == "user",
                                content: text.clone(),
                                created_ms: created,
                            }),
                            ("tool_call_invocation", _) => {
                                t["tool_call_id"] = json!(call_id);
                                t["name"] = json!(tool);
                                if tool == "book_appointment" {
                                    invoked.push(call_id);
                                }
                            }
                            ("tool_call_result", _) => {
                                t["tool_call_id"] = json!(call_id);
                                t["successful"] = json!(ok);
                            }
                            _ => {}
                        }
                        raw.push(t);
                    }
                    // A booking needs a successful result of a book_appointment invocation (anywhere in
                    // the list: the parser reads it whole).
                    let booked = raw.iter().any(|t| {
                        t["role"] == "tool_call_result"
                            && t["successful"] == json!(true)
                            && t["tool_call_id"]
                                .as_str()
                                .is_some_and(|id| invoked.iter().any(|i| i == id))
                    });
                    let mut chat = json!({
                        "chat_id": chat_id,
                        "message_with_tool_calls": raw,
                        "metadata": {"smsrelay": {}, "other": {"from_number": "+10000000000"}},
                        "chat_analysis": {"custom_analysis_data": {}},
                        "collected_dynamic_variables": {"x": 1},
                    });
                    if let Some(a) = &agent_id {
                        chat["agent_id"] = json!(a);
                    }
                    if let Some(st) = status {
                        chat["chat_status"] = json!(st);
                    }
                    for (k, v) in [
                        ("conversation_id", &conversation_id),
                        ("from_number", &from),
                        ("to_number", &to),
                    ] {
                        if let Some(v) = v {
                            chat["metadata"]["smsrelay"][k] = json!(v);
                        }
                    }
                    if let Some(o) = &outcome {
                        chat["chat_analysis"]["custom_analysis_data"]["outcome"] = json!(o);
                    }
                    if let Some(sm) = &summary {
                        chat["chat_analysis"]["chat_summary"] = json!(sm);
                    }
                    let want = RetellChat {
                        chat_id,
                        agent_id,
                        chat_status: status.map(str::to_owned),
                        conversation_id,
                        from_number: from,
                        to_number: to,
                        turns: want_turns,
                        booked,
                        analysed_outcome: outcome,
                        summary,
                    };
                    (chat, want)
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
            match RetellEvent::parse(&body) {
                Ok(_) => prop_assert!(serde_json::from_slice::<Value>(&body).is_ok() || body.iter().all(u8::is_ascii_whitespace)),
                Err(RetellWebhookError::InvalidJson) => prop_assert!(serde_json::from_slice::<Value>(&body).is_err()),
                Err(RetellWebhookError::Missing(_)) => prop_assert!(serde_json::from_slice::<Value>(&body).is_ok()),
            }
        }

        #[test]
        fn arbitrary_json_never_panics_and_only_known_objects_are_events(value in any_json()) {
            let bytes = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let result = RetellEvent::parse(&bytes);
            let event = value.get("event").and_then(Value::as_str);
            match (&result, value.is_object()) {
                (Ok(RetellEvent::Ignored { event: None }), false) => {}
                (_, false) => prop_assert!(false, "a non-object gave {:?}", result),
                (Ok(RetellEvent::Ignored { event: e }), true) => {
                    prop_assert_eq!(e.as_deref(), event);
                    prop_assert!(!matches!(event, Some("chat_inbound" | "sms_inbound" | "chat_started" | "chat_ended" | "chat_analyzed" | "transcript_updated")));
                }
                (Ok(RetellEvent::ChatInbound { .. }), true) => prop_assert_eq!(event, Some("chat_inbound")),
                (Ok(RetellEvent::SmsInbound { .. }), true) => prop_assert_eq!(event, Some("sms_inbound")),
                (Ok(RetellEvent::Chat { event: e, .. }), true) => prop_assert_eq!(Some(e.as_str()), event),
                (Err(RetellWebhookError::Missing(_)), true) => prop_assert!(event.is_some()),
                (Err(RetellWebhookError::InvalidJson), true) => prop_assert!(false, "valid JSON refused"),
            }
        }

        #[test]
        fn trailing_or_truncated_json_is_invalid(value in any_json(), cut in any::<usize>()) {
            let bytes = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut doubled = bytes.clone();
            doubled.extend_from_slice(b" {}");
            prop_assert_eq!(RetellEvent::parse(&doubled), Err(RetellWebhookError::InvalidJson));
            let truncated = &bytes[..cut % bytes.len()];
            if serde_json::from_slice::<Value>(truncated).is_err() && !truncated.iter().all(u8::is_ascii_whitespace) {
                prop_assert_eq!(RetellEvent::parse(truncated), Err(RetellWebhookError::InvalidJson));
            }
        }

        #[test]
        fn a_generated_chat_inbound_round_trips_nested_or_at_the_top_level(
            from in "\\PC{0,16}", to in "\\PC{0,16}", agent in opt_text(), chat_id in opt_text(), nested in any::<bool>(),
        ) {
            let mut fields = json!({"from_number": from, "to_number": to, "agent_version": 3});
            if let Some(a) = &agent { fields["agent_id"] = json!(a); }
            if let Some(c) = &chat_id { fields["chat_id"] = json!(c); }
            let body = if nested {
                json!({"event": "chat_inbound", "event_timestamp": 1_780_012_672_105_i64, "chat_inbound": fields})
            } else {
                let mut top = fields;
                top["event"] = json!("chat_inbound");
                top
            };
            let bytes = serde_json::to_vec(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                RetellEvent::parse(&bytes),
                Ok(RetellEvent::ChatInbound { from_number: from, to_number: to, agent_id: agent, chat_id })
            );
        }

        #[test]
        fn a_generated_sms_inbound_round_trips(from in "\\PC{0,16}", to in "\\PC{0,16}", message in opt_text()) {
            let mut fields = json!({"from_number": from, "to_number": to});
            if let Some(m) = &message { fields["message"] = json!(m); }
            let bytes = serde_json::to_vec(&json!({"event": "sms_inbound", "sms_inbound": fields}))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                RetellEvent::parse(&bytes),
                Ok(RetellEvent::SmsInbound { from_number: from, to_number: to, message: message.unwrap_or_default() })
            );
        }

        #[test]
        fn a_generated_chat_event_round_trips_its_fields(
            event in prop::sample::select(vec!["chat_started", "chat_ended", "chat_analyzed", "transcript_updated"]),
            (chat, want) in any_chat(),
            pretty in any::<bool>(),
        ) {
            let body = json!({"event": event, "chat": chat, "event_timestamp": 1});
            let bytes = if pretty { serde_json::to_vec_pretty(&body) } else { serde_json::to_vec(&body) }
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(RetellEvent::parse(&bytes), Ok(RetellEvent::Chat { event: event.to_owned(), chat: want }));
        }
    }
}
