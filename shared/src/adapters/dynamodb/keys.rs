//! The single-table layout: attribute names, and the only code that builds key strings.
//!
//! | item | `pk` | `sk` | `gsi1pk` | `gsi1sk` | other |
//! |---|---|---|---|---|---|
//! | message | `MSG#<message id>` | `META` | `TO#<e164>` | `<message id>` | the `Message` fields, numeric `version` |
//! | provider sid pointer | `PROV#<sid>` | `PROV` | | | `message_id` |
//! | webhook receipt | `HOOK#<dedupe key>` | `HOOK` | | | `expires_at` (TTL, epoch seconds) |
//!
//! Message ids are ULIDs, so `gsi1sk` sorts a recipient's messages by creation time. Provider sids
//! are restricted to `[A-Za-z0-9_-]` by `ProviderSid::parse`, so they cannot forge a separator.
//! Nothing outside this file may format a key; items.rs and store.rs call these functions.

use crate::domain::{MessageId, PhoneNumber, ProviderSid};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Partition key attribute of every item.
pub const PK: &str = "pk";
/// Sort key attribute of every item.
pub const SK: &str = "sk";
/// Partition key of the `gsi1` index (messages only): the recipient.
pub const GSI1PK: &str = "gsi1pk";
/// Sort key of the `gsi1` index (messages only): the message id.
pub const GSI1SK: &str = "gsi1sk";
/// The recipient index: a recipient's messages, ordered by id (so by creation time).
pub const GSI1: &str = "gsi1";
/// Partition key of the `gsi2` index (the due index, declared by template.yaml).
pub const GSI2PK: &str = "gsi2pk";
/// Sort key of the `gsi2` index.
pub const GSI2SK: &str = "gsi2sk";
/// The due index (template.yaml): sparse, only messages with a due time.
pub const GSI2: &str = "gsi2";
/// Partition key of the `gsi3` index (the failed list, declared by template.yaml).
pub const GSI3PK: &str = "gsi3pk";
/// Sort key of the `gsi3` index.
pub const GSI3SK: &str = "gsi3sk";
/// The failed list (template.yaml): sparse, only messages listed for an operator.
pub const GSI3: &str = "gsi3";
/// Optimistic-concurrency version of a message item (a Number), checked by every update.
pub const VERSION: &str = "version";
/// Status of a message item (the snake_case wire name), used by the listing filter.
pub const STATUS: &str = "status";
/// The message a provider sid pointer (or a webhook receipt) names.
pub const MESSAGE_ID: &str = "message_id";
/// TTL attribute (epoch seconds, a Number); the table's TimeToLiveSpecification names it.
pub const EXPIRES_AT: &str = "expires_at";

/// Sort key of a message item.
pub const MESSAGE_SK: &str = "META";
/// Sort key of a provider sid pointer.
pub const PROVIDER_SID_SK: &str = "PROV";
/// Sort key of a webhook receipt.
pub const WEBHOOK_SK: &str = "HOOK";

/// How long a webhook receipt is kept for deduplication (Twilio retries within minutes to hours).
const WEBHOOK_RETENTION_DAYS: i64 = 30;

/// `pk` of a message item.
pub fn message_pk(id: &MessageId) -> String {
    format!("MSG#{id}")
}

/// `gsi1pk` of a recipient's messages.
pub fn recipient_gsi1pk(to: &PhoneNumber) -> String {
    format!("TO#{}", to.as_str())
}

/// `gsi1sk` of a message item: its id, so the index sorts by creation time.
pub fn message_gsi1sk(id: &MessageId) -> String {
    id.as_str().to_owned()
}

/// `pk` of a provider sid pointer.
pub fn provider_sid_pk(sid: &ProviderSid) -> String {
    format!("PROV#{sid}")
}

/// `pk` of a webhook receipt.
pub fn webhook_pk(key: &str) -> String {
    format!("HOOK#{key}")
}

/// `expires_at` of a webhook receipt: 30 days after it arrived, in epoch seconds.
pub fn webhook_expires_at(received_at: DateTime<Utc>) -> i64 {
    received_at
        .timestamp()
        .saturating_add(WEBHOOK_RETENTION_DAYS * 24 * 60 * 60)
}

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

/// The primary key of a message item, for GetItem.
pub fn message_key(id: &MessageId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(message_pk(id))),
        (SK.to_owned(), s(MESSAGE_SK.to_owned())),
    ])
}

