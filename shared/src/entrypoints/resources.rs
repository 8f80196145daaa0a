//! JSON shapes of the API's resources (docs/api.md), built from domain records.

/// RFC 3339 UTC with millisecond precision and a `Z` (kept here for callers of this path).
pub use crate::domain::timestamp;
use crate::domain::Message;
use serde_json::{json, Value};

/// The message resource of docs/api.md.
pub fn message_resource(m: &Message) -> Value {
    json!({
        "id": m.id.as_str(),
        "to": m.to.as_str(),
        "from": m.from,
        "body": m.body.as_str(),
        "status": m.status.as_str(),
        "provider_status": m.provider_status,
        "segments": m.segments,
        "encoding": m.encoding,
        "provider_sid": m.provider_sid.as_ref().map(|s| s.as_str()),
        "attempts": m.attempts,
        "error": m.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
        "send_at": m.send_at.as_ref().map(timestamp),
        "ref": m.reference,
        "metadata": m.metadata,
        "created_at": timestamp(&m.created_at),
        "updated_at": timestamp(&m.updated_at),
        "events": m.events.iter().map(|e| {
            let mut v = json!({"status": e.status.as_str(), "at": timestamp(&e.at)});
            if let (Some(code), Some(obj)) = (e.code, v.as_object_mut()) {
                obj.insert("code".to_owned(), json!(code));
            }
            v
        }).collect::<Vec<_>>(),
    })
}
