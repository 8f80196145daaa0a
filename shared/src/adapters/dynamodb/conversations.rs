//! `ConversationStore` on `DynamoMessageStore`. Items (keys in `keys`):
//! - the conversation, `CONV#<id>` / `META`, on `gsi1` as `CONVS#<phone>` / `<id>` (a phone's
//!   conversations, newest first: ids are ULIDs), with a numeric `version` and the record as JSON
//!   in `doc`;
//! - the pair pointer, `CONVPAIR#<business>#<phone>` / `OPEN` → `conversation_id`, present exactly
//!   while that conversation is not ended.
//!
//! Creating puts both in one TransactWriteItems, each `attribute_not_exists(pk)`, so a pair can
//! never have two open conversations; ending deletes the pointer in the same transaction as the
//! conditional put of the record. A transaction that loses to a concurrent one
//! (`TransactionConflict`) is tried again a few times before it is `Throttled`. No Scan.

use super::items::Item;
use super::keys;
use super::store::{classify, DynamoMessageStore};
use crate::domain::{Conversation, ConversationId, ConversationStatus, PhoneNumber};
use crate::ports::conversation_store::{ConversationFilter, ConversationStore};
use crate::ports::message_store::Page;
use crate::ports::StoreError;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use std::time::Duration;

/// Rounds a transaction is tried while it keeps losing to concurrent ones.
const CONFLICT_ATTEMPTS: u32 = 6;
/// Items read per Query page (a filter may discard most of them).
const PAGE_SIZE: i32 = 100;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn conversation_item(c: &Conversation) -> Result<Item, StoreError> {
    let doc = serde_json::to_string(c)
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode conversation")))?;
    let mut item = keys::conversation_status_keys(&c.id, &c.phone, c.status);
    item.insert(keys::VERSION.to_owned(), AttributeValue::N(c.version.to_string()));
    item.insert(keys::DOC.to_owned(), s(doc));
    Ok(item)
}

fn read_conversation(item: &Item) -> Result<Conversation, StoreError> {
    let doc = item
        .get(keys::DOC)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt("conversation item without doc".to_owned()))?;
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("conversation item: {e}")))
}

fn pair_item(c: &Conversation) -> Item {
    let mut item = keys::conversation_pair_key(&c.business_number, &c.phone);
    item.insert(keys::CONVERSATION_ID.to_owned(), s(c.id.as_str()));
    item
}

pub(super) fn build<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("build TransactWriteItems")))
}

/// How a cancelled transaction ended, per item.
enum Cancelled {
    /// Item `index` failed its condition.
    Condition(usize),
    /// It lost to a concurrent transaction: try again.
    Conflict,
}

impl DynamoMessageStore {
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Cancelled>, StoreError> {
        let sent = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(Ok(())),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(c)) = err.as_service_error() {
            let codes: Vec<&str> = c
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None"))
                .collect();
            if let Some(i) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
                return Ok(Err(Cancelled::Condition(i)));
            }
            if codes.contains(&"TransactionConflict") {
                return Ok(Err(Cancelled::Conflict));
            }
        }
        Err(classify(err, "TransactWriteItems"))
    }

    /// `transact`, again while it loses to concurrent transactions.
    pub(super) async fn transact_retrying(
        &self,
        make: impl Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<Result<(), usize>, StoreError> {
        for round in 0..CONFLICT_ATTEMPTS {
            match self.transact(make()?).await? {
                Ok(()) => return Ok(Ok(())),
                Err(Cancelled::Condition(i)) => return Ok(Err(i)),
                Err(Cancelled::Conflict) => {
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(round + 1))).await;
                }
            }
        }
        Err(StoreError::Throttled)
    }

    fn put_conversation(
        &self,
        c: &Conversation,
        condition: &str,
        previous: Option<u64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(conversation_item(c)?))
            .condition_expression(condition)
            .expression_attribute_names("#pk", keys::PK);
        if let Some(v) = previous {
            put = put
                .expression_attribute_names("#version", keys::VERSION)
                .expression_attribute_values(":previous", AttributeValue::N(v.to_string()));
        }
        Ok(TransactWriteItem::builder().put(build(put.build())?).build())
    }
}

