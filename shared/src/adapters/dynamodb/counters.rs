//! `CounterStore` on `DynamoMessageStore`: counters, one-time claims and small JSON documents as
//! items of the single table.
//!
//! Item shapes are in `keys.rs` (counter `CNT#<key>`/`CNT`, claim `CLAIM#<key>`/`CLAIM`,
//! document `DOC#<key>`/`DOC`); a claim's `expires_at` is `until` rounded up to the second.
//!
//! DynamoDB deletes expired items only eventually (typically within two days), so every read
//! filters them: an item whose `expires_at` is before the second of the caller's `now` is treated
//! as absent,
//! exactly like `SqliteStore`. Counter adds honour expiry atomically with conditional writes (an
//! add to an expired counter restarts it from 0); claims compare `until` with the caller's `now`
//! in the condition.
//! Nothing here scans the table. Error mapping is store.rs's: a lost condition is
//! `ConditionFailed` (handled here where it is an answer), throttling codes are `Throttled`,
//! anything else `Unexpected` with the SDK error kept whole as its source.

use super::keys::{claim_key, counter_key, counter_pk, doc_key, EXPIRES_AT, PK};
use super::DynamoMessageStore;
use crate::ports::{epoch_nanos, CounterStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// Counter value (a Number). A DynamoDB reserved word: always use a placeholder.
const VALUE: &str = "value";
/// Until when a claim is held (a Number, epoch millis). A reserved word too.
const UNTIL: &str = "until";
/// A document's JSON text (a String).
const DOC: &str = "doc";

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

/// `expires_at` of a claim item: `until` rounded up to the whole second, so TTL never deletes a
/// claim that is still held.
fn claim_expires_at(until: DateTime<Utc>) -> i64 {
    until.timestamp_millis().div_euclid(1000) + i64::from(until.timestamp_millis().rem_euclid(1000) > 0)
}

// ---- the port -----------------------------------------------------------------------------------

/// The error code DynamoDB gives a conditional write that lost.
const CONDITION_FAILED: &str = "ConditionalCheckFailedException";
/// Error codes that mean "slow down": safe to retry later (the same list as store.rs).
const THROTTLED: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];
/// Rounds of "update lost because the counter had expired, restart lost to another writer"
/// before `add` gives up. Each lost round means another writer succeeded, so two are typical.
const ADD_ATTEMPTS: usize = 8;
/// Most keys one BatchGetItem may ask for.
const BATCH_GET_LIMIT: usize = 100;

/// Map an SDK error onto the port's error, as store.rs does.
fn classify<E, R>(err: SdkError<E, R>, operation: &'static str) -> StoreError
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

/// A Number attribute as an `i64`; missing is `None`, anything unreadable `Corrupt`.
fn number(item: &HashMap<String, AttributeValue>, name: &str, what: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{what}: {name} is not a 64-bit integer"))),
        Some(_) => Err(StoreError::Corrupt(format!("{what}: {name} is not a Number"))),
    }
}

/// Whether an item has expired at `now_s` (epoch seconds): its `expires_at` is before that second.
fn expired(item: &HashMap<String, AttributeValue>, now_s: i64, what: &str) -> Result<bool, StoreError> {
    Ok(number(item, EXPIRES_AT, what)?.is_some_and(|at| at < now_s))
}

/// The value of a counter item read at `now_s`: expired counts as absent, so 0.
fn counter_value(item: &HashMap<String, AttributeValue>, now_s: i64, what: &str) -> Result<i64, StoreError> {
    if expired(item, now_s, what)? {
        return Ok(0);
    }
    number(item, VALUE, what)?.ok_or_else(|| StoreError::Corrupt(format!("{what}: no {VALUE}")))
}

