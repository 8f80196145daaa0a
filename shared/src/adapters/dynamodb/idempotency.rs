//! `IdempotencyStore` on `DynamoMessageStore`: one `IDEM#<scope>:<key>` item per key, in the
//! Powertools shape (conditional `begin`, the work, `complete` with the response to replay).
//!
//! `begin` is a single conditional PutItem, so of any number of concurrent requests with one key
//! exactly one is `Started`. Records expire by TTL on `expires_at` (template.yaml
//! `MessagesTable.TimeToLiveSpecification`); an expired record that TTL has not deleted yet is
//! claimable anyway, because the condition compares `expires_at` with the request time.

use super::items::{encode_failed, Item};
use super::keys;
use super::store::{classify, DynamoMessageStore};
use crate::ports::idempotency_store::{IDEMPOTENCY_LEASE_SECS, IDEMPOTENCY_TTL_SECS};
use crate::ports::{Begin, IdempotencyStore, SavedResponse, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

/// The claim condition: no record, an expired one, or an in-progress one whose lease ran out.
const CLAIMABLE: &str =
    "attribute_not_exists(#pk) OR #expires_at < :now OR (#state = :in_progress AND #lease_until < :now)";
/// How often `begin` tries to claim when the record it lost to vanished (released or expired)
/// before it could be read.
const BEGIN_ATTEMPTS: u32 = 5;

/// An idempotency record.
#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    sk: String,
    request_hash: String,
    /// `in_progress` or `completed`.
    state: String,
    /// Epoch seconds; only while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<i64>,
    /// Epoch seconds (TTL).
    expires_at: i64,
    /// The saved response, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
}

impl IdempotencyItem {
    fn in_progress(key: &str, request_hash: &str, now: DateTime<Utc>) -> Self {
        let now = now.timestamp();
        Self {
            pk: keys::idempotency_pk(key),
            sk: keys::IDEMPOTENCY_SK.to_owned(),
            request_hash: request_hash.to_owned(),
            state: keys::STATE_IN_PROGRESS.to_owned(),
            lease_until: Some(now.saturating_add(IDEMPOTENCY_LEASE_SECS)),
            expires_at: now.saturating_add(IDEMPOTENCY_TTL_SECS),
            status: None,
            body: None,
        }
    }

    fn completed(key: &str, request_hash: &str, response: &SavedResponse, now: DateTime<Utc>) -> Self {
        Self {
            pk: keys::idempotency_pk(key),
            sk: keys::IDEMPOTENCY_SK.to_owned(),
            request_hash: request_hash.to_owned(),
            state: keys::STATE_COMPLETED.to_owned(),
            lease_until: None,
            expires_at: now.timestamp().saturating_add(IDEMPOTENCY_TTL_SECS),
            status: Some(response.status),
            body: Some(response.body.clone()),
        }
    }

    fn into_item(self) -> Result<Item, StoreError> {
        to_item(self).map_err(encode_failed("encode idempotency item"))
    }

    fn read(item: Item) -> Result<Self, StoreError> {
        from_item(item).map_err(|e| StoreError::Corrupt(format!("idempotency item: {e}")))
    }

    /// Whether `begin` at `now` may take this record over (the claim condition, evaluated here).
    fn claimable(&self, now: i64) -> bool {
        self.expires_at < now || (self.state == keys::STATE_IN_PROGRESS && self.lease_until.is_some_and(|l| l < now))
    }

    /// What a `begin` with `request_hash` that lost to this live record answers.
    fn verdict(self, request_hash: &str) -> Result<Begin, StoreError> {
        if self.request_hash != request_hash {
            return Ok(Begin::Mismatch);
        }
        match (self.state.as_str(), self.status, self.body) {
            (keys::STATE_COMPLETED, Some(status), Some(body)) => Ok(Begin::Replay(SavedResponse { status, body })),
            (keys::STATE_IN_PROGRESS, _, _) => Ok(Begin::InProgress),
            (state, _, _) => Err(StoreError::Corrupt(format!(
                "idempotency item {} in state {state:?} without a response",
                self.pk
            ))),
        }
    }
}

/// How one claim attempt ended.
enum Claim {
    /// The record is ours.
    Started,
    /// A live record holds the key (as it stood when the condition failed).
    Held(Box<IdempotencyItem>),
    /// The condition failed, but the record was gone (or claimable) when read: try again.
    Vanished,
}

impl DynamoMessageStore {
    /// PutItem an in-progress record on condition [`CLAIMABLE`], with
    /// `ReturnValuesOnConditionCheckFailure = ALL_OLD` so a lost claim names the record it lost
    /// to; if DynamoDB returns no item, it is read with a consistent GetItem instead.
    async fn try_claim(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Claim, StoreError> {
        let now_s = now.timestamp();
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(IdempotencyItem::in_progress(key, request_hash, now).into_item()?))
            .condition_expression(CLAIMABLE)
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#expires_at", keys::EXPIRES_AT)
            .expression_attribute_names("#state", keys::STATE)
            .expression_attribute_names("#lease_until", keys::LEASE_UNTIL)
            .expression_attribute_values(":now", AttributeValue::N(now_s.to_string()))
            .expression_attribute_values(":in_progress", AttributeValue::S(keys::STATE_IN_PROGRESS.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match put {
            Ok(_) => return Ok(Claim::Started),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(lost)) => lost.item.clone(),
                _ => return Err(classify(err, "PutItem")),
            },
        };
        let old = match old {
            Some(item) => Some(item),
            None => self.get_consistent(keys::idempotency_key(key)).await?,
        };
        match old.map(IdempotencyItem::read).transpose()? {
            Some(record) if !record.claimable(now_s) => Ok(Claim::Held(Box::new(record))),
            _ => Ok(Claim::Vanished),
        }
    }
}

