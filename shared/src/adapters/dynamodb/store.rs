//! `DynamoMessageStore`: the `MessageStore` port on one DynamoDB table (layout in `keys`), and
//! the request helpers and error mapping the other ports' files (`queries`, `consent`,
//! `idempotency`) share.
//!
//! Every write is a single conditional PutItem (or DeleteItem), so the adapter gives the same
//! compare-and-set semantics as `SqliteStore`; the contract suite (`testing::store_contract`)
//! proves both. Reads of single items are strongly consistent; the listings read GSIs, which are
//! eventually consistent (docs/dynamodb.md). Nothing here scans the table.

use super::conversations::build;
use super::items::{self, Item, MessageItem, ProviderSidTarget};
use super::keys;
use crate::domain::{Message, MessageId, MessageStatus, PhoneNumber, ProviderSid};
use crate::ports::message_store::Page;
use crate::ports::{MessageStore, StoreError, WebhookRecord};
use async_trait::async_trait;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection,
    ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use std::time::Duration;

/// The error code DynamoDB gives a conditional write that lost.
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";
/// Error codes that mean "slow down": safe to retry later.
const THROTTLED: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];
/// How long `create_table` waits for a new table to become ACTIVE (real DynamoDB takes seconds).
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
/// BatchGetItem calls per request (the first plus retries of `UnprocessedKeys`).
const BATCH_GET_ATTEMPTS: u32 = 8;
/// First pause before retrying `UnprocessedKeys`; doubled each time up to the maximum below.
const BATCH_GET_BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest pause between BatchGetItem retries.
const BATCH_GET_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Items read per Query page when a status filter may discard most of them.
const FILTERED_PAGE_SIZE: usize = 100;

/// The store ports (`MessageStore`, `MessageQueries`, `ConsentStore`, `IdempotencyStore`) on a
/// DynamoDB single table.
#[derive(Debug, Clone)]
pub struct DynamoMessageStore {
    client: Client,
    table: String,
}

impl DynamoMessageStore {
    /// A store on `table` (created by template.yaml, or by [`Self::create_table`] in tests).
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Create `table` as template.yaml declares `MessagesTable`, wait until it is ACTIVE, and
    /// enable TTL on `expires_at`: keys `pk` (HASH) + `sk` (RANGE); GSIs `gsi1`, `gsi2`, `gsi3`
    /// on `gsiNpk` (HASH) + `gsiNsk` (RANGE), each projecting ALL; on-demand billing. For tests
    /// and local runs against DynamoDB Local; deployed tables come from template.yaml.
    ///
    /// # Errors
    /// `Unexpected` if the table cannot be created (it exists already, say) or TTL cannot be
    /// enabled; `Throttled` if DynamoDB throttled a call.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_failed)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_failed)
        };
        let index = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(build_failed)
        };
        let mut create = client
            .create_table()
            .table_name(table)
            .key_schema(key(keys::PK, KeyType::Hash)?)
            .key_schema(key(keys::SK, KeyType::Range)?)
            .global_secondary_indexes(index(keys::GSI1, keys::GSI1PK, keys::GSI1SK)?)
            .global_secondary_indexes(index(keys::GSI2, keys::GSI2PK, keys::GSI2SK)?)
            .global_secondary_indexes(index(keys::GSI3, keys::GSI3PK, keys::GSI3SK)?)
            .billing_mode(BillingMode::PayPerRequest);
        for name in [
            keys::PK,
            keys::SK,
            keys::GSI1PK,
            keys::GSI1SK,
            keys::GSI2PK,
            keys::GSI2SK,
            keys::GSI3PK,
            keys::GSI3SK,
        ] {
            create = create.attribute_definitions(attribute(name)?);
        }
        create.send().await.map_err(|e| classify(e, "CreateTable"))?;
        client
            .wait_until_table_exists()
            .table_name(table)
            .wait(TABLE_ACTIVE_TIMEOUT)
            .await
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("wait for the new table")))?;
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(keys::EXPIRES_AT)
            .build()
            .map_err(build_failed)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| classify(e, "UpdateTimeToLive"))?;
        Ok(())
    }

    /// PutItem `item` unconditionally (for items whose rewrite is harmless).
    pub(super) async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "PutItem"))
    }

    /// PutItem `item` if `condition` holds (`ConditionFailed` otherwise).
    pub(super) async fn put_if(
        &self,
        item: Item,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (placeholder, name) in names {
            put = put.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            put = put.expression_attribute_values(placeholder, value);
        }
        put.send().await.map(|_| ()).map_err(|e| classify(e, "PutItem"))
    }

    /// BatchGetItem of `request`'s keys (at most 100) on this table, retrying `UnprocessedKeys`
    /// with exponential backoff; returns the items found, in no particular order.
    pub(super) async fn batch_get_items(&self, request: KeysAndAttributes) -> Result<Vec<Item>, StoreError> {
        let mut request = request;
        let mut found = Vec::new();
        let mut pause = BATCH_GET_BACKOFF_START;
        for attempt in 1..=BATCH_GET_ATTEMPTS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| classify(e, "BatchGetItem"))?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(&self.table).unwrap_or_default());
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys().is_empty() => request = rest,
                _ => return Ok(found),
            }
            if attempt < BATCH_GET_ATTEMPTS {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(BATCH_GET_BACKOFF_MAX);
            }
        }
        // DynamoDB leaves keys unprocessed when it throttles or a response would be too large.
        Err(StoreError::Throttled)
    }

    /// GetItem `key` with ConsistentRead.
    pub(super) async fn get_consistent(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, "GetItem"))?;
        Ok(out.item)
    }

    /// The id a pointer item (`key`, consistent read) names in its attribute `attr`, parsed by
    /// `parse`; `None` without the pointer. A pointer whose id is missing or does not parse is
    /// `Corrupt`, naming `what` points to.
    pub(super) async fn pointer_target<T, E>(
        &self,
        key: Item,
        attr: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        let Some(pointer) = self.get_consistent(key).await? else {
            return Ok(None);
        };
        pointer
            .get(attr)
            .and_then(|v| v.as_s().ok())
            .and_then(|v| parse(v).ok())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("{what} pair pointer without a valid id")))
    }

    /// DeleteItem `key`, if `condition` holds when one is given (`ConditionFailed` otherwise).
    /// Deleting an absent item without a condition succeeds.
    pub(super) async fn delete_if(
        &self,
        key: Item,
        condition: Option<&str>,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned));
        for (placeholder, name) in names {
            delete = delete.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            delete = delete.expression_attribute_values(placeholder, value);
        }
        delete.send().await.map(|_| ()).map_err(|e| classify(e, "DeleteItem"))
    }
}