#[async_trait]
impl ConversationStore for DynamoMessageStore {
    async fn create_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
        let make = || {
            let mut items = vec![self.put_conversation(c, "attribute_not_exists(#pk)", None)?];
            if c.status != ConversationStatus::Ended {
                let pair = Put::builder()
                    .table_name(self.table())
                    .set_item(Some(pair_item(c)))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", keys::PK);
                items.push(TransactWriteItem::builder().put(build(pair.build())?).build());
            }
            Ok(items)
        };
        match self.transact_retrying(make).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        self.get_consistent(keys::conversation_key(id))
            .await?
            .map(|item| read_conversation(&item))
            .transpose()
    }

    /// GetItem of the pair pointer, then of the conversation it names (both consistent).
    async fn open_conversation(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
    ) -> Result<Option<Conversation>, StoreError> {
        let key = keys::conversation_pair_key(business_number, phone);
        let Some(id) = self
            .pointer_target(key, keys::CONVERSATION_ID, "conversation", ConversationId::parse)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.get_conversation(&id).await?.filter(Conversation::is_open))
    }

    /// A conditional put on `version`; ending it also deletes the pair pointer if it still names
    /// this conversation (a correction of an ended one finds the pointer gone or another's).
    async fn update_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
        let previous = c.version.checked_sub(1).ok_or(StoreError::ConditionFailed)?;
        let condition = "attribute_exists(#pk) AND #version = :previous";
        let put_only = || Ok(vec![self.put_conversation(c, condition, Some(previous))?]);
        if c.status == ConversationStatus::Ended {
            let with_pointer = || {
                let delete = Delete::builder()
                    .table_name(self.table())
                    .set_key(Some(keys::conversation_pair_key(&c.business_number, &c.phone)))
                    .condition_expression("#cid = :id")
                    .expression_attribute_names("#cid", keys::CONVERSATION_ID)
                    .expression_attribute_values(":id", s(c.id.as_str()));
                Ok(vec![
                    self.put_conversation(c, condition, Some(previous))?,
                    TransactWriteItem::builder().delete(build(delete.build())?).build(),
                ])
            };
            match self.transact_retrying(with_pointer).await? {
                Ok(()) => return Ok(()),
                Err(0) => return Err(StoreError::ConditionFailed),
                Err(_) => {} // the pointer is not ours any more: write the record alone
            }
        }
        match self.transact_retrying(put_only).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::ConditionFailed),
        }
    }

    /// Query of `gsi1` `CONVS#<phone>`, newest first, in pages, filtered here; the cursor is the
    /// id of the last conversation returned (its key is rebuilt, never echoed).
    async fn list_conversations(
        &self,
        phone: &PhoneNumber,
        filter: ConversationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, StoreError> {
        let mut start = cursor
            .map(|c| {
                ConversationId::parse(c)
                    .map(|id| keys::conversation_item_keys(&id, phone))
                    .map_err(|_| StoreError::Corrupt("listing cursor is not readable".to_owned()))
            })
            .transpose()?;
        let mut items: Vec<Conversation> = Vec::new();
        let mut more = false;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_values(":pk", s(keys::conversations_gsi1pk(phone)))
                .scan_index_forward(false)
                .limit(PAGE_SIZE)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, "Query"))?;
            for item in page.items() {
                let c = read_conversation(item)?;
                if !filter.keeps(&c) {
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(c);
            }
            match page.last_evaluated_key {
                Some(k) if !more && !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let next_cursor = if more {
            items.last().map(|c| c.id.as_str().to_owned())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Query of `gsi3` `CONVSTATUS#<status>`, newest first; the cursor is the id of the last
    /// conversation returned (its keys are rebuilt, never echoed). Conversations written before
    /// this index existed appear once they are next written.
    async fn list_conversations_by_status(
        &self,
        status: ConversationStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, StoreError> {
        let start = cursor
            .map(|c| {
                ConversationId::parse(c)
                    .map(|id| {
                        let mut k = keys::conversation_key(&id);
                        k.insert(keys::GSI3PK.to_owned(), s(keys::conversations_status_gsi3pk(status)));
                        k.insert(keys::GSI3SK.to_owned(), s(id.as_str().to_owned()));
                        k
                    })
                    .map_err(|_| StoreError::Corrupt("listing cursor is not readable".to_owned()))
            })
            .transpose()?;
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(keys::GSI3)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::GSI3PK)
            .expression_attribute_values(":pk", s(keys::conversations_status_gsi3pk(status)))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| classify(e, "Query"))?;
        let mut items = page
            .items()
            .iter()
            .map(read_conversation)
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|c| c.id.as_str().to_owned())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
