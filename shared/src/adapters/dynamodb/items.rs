//! The DynamoDB item shapes, and the mapping between items and domain values.
//!
//! Writes go through `serde_dynamo::to_item` of a domain value or a private `*Item` struct, plus
//! the key attributes from `keys`. Reads go through `from_item` into private `*Item` structs and
//! `TryFrom`, so an item that does not map back becomes `StoreError::Corrupt`, never a panic.
//! The serde field names of the `*Item` structs are the attribute constants of `keys`
//! (a unit test below holds them together).

use super::keys;
use crate::domain::{Message, MessageId, ProviderSid, Ref};
use crate::ports::{StoreError, WebhookRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;

/// An item as the SDK carries it.
pub type Item = HashMap<String, AttributeValue>;

pub(super) fn encode_failed(what: &'static str) -> impl FnOnce(serde_dynamo::Error) -> StoreError {
    move |e| StoreError::Unexpected(anyhow::Error::new(e).context(what))
}

/// The item of a message: every `Message` field as a top-level attribute (so `version` is a
/// Number and `status` a String the listing can filter on), plus the table and `gsi1` keys, the
/// `gsi2` keys while it has a `due_at` and the `gsi3` keys while it is `failed_listed`
/// ([`keys::message_item_keys`]).
///
/// # Errors
/// `Unexpected` if the message cannot be serialized.
pub fn message_item(message: &Message) -> Result<Item, StoreError> {
    let mut item: Item = to_item(message).map_err(encode_failed("encode message item"))?;
    item.extend(keys::message_item_keys(message));
    Ok(item)
}

/// A message item as read back: the table key, and the message it holds.
#[derive(Deserialize)]
struct MessageKeysItem {
    pk: String,
    sk: String,
}

/// A message read from an item whose key matches its id.
#[derive(Debug)]
pub struct MessageItem(Message);

impl MessageItem {
    /// The message.
    pub fn into_message(self) -> Message {
        self.0
    }
}

impl TryFrom<Item> for MessageItem {
    type Error = StoreError;

    fn try_from(item: Item) -> Result<Self, Self::Error> {
        let key_attrs: Item = [keys::PK, keys::SK]
            .iter()
            .filter_map(|name| item.get(*name).map(|v| ((*name).to_owned(), v.clone())))
            .collect();
        let key: MessageKeysItem =
            from_item(key_attrs).map_err(|e| StoreError::Corrupt(format!("message item without its key: {e}")))?;
        let message: Message =
            from_item(item).map_err(|e| StoreError::Corrupt(format!("message item {}: {e}", key.pk)))?;
        if key.pk != keys::message_pk(&message.id) || key.sk != keys::MESSAGE_SK {
            return Err(StoreError::Corrupt(format!(
                "message item {} holds message {}",
                key.pk, message.id
            )));
        }
        Ok(Self(message))
    }
}

/// A provider sid pointer: `PROV#<sid>` → `message_id`.
#[derive(Serialize, Deserialize)]
struct ProviderSidItem {
    pk: String,
    sk: String,
    message_id: String,
}

/// The item pointing `sid` at message `id`.
///
/// # Errors
/// `Unexpected` if it cannot be serialized.
pub fn provider_sid_item(sid: &ProviderSid, id: &MessageId) -> Result<Item, StoreError> {
    to_item(ProviderSidItem {
        pk: keys::provider_sid_pk(sid),
        sk: keys::PROVIDER_SID_SK.to_owned(),
        message_id: id.as_str().to_owned(),
    })
    .map_err(encode_failed("encode provider sid item"))
}

/// The message a provider sid pointer names.
#[derive(Debug)]
pub struct ProviderSidTarget(MessageId);

impl ProviderSidTarget {
    /// The message id.
    pub fn into_message_id(self) -> MessageId {
        self.0
    }
}

impl TryFrom<Item> for ProviderSidTarget {
    type Error = StoreError;

    fn try_from(item: Item) -> Result<Self, Self::Error> {
        let item: ProviderSidItem =
            from_item(item).map_err(|e| StoreError::Corrupt(format!("provider sid item: {e}")))?;
        let id = MessageId::parse(&item.message_id)
            .map_err(|e| StoreError::Corrupt(format!("provider sid item {}: {e}", item.pk)))?;
        Ok(Self(id))
    }
}

/// A ref pointer: `REF#<type length>#<type>#<id>` / `<message id>`.
#[derive(Serialize, Deserialize)]
struct RefPointerItem {
    pk: String,
    sk: String,
}

/// The item pointing the caller's entity `reference` at message `id`.
///
/// # Errors
/// `Unexpected` if it cannot be serialized.
pub fn ref_pointer_item(reference: &Ref, id: &MessageId) -> Result<Item, StoreError> {
    to_item(RefPointerItem {
        pk: keys::ref_pk(reference),
        sk: keys::ref_pointer_sk(id),
    })
    .map_err(encode_failed("encode ref pointer item"))
}

/// The message a ref pointer names.
#[derive(Debug)]
pub struct RefPointerTarget(MessageId);

impl RefPointerTarget {
    /// The message id.
    pub fn into_message_id(self) -> MessageId {
        self.0
    }
}

impl TryFrom<Item> for RefPointerTarget {
    type Error = StoreError;

    fn try_from(item: Item) -> Result<Self, Self::Error> {
        let item: RefPointerItem =
            from_item(item).map_err(|e| StoreError::Corrupt(format!("ref pointer item: {e}")))?;
        let id = MessageId::parse(&item.sk)
            .map_err(|e| StoreError::Corrupt(format!("ref pointer item {}: {e}", item.pk)))?;
        Ok(Self(id))
    }
}

/// A webhook receipt, kept for deduplication until `expires_at`.
#[derive(Serialize)]
struct WebhookItem {
    pk: String,
    sk: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    received_at: DateTime<Utc>,
    expires_at: i64,
}

/// The receipt item of a webhook, expiring 30 days after it arrived.
///
/// # Errors
/// `Unexpected` if it cannot be serialized.
pub fn webhook_item(record: &WebhookRecord) -> Result<Item, StoreError> {
    to_item(WebhookItem {
        pk: keys::webhook_pk(&record.key),
        sk: keys::WEBHOOK_SK.to_owned(),
        kind: record.kind.clone(),
        message_id: record.message_id.as_ref().map(|id| id.as_str().to_owned()),
        provider_sid: record.provider_sid.as_ref().map(|sid| sid.as_str().to_owned()),
        status: record.status.clone(),
        received_at: record.received_at,
        expires_at: keys::webhook_expires_at(record.received_at),
    })
    .map_err(encode_failed("encode webhook item"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MessageBody, MessageStatus, PhoneNumber};

    fn message() -> Message {
        let at = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        let mut metadata = serde_json::Map::new();
        metadata.insert("n".to_owned(), serde_json::json!(2));
        metadata.insert(
            "nested".to_owned(),
            serde_json::json!({"ok": true, "list": [1.5, "x", null]}),
        );
        Message::new(
            MessageId::generate(at),
            PhoneNumber::parse_e164("+14155550100").expect("number"),
            "+14155550111".to_owned(),
            MessageBody::parse("héllo").expect("body"),
            MessageStatus::Sending,
            None,
            metadata,
            at,
        )
    }

    #[test]
    fn a_message_item_carries_the_keys_and_a_numeric_version_and_reads_back() {
        let m = message();
        let item = message_item(&m).expect("item");
        assert_eq!(item.get(keys::PK), Some(&AttributeValue::S(keys::message_pk(&m.id))));
        assert_eq!(
            item.get(keys::SK),
            Some(&AttributeValue::S(keys::MESSAGE_SK.to_owned()))
        );
        assert_eq!(
            item.get(keys::GSI1PK),
            Some(&AttributeValue::S(keys::recipient_gsi1pk(&m.to)))
        );
        assert_eq!(
            item.get(keys::GSI1SK),
            Some(&AttributeValue::S(keys::message_gsi1sk(&m.id)))
        );
        assert_eq!(item.get(keys::VERSION), Some(&AttributeValue::N("0".to_owned())));
        assert_eq!(
            item.get(keys::STATUS),
            Some(&AttributeValue::S(MessageStatus::Sending.as_str().to_owned()))
        );
        let back = MessageItem::try_from(item).expect("read back").into_message();
        assert_eq!(back, m);
    }

    #[test]
    fn a_message_item_has_due_and_failed_index_keys_only_while_they_apply() {
        let m = message();
        let item = message_item(&m).expect("item");
        for name in [keys::GSI2PK, keys::GSI2SK, keys::GSI3PK, keys::GSI3SK] {
            assert!(
                !item.contains_key(name),
                "{name} on a message that is neither due nor failed"
            );
        }

        let mut listed = m.clone();
        listed.due_at = Some(m.created_at + chrono::Duration::minutes(5));
        listed.failed_listed = true;
        let item = message_item(&listed).expect("item");
        assert_eq!(
            item.get(keys::GSI2PK),
            Some(&AttributeValue::S(keys::due_gsi2pk(keys::due_shard(&m.id))))
        );
        assert_eq!(
            item.get(keys::GSI2SK),
            Some(&AttributeValue::S(keys::due_gsi2sk(
                &(m.created_at + chrono::Duration::minutes(5)),
                &m.id
            )))
        );
        assert_eq!(
            item.get(keys::GSI3PK),
            Some(&AttributeValue::S(keys::FAILED_GSI3PK.to_owned()))
        );
        assert_eq!(
            item.get(keys::GSI3SK),
            Some(&AttributeValue::S(keys::failed_gsi3sk(&m.updated_at, &m.id)))
        );
        assert_eq!(MessageItem::try_from(item).expect("read back").into_message(), listed);
    }

    #[test]
    fn a_message_item_with_a_bad_field_is_corrupt() {
        let mut item = message_item(&message()).expect("item");
        item.insert("to".to_owned(), AttributeValue::S("not a number".to_owned()));
        assert!(matches!(MessageItem::try_from(item), Err(StoreError::Corrupt(_))));

        let mut item = message_item(&message()).expect("item");
        item.insert(keys::VERSION.to_owned(), AttributeValue::S("seven".to_owned()));
        assert!(matches!(MessageItem::try_from(item), Err(StoreError::Corrupt(_))));

        let mut item = message_item(&message()).expect("item");
        item.remove(keys::PK);
        assert!(matches!(MessageItem::try_from(item), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_message_item_under_another_key_is_corrupt() {
        let mut item = message_item(&message()).expect("item");
        item.insert(
            keys::PK.to_owned(),
            AttributeValue::S("MSG#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()),
        );
        assert!(matches!(MessageItem::try_from(item), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_provider_sid_item_reads_back_and_rejects_a_bad_id() {
        let sid = ProviderSid::parse("SM1342fe1b2c904d1ab04f0fc7a58abca9").expect("sid");
        let id = message().id;
        let item = provider_sid_item(&sid, &id).expect("item");
        assert_eq!(
            item.get(keys::PK),
            Some(&AttributeValue::S(keys::provider_sid_pk(&sid)))
        );
        assert_eq!(
            item.get(keys::SK),
            Some(&AttributeValue::S(keys::PROVIDER_SID_SK.to_owned()))
        );
        assert_eq!(
            ProviderSidTarget::try_from(item.clone())
                .expect("target")
                .into_message_id(),
            id
        );

        let mut bad = item;
        bad.insert(keys::MESSAGE_ID.to_owned(), AttributeValue::S("nope".to_owned()));
        assert!(matches!(ProviderSidTarget::try_from(bad), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_ref_pointer_item_reads_back_and_rejects_a_bad_id() {
        let reference = Ref {
            kind: "calendar_event".to_owned(),
            id: "evt_1".to_owned(),
        };
        let id = message().id;
        let item = ref_pointer_item(&reference, &id).expect("item");
        assert_eq!(item.get(keys::PK), Some(&AttributeValue::S(keys::ref_pk(&reference))));
        assert_eq!(item.get(keys::SK), Some(&AttributeValue::S(id.as_str().to_owned())));
        assert_eq!(
            RefPointerTarget::try_from(item.clone())
                .expect("target")
                .into_message_id(),
            id
        );
        let mut bad = item;
        bad.insert(keys::SK.to_owned(), AttributeValue::S("nope".to_owned()));
        assert!(matches!(RefPointerTarget::try_from(bad), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_webhook_item_uses_the_attribute_constants_and_a_numeric_ttl() {
        let received_at = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        let record = WebhookRecord {
            key: "SM1:delivered".to_owned(),
            kind: "twilio_status".to_owned(),
            message_id: Some(message().id),
            provider_sid: None,
            status: Some("delivered".to_owned()),
            received_at,
        };
        let item = webhook_item(&record).expect("item");
        assert_eq!(
            item.get(keys::PK),
            Some(&AttributeValue::S("HOOK#SM1:delivered".to_owned()))
        );
        assert_eq!(
            item.get(keys::SK),
            Some(&AttributeValue::S(keys::WEBHOOK_SK.to_owned()))
        );
        assert_eq!(
            item.get(keys::EXPIRES_AT),
            Some(&AttributeValue::N(keys::webhook_expires_at(received_at).to_string()))
        );
        assert!(item.contains_key(keys::MESSAGE_ID));
        assert!(
            !item.contains_key("provider_sid"),
            "absent values are left out, not NULL"
        );
    }
}