/// Map an SDK error onto the port's error: lost conditions and throttling by their error code,
/// everything else kept whole as the source of `Unexpected` (never stringified).
pub(super) fn classify<E, R>(err: SdkError<E, R>, operation: &'static str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match err.code() {
        Some(CONDITION_FAILED) => StoreError::ConditionFailed,
        Some(code) if THROTTLED.contains(&code) => StoreError::Throttled,
        _ => StoreError::Unexpected(anyhow::Error::new(err).context(operation)),
    }
}

fn build_failed(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unexpected(anyhow::Error::new(err).context("build CreateTable request"))
}

#[async_trait]
impl MessageStore for DynamoMessageStore {
    /// PutItem with `attribute_not_exists(pk)`. A message with a `reference` first gets its ref
    /// pointer (an unconditional PutItem, harmless to repeat), so every stored message with a
    /// ref is reachable by `list_by_ref`; a pointer left by a create that failed afterwards
    /// names no message and is skipped by the reader. The reference is fixed at creation: an
    /// update does not rewrite the pointer.
    async fn create_message(&self, message: &Message) -> Result<(), StoreError> {
        if let Some(reference) = &message.reference {
            self.put(items::ref_pointer_item(reference, &message.id)?).await?;
        }
        let condition = "attribute_not_exists(#pk)";
        self.put_if(
            items::message_item(message)?,
            condition,
            &[("#pk", keys::PK)],
            Vec::new(),
        )
        .await
    }

    /// TransactWriteItems per chunk of at most 100 actions (each message's PutItem with
    /// `attribute_not_exists(pk)`, and its ref pointer), so a chunk is written whole or not at
    /// all. Each chunk carries a ClientRequestToken (its first message id and the table's hash,
    /// `keys::create_chunk_token`), so retrying it after an ambiguous failure (timeout, 5xx,
    /// throttling) can never apply it twice. Chunks are independent: every message of a chunk
    /// that failed is reported failed and none of them is stored; the other chunks are written.
    /// So the call never fails as a whole after it wrote something, and a failed item is never
    /// sent — nor sent twice when the client retries it.
    async fn create_messages(&self, messages: &[Message]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(messages.len());
        let mut start = 0;
        while start < messages.len() {
            let mut end = start;
            let mut actions = 0;
            while end < messages.len() {
                let n = 1 + usize::from(messages[end].reference.is_some());
                if actions + n > TRANSACTION_ACTIONS {
                    break;
                }
                actions += n;
                end += 1;
            }
            let chunk = &messages[start..end];
            match self.create_chunk(chunk).await {
                Ok(()) => out.extend(chunk.iter().map(|_| Ok(()))),
                Err(e) => {
                    tracing::warn!(messages = chunk.len(), error.message = %e, "bulk create chunk not written");
                    out.push(Err(e));
                    out.extend(chunk.iter().skip(1).map(|_| {
                        Err(StoreError::Unexpected(anyhow::anyhow!(
                            "not written: the transaction of its chunk failed"
                        )))
                    }));
                }
            }
            start = end;
        }
        Ok(out)
    }