/// The document of a document item read at `now_s`: expired is `None`.
fn decode_doc(
    item: &HashMap<String, AttributeValue>,
    now_s: i64,
    what: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    if expired(item, now_s, what)? {
        return Ok(None);
    }
    match item.get(DOC) {
        Some(AttributeValue::S(json)) => serde_json::from_str(json)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))),
        _ => Err(StoreError::Corrupt(format!("{what}: {DOC} is missing or not a String"))),
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl DynamoMessageStore {
    /// UpdateItem `ADD value :by` (and `SET expires_at`) if the counter is absent, has no expiry
    /// or has not expired; returns the new value.
    async fn add_to_live(&self, key: &str, by: i64, expires_at: Option<i64>, now_s: i64) -> Result<i64, StoreError> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(counter_key(key)))
            .update_expression(if expires_at.is_some() {
                "ADD #value :by SET #expires_at = :expires_at"
            } else {
                "ADD #value :by"
            })
            .condition_expression(
                "attribute_not_exists(#pk) OR attribute_not_exists(#expires_at) OR #expires_at >= :now",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#value", VALUE)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":by", n(by))
            .expression_attribute_values(":now", n(now_s))
            .return_values(ReturnValue::UpdatedNew);
        if let Some(at) = expires_at {
            update = update.expression_attribute_values(":expires_at", n(at));
        }
        let out = update.send().await.map_err(|e| classify(e, "UpdateItem"))?;
        let what = format!("counter {key}");
        number(&out.attributes.unwrap_or_default(), VALUE, &what)?
            .ok_or_else(|| StoreError::Corrupt(format!("{what}: UpdateItem returned no {VALUE}")))
    }

    /// PutItem a counter restarted at `by`, only over an expired one (an item whose
    /// `expires_at` is before `now_s`; a missing item or attribute fails the condition).
    async fn restart_expired(&self, key: &str, by: i64, expires_at: Option<i64>, now_s: i64) -> Result<(), StoreError> {
        let mut item = counter_key(key);
        item.insert(VALUE.to_owned(), n(by));
        if let Some(at) = expires_at {
            item.insert(EXPIRES_AT.to_owned(), n(at));
        }
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("#expires_at < :now")
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":now", n(now_s))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "PutItem"))
    }

    /// One BatchGetItem of up to 100 distinct counter keys (ConsistentRead); returns the items
    /// found.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .projection_expression("#pk, #value, #expires_at")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#value", VALUE)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .build()
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("build BatchGetItem request")))?;
        self.batch_get_items(request).await
    }
}

