//! `BatchStore` on `DynamoMessageStore`: one item per batch (`BATCH#<id>`/`BATCH`, keys.rs)
//! holding its size and tallies, and one marker item per counted message in the same partition
//! (`BATCH#<id>`/`ITEM#<message id>`), so an item is counted once. Counting is a conditional
//! PutItem of the marker (absent → this caller counts) followed by one UpdateItem `ADD` on the
//! record returning the new tallies. Not a transaction on purpose: a batch's items finish 16 at
//! a time, and concurrent transactions on one item are refused (`TransactionConflict`), while
//! concurrent `ADD`s are serialised by DynamoDB. A crash between the two writes leaves the item
//! uncounted (as a crash between the claim and the adds did before). Both items carry TTL
//! `expires_at`; reads treat an expired record as absent, like `SqliteStore`.

use super::keys::{batch_item_key, batch_key, EXPIRES_AT, PK};
use super::store::classify;
use super::DynamoMessageStore;
use crate::domain::MessageId;
use crate::ports::{BatchProgress, BatchRecord, BatchState, BatchStore, ItemOutcome, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

const TOTAL: &str = "total";
const ACCEPTED: &str = "accepted";
const REJECTED: &str = "rejected";
const CREATED_AT: &str = "created_at";
const FINISHED: &str = "finished";
const COMPLETED: &str = "completed";
const ALERTED: &str = "alerted";
/// How long an item's counted marker is kept: longer than any batch record lives (30 days,
/// `app::send_batch`), so a marker never expires before its batch.
const MARKER_TTL_DAYS: i64 = 35;

/// The tally attribute of an outcome.
fn tally(outcome: ItemOutcome) -> &'static str {
    match outcome {
        ItemOutcome::Sent => "sent",
        ItemOutcome::Failed => "failed",
        ItemOutcome::Suppressed => "suppressed",
        ItemOutcome::RateLimited => "rate_limited",
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn count(item: &HashMap<String, AttributeValue>, name: &str, id: &str) -> Result<u32, StoreError> {
    match item.get(name) {
        None => Ok(0),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("batch {id}: {name} is not a count"))),
        Some(_) => Err(StoreError::Corrupt(format!("batch {id}: {name} is not a Number"))),
    }
}

/// The record read at `now_s`; expired is `None`.
fn decode(item: &HashMap<String, AttributeValue>, id: &str, now_s: i64) -> Result<Option<BatchState>, StoreError> {
    let expires = match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map_err(|_| StoreError::Corrupt(format!("batch {id}: expires_at unreadable")))?,
        _ => return Err(StoreError::Corrupt(format!("batch {id}: no expires_at"))),
    };
    if expires < now_s {
        return Ok(None);
    }
    let created_at = match item.get(CREATED_AT) {
        Some(AttributeValue::S(t)) => DateTime::parse_from_rfc3339(t)
            .map_err(|_| StoreError::Corrupt(format!("batch {id}: created_at unreadable")))?
            .with_timezone(&Utc),
        _ => return Err(StoreError::Corrupt(format!("batch {id}: no created_at"))),
    };
    let flag = |name: &str| matches!(item.get(name), Some(AttributeValue::Bool(true)));
    Ok(Some(BatchState {
        record: BatchRecord {
            id: id.to_owned(),
            total: count(item, TOTAL, id)?,
            accepted: count(item, ACCEPTED, id)?,
            rejected: count(item, REJECTED, id)?,
            created_at,
            expires_at: DateTime::from_timestamp(expires, 0)
                .ok_or_else(|| StoreError::Corrupt(format!("batch {id}: expires_at out of range")))?,
        },
        progress: BatchProgress {
            sent: count(item, tally(ItemOutcome::Sent), id)?,
            failed: count(item, tally(ItemOutcome::Failed), id)?,
            suppressed: count(item, tally(ItemOutcome::Suppressed), id)?,
            rate_limited: count(item, tally(ItemOutcome::RateLimited), id)?,
            finished: count(item, FINISHED, id)?,
        },
        alerted: flag(ALERTED),
    }))
}

