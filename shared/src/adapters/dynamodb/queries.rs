//! `MessageQueries` on `DynamoMessageStore`: the due index (`gsi2`), the failed list (`gsi3`),
//! and the messages of a caller's entity (ref pointer items).
//!
//! Both indexes are sparse: a message item carries their keys only while it is due or listed
//! (`keys::message_item_keys`), so every read here grows with the due or listed messages, never
//! with the table. Nothing here scans. GSI reads are eventually consistent (docs/dynamodb.md);
//! the ref pointers live in the table itself, so their Query is strongly consistent.

use super::items::{Item, RefPointerTarget};
use super::keys;
use super::store::{classify, query_messages, DynamoMessageStore};
use crate::domain::{Message, MessageId, Ref};
use crate::ports::message_store::Page;
use crate::ports::{MessageQueries, MessageStore as _, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;

/// [`keys::DUE_SHARDS`] as a count of queries.
const SHARDS: usize = keys::DUE_SHARDS as usize;
/// Ref pointers read per Query page, which is also how many messages are read at once.
const REF_PAGE_SIZE: usize = 100;

impl DynamoMessageStore {
    /// Up to `wanted` messages of due-index shard `shard` whose `gsi2sk` is at most `upper`,
    /// oldest due first. Reads further pages only while a page came back short of `wanted`
    /// (DynamoDB cuts a page at 1 MB), so at most `wanted` items are read.
    async fn due_in_shard(&self, shard: u32, upper: &str, wanted: usize) -> Result<Vec<Message>, StoreError> {
        let query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(keys::GSI2)
            .key_condition_expression("#gsi2pk = :shard AND #gsi2sk <= :upper")
            .expression_attribute_names("#gsi2pk", keys::GSI2PK)
            .expression_attribute_names("#gsi2sk", keys::GSI2SK)
            .expression_attribute_values(":shard", AttributeValue::S(keys::due_gsi2pk(shard)))
            .expression_attribute_values(":upper", AttributeValue::S(upper.to_owned()));
        query_messages(query, None, wanted, |missing| missing).await
    }
}

#[async_trait]
impl MessageQueries for DynamoMessageStore {
    /// One Query per due-index shard, all 16 at once: `gsi2pk = DUE#<n> AND gsi2sk <= <now>#~`,
    /// `Limit` = `ceil(limit / 16)` (at least 1) each, so at most that many items are read per
    /// shard. The results are merged, oldest due first (then by id), and all returned.
    ///
    /// Unlike `SqliteStore`, which returns exactly the `min(limit, due)` oldest, this returns
    /// each shard's oldest `ceil(limit / 16)`: every message is due, but there can be up to
    /// `16 × ceil(limit / 16)` of them (more than `limit` when more are due), or fewer than
    /// `limit` when the due messages crowd into a few shards, and the oldest due overall are
    /// then not all among them. What is not returned stays due for the next call.
    async fn list_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let per_shard = limit.div_ceil(SHARDS).max(1);
        let upper = keys::due_gsi2sk_upper_bound(&now);
        let shards = (0..keys::DUE_SHARDS).map(|shard| self.due_in_shard(shard, &upper, per_shard));
        let mut due: Vec<Message> = Vec::new();
        for shard in join_all(shards).await {
            due.extend(shard?);
        }
        due.sort_by_cached_key(|m| (m.due_at.as_ref().map(keys::sortable_time), m.id.clone()));
        Ok(due)
    }

    /// Query `gsi3` for `gsi3pk = FAILED`, `ScanIndexForward = false` (newest `updated_at`
    /// first), reading until `limit + 1` items or the end: the extra item only tells whether a
    /// next page exists, so an exactly full last page has no cursor.
    async fn list_failed(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Message>, StoreError> {
        let mut start = cursor.map(keys::decode_failed_cursor).transpose()?;
        if limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let wanted = limit.saturating_add(1);
        let query = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(keys::GSI3)
            .key_condition_expression("#gsi3pk = :failed")
            .expression_attribute_names("#gsi3pk", keys::GSI3PK)
            .expression_attribute_values(":failed", AttributeValue::S(keys::FAILED_GSI3PK.to_owned()))
            .scan_index_forward(false);
        let mut found = query_messages(query, start.take(), wanted, |missing| missing).await?;
        let next_cursor = if found.len() > limit {
            found.truncate(limit);
            found.last().map(keys::encode_failed_cursor).transpose()?
        } else {
            None
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }

    /// Query the table for `pk = REF#<type length>#<type>#<id>` (ConsistentRead, ascending, so
    /// oldest message first), then a consistent GetItem of every message a page of pointers
    /// names, all at once. Pointers whose message is missing (a create that failed after its
    /// pointer was written), or whose message now names another ref, are skipped; pages are read
    /// until `limit` messages are found or the pointers end.
    async fn list_by_ref(&self, reference: &Ref, limit: usize) -> Result<Vec<Message>, StoreError> {
        let mut found: Vec<Message> = Vec::new();
        let mut start: Option<Item> = None;
        while found.len() < limit {
            let page_size = (limit - found.len()).min(REF_PAGE_SIZE);
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :ref")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":ref", AttributeValue::S(keys::ref_pk(reference)))
                .consistent_read(true)
                .limit(i32::try_from(page_size).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, "Query"))?;
            let ids = out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|item| RefPointerTarget::try_from(item).map(RefPointerTarget::into_message_id))
                .collect::<Result<Vec<MessageId>, StoreError>>()?;
            for message in join_all(ids.iter().map(|id| self.get_message(id))).await {
                match message? {
                    Some(m) if m.reference.as_ref() == Some(reference) && found.len() < limit => found.push(m),
                    _ => {}
                }
            }
            match out.last_evaluated_key {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(found)
    }
}