#[async_trait]
impl IdempotencyStore for DynamoMessageStore {
    /// One conditional PutItem (see [`CLAIMABLE`]): written → `Started`. Lost → the record it
    /// lost to decides: another request hash → `Mismatch`, `completed` → `Replay`, otherwise
    /// `InProgress`. If that record disappeared before it could be read, the claim is retried
    /// (up to 5 times, then `Throttled`).
    async fn begin(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Begin, StoreError> {
        for _ in 0..BEGIN_ATTEMPTS {
            match self.try_claim(key, request_hash, now).await? {
                Claim::Started => return Ok(Begin::Started),
                Claim::Held(record) => return record.verdict(request_hash),
                Claim::Vanished => {}
            }
        }
        Err(StoreError::Throttled)
    }

    /// PutItem of the completed record (`status`, `body`, `expires_at` = `now` + 24 h) on
    /// condition `request_hash = :hash`. A lost condition (the record expired and was taken by
    /// another request, or is gone) stores nothing and is not an error: the response was sent.
    async fn complete(
        &self,
        key: &str,
        request_hash: &str,
        response: &SavedResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let put = self.put_if(
            IdempotencyItem::completed(key, request_hash, response, now).into_item()?,
            "#request_hash = :hash",
            &[("#request_hash", keys::REQUEST_HASH)],
            vec![(":hash", AttributeValue::S(request_hash.to_owned()))],
        );
        match put.await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed) => {
                tracing::warn!("idempotency record was gone or taken over before completion; response not saved");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// DeleteItem on condition `state = :in_progress`: a completed record is kept for replay, and
    /// a lost condition is not an error.
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let delete = self.delete_if(
            keys::idempotency_key(key),
            Some("#state = :in_progress"),
            &[("#state", keys::STATE)],
            vec![(":in_progress", AttributeValue::S(keys::STATE_IN_PROGRESS.to_owned()))],
        );
        match delete.await {
            Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_366_400, 0).expect("time")
    }

    fn saved() -> SavedResponse {
        SavedResponse {
            status: 202,
            body: r#"{"id":"msg_1"}"#.to_owned(),
        }
    }

    #[test]
    fn an_in_progress_item_uses_the_attribute_constants_and_numeric_times() {
        let item = IdempotencyItem::in_progress("send:k", "h1", now())
            .into_item()
            .expect("item");
        let n = |v: i64| Some(AttributeValue::N(v.to_string()));
        let text = |v: &str| Some(AttributeValue::S(v.to_owned()));
        assert_eq!(item.get(keys::PK).cloned(), text("IDEM#send:k"));
        assert_eq!(item.get(keys::SK).cloned(), text(keys::IDEMPOTENCY_SK));
        assert_eq!(item.get(keys::REQUEST_HASH).cloned(), text("h1"));
        assert_eq!(item.get(keys::STATE).cloned(), text(keys::STATE_IN_PROGRESS));
        assert_eq!(item.get(keys::LEASE_UNTIL).cloned(), n(1_772_366_400 + 60));
        assert_eq!(item.get(keys::EXPIRES_AT).cloned(), n(1_772_366_400 + 86_400));
        assert!(!item.contains_key(keys::STATUS) && !item.contains_key(keys::BODY));
    }

    #[test]
    fn a_completed_item_carries_the_response_and_reads_back() {
        let item = IdempotencyItem::completed("send:k", "h1", &saved(), now())
            .into_item()
            .expect("item");
        assert_eq!(item.get(keys::STATUS), Some(&AttributeValue::N("202".to_owned())));
        assert!(!item.contains_key(keys::LEASE_UNTIL));
        let record = IdempotencyItem::read(item).expect("read back");
        assert!(!record.claimable(now().timestamp() + 86_400));
        assert!(record.claimable(now().timestamp() + 86_401));
        assert_eq!(record.verdict("h1").expect("verdict"), Begin::Replay(saved()));
    }

    #[test]
    fn a_held_record_answers_by_hash_then_state() {
        let running = IdempotencyItem::in_progress("k", "h1", now());
        assert!(!running.claimable(now().timestamp() + 60));
        assert!(running.claimable(now().timestamp() + 61));
        assert_eq!(running.verdict("h1").expect("verdict"), Begin::InProgress);
        let running = IdempotencyItem::in_progress("k", "h1", now());
        assert_eq!(running.verdict("h2").expect("verdict"), Begin::Mismatch);
        let done = IdempotencyItem::completed("k", "h1", &saved(), now());
        assert_eq!(done.verdict("h2").expect("verdict"), Begin::Mismatch);
    }

    #[test]
    fn a_completed_record_without_a_response_is_corrupt() {
        let mut done = IdempotencyItem::completed("k", "h1", &saved(), now());
        done.body = None;
        assert!(matches!(done.verdict("h1"), Err(StoreError::Corrupt(_))));
        let mut odd = IdempotencyItem::in_progress("k", "h1", now());
        odd.state = "paused".to_owned();
        assert!(matches!(odd.verdict("h1"), Err(StoreError::Corrupt(_))));
    }
}