    /// GetItem with ConsistentRead.
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        self.get_consistent(keys::message_key(id))
            .await?
            .map(|item| MessageItem::try_from(item).map(MessageItem::into_message))
            .transpose()
    }

    /// PutItem with `version = :expected` (the caller's version minus one); a missing item has
    /// no version, so the condition fails for it too.
    async fn update_message(&self, message: &Message) -> Result<(), StoreError> {
        let expected = message.version.checked_sub(1).ok_or(StoreError::ConditionFailed)?;
        self.put_if(
            items::message_item(message)?,
            "#version = :expected",
            &[("#version", keys::VERSION)],
            vec![(":expected", AttributeValue::N(expected.to_string()))],
        )
        .await
    }

    /// PutItem with `attribute_not_exists(pk) OR message_id = :id`, so relinking the same pair
    /// succeeds and pointing the sid elsewhere fails.
    async fn link_provider_sid(&self, sid: &ProviderSid, id: &MessageId) -> Result<(), StoreError> {
        self.put_if(
            items::provider_sid_item(sid, id)?,
            "attribute_not_exists(#pk) OR #message_id = :id",
            &[("#pk", keys::PK), ("#message_id", keys::MESSAGE_ID)],
            vec![(":id", AttributeValue::S(id.as_str().to_owned()))],
        )
        .await
    }

    /// One TransactWriteItems of two Puts, the message on `#version = :expected` and its sid
    /// pointer as [`Self::link_provider_sid`] conditions it: either condition lost writes
    /// neither. Both items are the message's own, so concurrent sends never conflict.
    async fn update_message_and_link(&self, message: &Message, sid: &ProviderSid) -> Result<(), StoreError> {
        let expected = message.version.checked_sub(1).ok_or(StoreError::ConditionFailed)?;
        let make = || {
            let write = Put::builder()
                .table_name(self.table())
                .set_item(Some(items::message_item(message)?))
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", keys::VERSION)
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()));
            let link = Put::builder()
                .table_name(self.table())
                .set_item(Some(items::provider_sid_item(sid, &message.id)?))
                .condition_expression("attribute_not_exists(#pk) OR #message_id = :id")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#message_id", keys::MESSAGE_ID)
                .expression_attribute_values(":id", AttributeValue::S(message.id.as_str().to_owned()));
            Ok(vec![
                TransactWriteItem::builder().put(build(write.build())?).build(),
                TransactWriteItem::builder().put(build(link.build())?).build(),
            ])
        };
        match self.transact_retrying(make).await? {
            Ok(()) => Ok(()),
            Err(_condition) => Err(StoreError::ConditionFailed),
        }
    }

    /// GetItem of `PROV#<sid>` with ConsistentRead.
    async fn message_id_for_sid(&self, sid: &ProviderSid) -> Result<Option<MessageId>, StoreError> {
        self.get_consistent(keys::provider_sid_key(sid))
            .await?
            .map(|item| ProviderSidTarget::try_from(item).map(ProviderSidTarget::into_message_id))
            .transpose()
    }

    /// PutItem with `attribute_not_exists(pk)`: written means first, a lost condition a duplicate.
    async fn record_webhook(&self, record: &WebhookRecord) -> Result<bool, StoreError> {
        let put = self.put_if(
            items::webhook_item(record)?,
            "attribute_not_exists(#pk)",
            &[("#pk", keys::PK)],
            Vec::new(),
        );
        match put.await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Query `gsi1` for `TO#<to>`, newest first, the status as a FilterExpression. A filter
    /// discards items after DynamoDB's page limit, so pages are read until `limit + 1` items
    /// (one more tells whether there is a next page) or the end.
    async fn list_messages_to(
        &self,
        to: &PhoneNumber,
        status: Option<MessageStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, StoreError> {
        let mut start = cursor.map(|c| keys::decode_cursor(c, to)).transpose()?;
        if limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let wanted = limit.saturating_add(1);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("#gsi1pk = :gsi1pk")
            .expression_attribute_names("#gsi1pk", keys::GSI1PK)
            .expression_attribute_values(":gsi1pk", AttributeValue::S(keys::recipient_gsi1pk(to)))
            .scan_index_forward(false);
        if let Some(status) = status {
            query = query
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", keys::STATUS)
                .expression_attribute_values(":status", AttributeValue::S(status.as_str().to_owned()));
        }
        let filtered = status.is_some();
        let mut found = query_messages(query, start.take(), wanted, |missing| {
            if filtered {
                missing.max(FILTERED_PAGE_SIZE)
            } else {
                missing
            }
        })
        .await?;
        let next_cursor = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|last| keys::encode_cursor(to, &last.id)).transpose()?
        } else {
            None
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }
}

