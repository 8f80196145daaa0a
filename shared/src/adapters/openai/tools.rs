//! The agent's tools as Chat Completions `tools` with strict JSON schemas (every object
//! `additionalProperties: false`, every property `required`, optional ones `["string","null"]`:
//! conversation-facts §3.1), and the validation of the arguments a model sends. The spec warns
//! that `arguments` may not be valid JSON and may hallucinate parameters (§3.2), so every call is
//! parsed strictly here; a bad one becomes an error text for the model, never a panic.

use crate::domain::Outcome;
use crate::ports::ToolCall;
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest `reason` / `notes` accepted.
const MAX_TEXT: usize = 500;
/// Shortest and longest appointment accepted, in minutes.
const DURATION_RANGE: std::ops::RangeInclusive<u32> = 5..=480;

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "strict": true,
            "parameters": {
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": properties,
            }
        }
    })
}

fn reason_only(name: &str, description: &str) -> Value {
    tool(
        name,
        description,
        json!({ "reason": { "type": "string", "description": "Why, in one sentence." } }),
        &["reason"],
    )
}

/// The `tools` array of every agent request.
pub fn definitions() -> Value {
    Value::Array(vec![
        tool(
            "book_appointment",
            "Book an appointment slot the lead confirmed. The result is the recorded booking.",
            json!({
                "start": { "type": "string", "description": "Start time, ISO-8601 / RFC 3339 with the lead's UTC offset, e.g. 2026-10-08T14:00:00-04:00" },
                "duration_minutes": { "type": "integer", "description": "Length in minutes (5 to 480)" },
                "notes": { "type": ["string", "null"], "description": "Anything the lead asked to note, or null" }
            }),
            &["start", "duration_minutes", "notes"],
        ),
        reason_only(
            "escalate_to_human",
            "Hand the conversation to a person: the lead asks for one, is upset, or you cannot help.",
        ),
        reason_only("mark_qualified", "The lead is a good fit and worth following up."),
        reason_only("mark_unqualified", "The lead is not a fit."),
        tool(
            "end_conversation",
            "End the conversation with an outcome when nothing more is needed.",
            json!({
                "outcome": { "type": "string", "enum": ["qualified", "unqualified", "discarded"] },
                "reason": { "type": "string", "description": "Why, in one sentence." }
            }),
            &["outcome", "reason"],
        ),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookArgs {
    start: String,
    duration_minutes: u32,
    notes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonArgs {
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndArgs {
    outcome: String,
    reason: String,
}

fn text(field: &str, raw: String) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if t.chars().count() > MAX_TEXT {
        return Err(format!("`{field}` must be at most {MAX_TEXT} characters"));
    }
    Ok(t.to_owned())
}

fn args<T: for<'de> Deserialize<'de>>(arguments: &str) -> Result<T, String> {
    serde_json::from_str(arguments).map_err(|e| format!("invalid arguments: {e}"))
}

/// Parse and validate one call of `name` with the model's `arguments` (a JSON string).
///
/// # Errors
/// What is wrong, in words the model can act on.
pub fn parse_call(name: &str, arguments: &str) -> Result<ToolCall, String> {
    match name {
        "book_appointment" => {
            let a: BookArgs = args(arguments)?;
            chrono::DateTime::parse_from_rfc3339(a.start.trim())
                .map_err(|_| "`start` must be an RFC 3339 time with an offset, e.g. 2026-10-08T14:00:00-04:00")?;
            if !DURATION_RANGE.contains(&a.duration_minutes) {
                return Err(format!(
                    "`duration_minutes` must be between {} and {}",
                    DURATION_RANGE.start(),
                    DURATION_RANGE.end()
                ));
            }
            let notes = a
                .notes
                .filter(|n| !n.trim().is_empty())
                .map(|n| text("notes", n))
                .transpose()?;
            Ok(ToolCall::BookAppointment {
                start: a.start.trim().to_owned(),
                duration_minutes: a.duration_minutes,
                notes,
            })
        }
        "escalate_to_human" | "mark_qualified" | "mark_unqualified" => {
            let reason = text("reason", args::<ReasonArgs>(arguments)?.reason)?;
            Ok(match name {
                "escalate_to_human" => ToolCall::EscalateToHuman { reason },
                "mark_qualified" => ToolCall::MarkQualified { reason },
                _ => ToolCall::MarkUnqualified { reason },
            })
        }
        "end_conversation" => {
            let a: EndArgs = args(arguments)?;
            let outcome = match a.outcome.as_str() {
                "qualified" => Outcome::Qualified,
                "unqualified" => Outcome::Unqualified,
                "discarded" => Outcome::Discarded,
                _ => return Err("`outcome` must be one of qualified, unqualified, discarded".to_owned()),
            };
            Ok(ToolCall::EndConversation {
                outcome,
                reason: text("reason", a.reason)?,
            })
        }
        other => Err(format!("unknown tool `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_schema_is_strict_with_every_property_required() {
        let tools = definitions();
        let tools = tools.as_array().expect("array");
        assert_eq!(tools.len(), 5);
        for t in tools {
            let f = &t["function"];
            assert_eq!(f["strict"], json!(true));
            let p = &f["parameters"];
            assert_eq!(p["additionalProperties"], json!(false));
            let mut props: Vec<&String> = p["properties"].as_object().expect("props").keys().collect();
            let mut required: Vec<String> = serde_json::from_value(p["required"].clone()).expect("required");
            props.sort();
            required.sort();
            assert_eq!(props, required.iter().collect::<Vec<_>>(), "{}", f["name"]);
        }
    }

    #[test]
    fn arguments_are_validated_and_errors_are_words_for_the_model() {
        let ok = parse_call(
            "book_appointment",
            r#"{"start":"2026-10-08T14:00:00-04:00","duration_minutes":60,"notes":null}"#,
        );
        assert_eq!(
            ok,
            Ok(ToolCall::BookAppointment {
                start: "2026-10-08T14:00:00-04:00".into(),
                duration_minutes: 60,
                notes: None
            })
        );
        for (name, bad) in [
            (
                "book_appointment",
                r#"{"start":"thursday 2pm","duration_minutes":60,"notes":null}"#,
            ),
            (
                "book_appointment",
                r#"{"start":"2026-10-08T14:00:00-04:00","duration_minutes":0,"notes":null}"#,
            ),
            (
                "book_appointment",
                r#"{"start":"2026-10-08T14:00:00-04:00","duration_minutes":60,"notes":null,"x":1}"#,
            ),
            ("book_appointment", r#"{"start":"2026-10-08T14:00:00-04:00""#),
            ("escalate_to_human", r#"{"reason":"  "}"#),
            ("end_conversation", r#"{"outcome":"success","reason":"booked"}"#),
            ("send_bitcoin", "{}"),
        ] {
            assert!(parse_call(name, bad).is_err(), "{name} {bad}");
        }
    }
}