/// The four key attributes a message item carries (table key and `gsi1` key).
pub fn message_index_key(id: &MessageId, to: &PhoneNumber) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(message_pk(id))),
        (SK.to_owned(), s(MESSAGE_SK.to_owned())),
        (GSI1PK.to_owned(), s(recipient_gsi1pk(to))),
        (GSI1SK.to_owned(), s(message_gsi1sk(id))),
    ])
}

/// The primary key of a provider sid pointer.
pub fn provider_sid_key(sid: &ProviderSid) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(provider_sid_pk(sid))),
        (SK.to_owned(), s(PROVIDER_SID_SK.to_owned())),
    ])
}

/// The listing cursor: the `gsi1` `LastEvaluatedKey` equivalent of the last message returned.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct CursorKey {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
}

/// Encode the cursor that resumes a `gsi1` listing of `to` after message `last`:
/// base64url (no padding) of the JSON of its four key attributes.
///
/// # Errors
/// `Unexpected` if the JSON cannot be written (it always can for strings).
pub fn encode_cursor(to: &PhoneNumber, last: &MessageId) -> Result<String, StoreError> {
    let key = CursorKey {
        pk: message_pk(last),
        sk: MESSAGE_SK.to_owned(),
        gsi1pk: recipient_gsi1pk(to),
        gsi1sk: message_gsi1sk(last),
    };
    let json = serde_json::to_vec(&key)
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode listing cursor")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Read a cursor for a listing of `to` back into the `ExclusiveStartKey` it stands for.
///
/// The key is rebuilt from the parsed id rather than echoed, so a cursor can only ever resume
/// this recipient's listing.
///
/// # Errors
/// `Corrupt` if it is not base64url JSON of a message key of this recipient.
pub fn decode_cursor(cursor: &str, to: &PhoneNumber) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let unreadable = || StoreError::Corrupt("listing cursor is not readable".to_owned());
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| unreadable())?;
    let key: CursorKey = serde_json::from_slice(&json).map_err(|_| unreadable())?;
    let id = MessageId::parse(&key.gsi1sk).map_err(|_| unreadable())?;
    let expected = CursorKey {
        pk: message_pk(&id),
        sk: MESSAGE_SK.to_owned(),
        gsi1pk: recipient_gsi1pk(to),
        gsi1sk: message_gsi1sk(&id),
    };
    if key != expected {
        return Err(StoreError::Corrupt(
            "listing cursor belongs to another listing".to_owned(),
        ));
    }
    Ok(message_index_key(&id, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> MessageId {
        MessageId::parse("msg_01ARZ3NDEKTSV4RRFFQ69G5FAV").expect("id")
    }

    fn to() -> PhoneNumber {
        PhoneNumber::parse_e164("+14155550100").expect("number")
    }

    #[test]
    fn keys_have_the_documented_shapes() {
        assert_eq!(message_pk(&id()), "MSG#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(recipient_gsi1pk(&to()), "TO#+14155550100");
        assert_eq!(message_gsi1sk(&id()), "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let sid = ProviderSid::parse("SM1342fe1b2c904d1ab04f0fc7a58abca9").expect("sid");
        assert_eq!(provider_sid_pk(&sid), "PROV#SM1342fe1b2c904d1ab04f0fc7a58abca9");
        assert_eq!(webhook_pk("SM1:delivered"), "HOOK#SM1:delivered");
    }

    #[test]
    fn webhook_receipts_expire_thirty_days_after_arrival() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        assert_eq!(webhook_expires_at(at), 1_767_225_600 + 30 * 86_400);
    }

    #[test]
    fn a_cursor_round_trips_to_the_index_key_of_the_last_message() {
        let cursor = encode_cursor(&to(), &id()).expect("cursor");
        assert!(!cursor.contains('='));
        assert_eq!(
            decode_cursor(&cursor, &to()).expect("decode"),
            message_index_key(&id(), &to())
        );
    }

    #[test]
    fn a_cursor_of_another_recipient_is_corrupt() {
        let other = PhoneNumber::parse_e164("+14155550199").expect("number");
        let cursor = encode_cursor(&other, &id()).expect("cursor");
        assert!(matches!(decode_cursor(&cursor, &to()), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn garbage_cursors_are_corrupt() {
        for raw in [
            "",
            "!!!",
            "bm90IGpzb24",
            &URL_SAFE_NO_PAD.encode(br#"{"pk":"MSG#x","sk":"META","gsi1pk":"TO#+1","gsi1sk":"x"}"#),
        ] {
            assert!(
                matches!(decode_cursor(raw, &to()), Err(StoreError::Corrupt(_))),
                "{raw}"
            );
        }
    }
}