/// Read `query` page after page until `wanted` messages were read or the index ends, each page
/// asking for `page_size(missing)` items (a filtered query asks for more than it lacks, since
/// `Limit` counts items evaluated before the filter). Returns the messages in index order.
pub(super) async fn query_messages(
    query: QueryFluentBuilder,
    mut start: Option<Item>,
    wanted: usize,
    page_size: impl Fn(usize) -> usize,
) -> Result<Vec<Message>, StoreError> {
    let mut found: Vec<Message> = Vec::new();
    while found.len() < wanted {
        let out = query
            .clone()
            .limit(i32::try_from(page_size(wanted - found.len())).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| classify(e, "Query"))?;
        for item in out.items.unwrap_or_default() {
            if found.len() == wanted {
                break;
            }
            found.push(MessageItem::try_from(item)?.into_message());
        }
        match out.last_evaluated_key {
            Some(last) => start = Some(last),
            None => break,
        }
    }
    Ok(found)
}

/// A BatchWriteItem put of one item.
/// Most actions in one TransactWriteItems call.
const TRANSACTION_ACTIONS: usize = 100;
/// Attempts of one bulk-create transaction (the first and retries of retryable failures).
const TRANSACTION_ATTEMPTS: u32 = 5;

fn transact_put(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
    let mut put = Put::builder().table_name(table).set_item(Some(item));
    if let Some(c) = condition {
        put = put.condition_expression(c).expression_attribute_names("#pk", keys::PK);
    }
    let put = put
        .build()
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("build transaction Put")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl DynamoMessageStore {
    /// One all-or-nothing TransactWriteItems of `chunk` (≤ 100 actions), retried with the same
    /// ClientRequestToken while the failure is retryable. A lost condition (an id that exists)
    /// cancels the whole chunk: `ConditionFailed`.
    async fn create_chunk(&self, chunk: &[Message]) -> Result<(), StoreError> {
        let mut actions = Vec::with_capacity(chunk.len() * 2);
        for m in chunk {
            if let Some(reference) = &m.reference {
                actions.push(transact_put(
                    &self.table,
                    items::ref_pointer_item(reference, &m.id)?,
                    None,
                )?);
            }
            actions.push(transact_put(
                &self.table,
                items::message_item(m)?,
                Some("attribute_not_exists(#pk)"),
            )?);
        }
        let token = chunk.first().map(|m| keys::create_chunk_token(&self.table, &m.id));
        let mut pause = Duration::from_millis(50);
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .set_client_request_token(token.clone())
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(()),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c))
                        if c.cancellation_reasons()
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                    {
                        return Err(StoreError::ConditionFailed);
                    }
                    // Cancelled for a conflict or throttling, or the same token still running.
                    Some(
                        TransactWriteItemsError::TransactionCanceledException(_)
                        | TransactWriteItemsError::TransactionInProgressException(_),
                    ) => StoreError::Throttled,
                    _ => classify(e, "TransactWriteItems"),
                },
            };
            if !err.is_retryable() || attempt == TRANSACTION_ATTEMPTS {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
        Err(StoreError::Throttled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use std::error::Error as _;

    fn service_error(err: PutItemError) -> SdkError<PutItemError, ()> {
        SdkError::service_error(err, ())
    }

    fn generic(code: &str) -> PutItemError {
        PutItemError::generic(ErrorMetadata::builder().code(code).message("m").build())
    }

    #[test]
    fn a_lost_condition_is_condition_failed() {
        let err = PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .meta(ErrorMetadata::builder().code(CONDITION_FAILED).build())
                .build(),
        );
        assert!(matches!(
            classify(service_error(err), "PutItem"),
            StoreError::ConditionFailed
        ));
    }

    #[test]
    fn throttling_codes_are_throttled() {
        for code in THROTTLED {
            assert!(
                matches!(classify(service_error(generic(code)), "PutItem"), StoreError::Throttled),
                "{code}"
            );
        }
    }

    #[test]
    fn other_errors_keep_the_sdk_error_as_their_source() {
        let err = classify(service_error(generic("ValidationException")), "PutItem");
        let StoreError::Unexpected(inner) = &err else {
            panic!("expected Unexpected, got {err:?}")
        };
        assert!(inner
            .chain()
            .any(|e| e.downcast_ref::<SdkError<PutItemError, ()>>().is_some()));
        assert!(err.source().is_some());
        assert!(err.is_retryable());
    }
}