impl DynamoMessageStore {
    /// UpdateItem on an existing record; `ConditionFailed` (unknown batch) is `Ok(false)`.
    async fn update_batch(
        &self,
        id: &str,
        expression: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(batch_key(id)))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK);
        for (k, v) in names {
            update = update.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            update = update.expression_attribute_values(*k, v.clone());
        }
        match update.send().await.map_err(|e| classify(e, "UpdateItem")) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl BatchStore for DynamoMessageStore {
    /// PutItem with `attribute_not_exists(pk)`; `finished` starts at `rejected`.
    async fn create_batch(&self, record: &BatchRecord) -> Result<(), StoreError> {
        let mut item = batch_key(&record.id);
        item.insert(TOTAL.to_owned(), n(record.total));
        item.insert(ACCEPTED.to_owned(), n(record.accepted));
        item.insert(REJECTED.to_owned(), n(record.rejected));
        item.insert(FINISHED.to_owned(), n(record.rejected));
        item.insert(
            CREATED_AT.to_owned(),
            AttributeValue::S(record.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
        item.insert(EXPIRES_AT.to_owned(), n(record.expires_at.timestamp()));
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "PutItem"))
    }

    /// GetItem with ConsistentRead.
    async fn get_batch(&self, id: &str, now: DateTime<Utc>) -> Result<Option<BatchState>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(batch_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, "GetItem"))?;
        match out.item {
            Some(item) => decode(&item, id, now.timestamp()),
            None => Ok(None),
        }
    }

    /// PutItem of the marker (`attribute_not_exists(pk)`; a lost condition means counted
    /// before), then UpdateItem `ADD <tally> :one, finished :one` on the record if it exists,
    /// returning ALL_NEW.
    async fn record_item(
        &self,
        id: &str,
        item: &MessageId,
        outcome: ItemOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<BatchState>, StoreError> {
        let mut marker = batch_item_key(id, item);
        marker.insert(
            EXPIRES_AT.to_owned(),
            n((now + chrono::Duration::days(MARKER_TTL_DAYS)).timestamp()),
        );
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match put.map_err(|e| classify(e, "PutItem")) {
            Ok(_) => {}
            Err(StoreError::ConditionFailed) => return Ok(None),
            Err(e) => return Err(e),
        }
        let updated = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(batch_key(id)))
            .update_expression("ADD #tally :one, #finished :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#tally", tally(outcome))
            .expression_attribute_names("#finished", FINISHED)
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match updated.map_err(|e| classify(e, "UpdateItem")) {
            Ok(out) => decode(&out.attributes.unwrap_or_default(), id, now.timestamp()),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// UpdateItem `ADD finished :n` on an existing record.
    async fn add_finished(&self, id: &str, count: u32) -> Result<(), StoreError> {
        self.update_batch(
            id,
            "ADD #finished :n",
            "attribute_exists(#pk)",
            &[("#finished", FINISHED)],
            &[(":n", n(count))],
        )
        .await
        .map(|_| ())
    }

    /// UpdateItem `SET completed = true` if it is not yet: written means taken.
    async fn claim_completion(&self, id: &str) -> Result<bool, StoreError> {
        self.update_batch(
            id,
            "SET #completed = :yes",
            "attribute_exists(#pk) AND attribute_not_exists(#completed)",
            &[("#completed", COMPLETED)],
            &[(":yes", AttributeValue::Bool(true))],
        )
        .await
    }

    async fn mark_alerted(&self, id: &str) -> Result<(), StoreError> {
        self.update_batch(
            id,
            "SET #alerted = :yes",
            "attribute_exists(#pk)",
            &[("#alerted", ALERTED)],
            &[(":yes", AttributeValue::Bool(true))],
        )
        .await
        .map(|_| ())
    }
}

/// DynamoDB's TTL on `expires_at` (template.yaml `MessagesTable.TimeToLiveSpecification`) deletes
/// what expired; reads already treat it as absent, so there is nothing to purge here.
#[async_trait]
impl crate::ports::Retention for DynamoMessageStore {
    async fn purge_expired(&self, _now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(0)
    }
}