#[async_trait]
impl CounterStore for DynamoMessageStore {
    /// UpdateItem `ADD` conditioned on the counter being live (or absent). If that condition
    /// fails, the counter has expired but TTL has not deleted it yet: PutItem `value = :by`
    /// conditioned on it still being expired. If that fails too, another writer restarted it (or
    /// TTL removed it) in between, so try again from the top, a bounded number of times.
    async fn add(
        &self,
        key: &str,
        by: i64,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let expires_at = expires_at.map(|t| t.timestamp());
        let now_s = now.timestamp();
        for _ in 0..ADD_ATTEMPTS {
            match self.add_to_live(key, by, expires_at, now_s).await {
                Err(StoreError::ConditionFailed) => {}
                done => return done,
            }
            match self.restart_expired(key, by, expires_at, now_s).await {
                Ok(()) => return Ok(by),
                Err(StoreError::ConditionFailed) => {}
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "counter {key} changed under every one of {ADD_ATTEMPTS} attempts to add to it"
        )))
    }

    /// UpdateItem `SET value = :zero`: one write, no read, so never below 0 (expiry kept).
    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(counter_key(key)))
            .update_expression("SET #value = :zero")
            .expression_attribute_names("#value", VALUE)
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "UpdateItem"))
    }

    /// BatchGetItem (ConsistentRead) of the distinct keys in chunks of 100; expired items read 0.
    async fn values(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let now_s = now.timestamp();
        let mut distinct: Vec<&str> = keys.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut by_pk: HashMap<String, i64> = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(BATCH_GET_LIMIT) {
            let items = self.batch_get(chunk.iter().map(|k| counter_key(k)).collect()).await?;
            for item in items {
                let Some(AttributeValue::S(pk)) = item.get(PK) else {
                    return Err(StoreError::Corrupt("counter item without a string pk".to_owned()));
                };
                let value = counter_value(&item, now_s, &format!("counter item {pk}"))?;
                by_pk.insert(pk.clone(), value);
            }
        }
        Ok(keys
            .iter()
            .map(|key| by_pk.get(&counter_pk(key)).copied().unwrap_or(0))
            .collect())
    }

    /// PutItem with `attribute_not_exists(pk) OR until < :now`: written means taken, a lost
    /// condition means someone holds it.
    async fn claim(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut item = claim_key(key);
        item.insert(UNTIL.to_owned(), n(until.timestamp_millis()));
        item.insert(EXPIRES_AT.to_owned(), n(claim_expires_at(until)));
        let put = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #until < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#until", UNTIL)
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await;
        match put.map_err(|e| classify(e, "PutItem")) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// PutItem of the whole item (replacing any previous document and its expiry).
    async fn put_doc(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(doc)
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode document")))?;
        let mut item = doc_key(key);
        item.insert(DOC.to_owned(), s(json));
        if let Some(at) = expires_at {
            item.insert(EXPIRES_AT.to_owned(), n(at.timestamp()));
        }
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "PutItem"))
    }

    /// GetItem with ConsistentRead; an expired item is `None`, an unreadable one `Corrupt`.
    async fn get_doc(&self, key: &str, now: DateTime<Utc>) -> Result<Option<serde_json::Value>, StoreError> {
        let now_s = now.timestamp();
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(doc_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(e, "GetItem"))?;
        match out.item {
            Some(item) => decode_doc(&item, now_s, &format!("document {key}")),
            None => Ok(None),
        }
    }

    /// The counter item `schedule#<key>` holds the next free slot (epoch nanoseconds). Busy
    /// schedule: UpdateItem `SET value = value + :gap` if `:now <= value < :deadline`, returning
    /// the old value, the reserved slot (no read first, and concurrent adds never collide). Idle
    /// (absent or passed): UpdateItem `SET value = :now + :gap` if absent or `value < :now`, the
    /// slot is `now`. If both lose, another writer moved it in between, or it is full until the
    /// deadline: a consistent read tells which, and a full schedule answers `None`.
    async fn reserve_slot(
        &self,
        key: &str,
        now: DateTime<Utc>,
        gap: Duration,
        deadline: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if now >= deadline {
            return Ok(None);
        }
        let item_key = counter_key(&format!("schedule#{key}"));
        let gap_ns = i64::try_from(gap.as_nanos()).unwrap_or(i64::MAX);
        let (now_ns, deadline_ns) = (epoch_nanos(now)?, epoch_nanos(deadline)?);
        let expires = n(deadline.timestamp() + 3600);
        let at = |ns: i64| Ok::<_, StoreError>(DateTime::from_timestamp_nanos(ns));
        for _ in 0..ADD_ATTEMPTS {
            let busy = self
                .client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(item_key.clone()))
                .update_expression("SET #value = #value + :gap, #expires_at = :expires_at")
                .condition_expression("#value >= :now AND #value < :deadline")
                .expression_attribute_names("#value", VALUE)
                .expression_attribute_names("#expires_at", EXPIRES_AT)
                .expression_attribute_values(":gap", n(gap_ns))
                .expression_attribute_values(":now", n(now_ns))
                .expression_attribute_values(":deadline", n(deadline_ns))
                .expression_attribute_values(":expires_at", expires.clone())
                .return_values(ReturnValue::UpdatedOld)
                .send()
                .await
                .map_err(|e| classify(e, "UpdateItem"));
            match busy {
                Ok(out) => {
                    let old = number(&out.attributes.unwrap_or_default(), VALUE, "schedule")?
                        .ok_or_else(|| StoreError::Corrupt(format!("schedule {key}: no {VALUE}")))?;
                    return at(old).map(Some);
                }
                Err(StoreError::ConditionFailed) => {}
                Err(e) => return Err(e),
            }
            let idle = self
                .client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(item_key.clone()))
                .update_expression("SET #value = :next, #expires_at = :expires_at")
                .condition_expression("attribute_not_exists(#value) OR #value < :now")
                .expression_attribute_names("#value", VALUE)
                .expression_attribute_names("#expires_at", EXPIRES_AT)
                .expression_attribute_values(":next", n(now_ns.saturating_add(gap_ns)))
                .expression_attribute_values(":now", n(now_ns))
                .expression_attribute_values(":expires_at", expires.clone())
                .send()
                .await
                .map_err(|e| classify(e, "UpdateItem"));
            match idle {
                Ok(_) => return at(now_ns).map(Some),
                Err(StoreError::ConditionFailed) => {}
                Err(e) => return Err(e),
            }
            let read = self
                .client()
                .get_item()
                .table_name(self.table())
                .set_key(Some(item_key.clone()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| classify(e, "GetItem"))?;
            let next = number(&read.item.unwrap_or_default(), VALUE, "schedule")?;
            if next.is_some_and(|next| next >= deadline_ns) {
                return Ok(None);
            }
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "schedule {key} changed under every one of {ADD_ATTEMPTS} attempts to reserve a slot"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn keys_have_the_documented_shapes() {
        use super::super::keys::{claim_pk, doc_pk, SK};
        assert_eq!(counter_pk("metrics#2026-03-01T10"), "CNT#metrics#2026-03-01T10");
        assert_eq!(claim_pk("alert:queue"), "CLAIM#alert:queue");
        assert_eq!(doc_pk("heartbeat"), "DOC#heartbeat");
        assert_eq!(counter_key("k")[SK], AttributeValue::S("CNT".to_owned()));
        assert_eq!(claim_key("k")[SK], AttributeValue::S("CLAIM".to_owned()));
        assert_eq!(doc_key("k")[SK], AttributeValue::S("DOC".to_owned()));
    }

    #[test]
    fn a_claim_expires_no_earlier_than_its_until() {
        let at = |ms| DateTime::from_timestamp_millis(ms).expect("time");
        assert_eq!(claim_expires_at(at(10_000)), 10);
        assert_eq!(claim_expires_at(at(10_001)), 11);
        assert_eq!(claim_expires_at(at(10_999)), 11);
        assert_eq!(claim_expires_at(at(-1)), 0);
    }

    #[test]
    fn an_expired_counter_reads_zero_and_a_live_one_its_value() {
        let live = item(&[(VALUE, n(7)), (EXPIRES_AT, n(100))]);
        assert_eq!(counter_value(&live, 100, "c").expect("value"), 7);
        assert_eq!(counter_value(&live, 101, "c").expect("value"), 0);
        let forever = item(&[(VALUE, n(-3))]);
        assert_eq!(counter_value(&forever, i64::MAX, "c").expect("value"), -3);
    }

    #[test]
    fn unreadable_counters_are_corrupt() {
        for bad in [
            item(&[]),
            item(&[(VALUE, AttributeValue::S("7".to_owned()))]),
            item(&[(VALUE, AttributeValue::N("1e100".to_owned()))]),
            item(&[(VALUE, n(1)), (EXPIRES_AT, AttributeValue::S("soon".to_owned()))]),
        ] {
            assert!(
                matches!(counter_value(&bad, 0, "c"), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn documents_decode_unless_expired_or_unreadable() {
        let doc = item(&[
            (DOC, AttributeValue::S(r#"{"a":[1,2]}"#.to_owned())),
            (EXPIRES_AT, n(50)),
        ]);
        assert_eq!(
            decode_doc(&doc, 50, "d").expect("doc"),
            Some(serde_json::json!({"a": [1, 2]}))
        );
        assert_eq!(decode_doc(&doc, 51, "d").expect("doc"), None);
        for bad in [
            item(&[(DOC, AttributeValue::S("{not json".to_owned()))]),
            item(&[(DOC, n(1))]),
            item(&[]),
        ] {
            assert!(
                matches!(decode_doc(&bad, 0, "d"), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_are_classified_like_the_message_store() {
        let err = |code: &str| {
            SdkError::<UpdateItemError, ()>::service_error(
                UpdateItemError::generic(ErrorMetadata::builder().code(code).build()),
                (),
            )
        };
        assert!(matches!(
            classify(err(CONDITION_FAILED), "UpdateItem"),
            StoreError::ConditionFailed
        ));
        for code in THROTTLED {
            assert!(matches!(classify(err(code), "UpdateItem"), StoreError::Throttled));
        }
        let StoreError::Unexpected(inner) = classify(err("ValidationException"), "UpdateItem") else {
            panic!("expected Unexpected")
        };
        assert!(inner
            .chain()
            .any(|e| e.downcast_ref::<SdkError<UpdateItemError, ()>>().is_some()));
    }
}
