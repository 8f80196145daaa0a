//! `ConsentStore` on `DynamoMessageStore`: opt-outs (`OPTOUT#<e164>`) and per-recipient send
//! slots (`SLOTS#<e164>`), with their item shapes.
//!
//! An opt-out is written once (`attribute_not_exists(pk)`), so the first record stays. Send slots
//! are one item per recipient holding the send times still inside the window; taking a slot is an
//! optimistic read-modify-write guarded by the item's `version`, retried on a lost race, so
//! concurrent Lambdas can never take more than the limit between them.

use super::items::{encode_failed, Item};
use super::keys;
use super::store::DynamoMessageStore;
use crate::domain::{ConsentEvidence, PhoneNumber};
use crate::ports::{ConsentStore, OptOut, SendCheck, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::time::Duration;

/// Read-modify-write rounds `take_send_slot` tries before it gives up as `Throttled`.
const SLOT_ATTEMPTS: u32 = 20;
/// Bounds of the random pause between two rounds, in milliseconds: spreads competing writers out.
const SLOT_BACKOFF_MS: std::ops::RangeInclusive<u64> = 5..=30;

/// An opt-out: why and when a number asked not to be texted.
#[derive(Serialize, Deserialize)]
struct OptOutItem {
    pk: String,
    sk: String,
    reason: String,
    /// RFC 3339.
    at: String,
}

fn opt_out_item(phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<Item, StoreError> {
    to_item(OptOutItem {
        pk: keys::opt_out_pk(phone),
        sk: keys::OPT_OUT_SK.to_owned(),
        reason: reason.to_owned(),
        at: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    })
    .map_err(encode_failed("encode opt-out item"))
}

fn read_opt_out(phone: &PhoneNumber, item: Item) -> Result<OptOut, StoreError> {
    let item: OptOutItem = from_item(item).map_err(|e| StoreError::Corrupt(format!("opt-out item: {e}")))?;
    if item.pk != keys::opt_out_pk(phone) || item.sk != keys::OPT_OUT_SK {
        return Err(StoreError::Corrupt(format!(
            "opt-out item {} read for another key",
            item.pk
        )));
    }
    let at = DateTime::parse_from_rfc3339(&item.at)
        .map_err(|e| StoreError::Corrupt(format!("opt-out item {}: {e}", item.pk)))?
        .with_timezone(&Utc);
    Ok(OptOut {
        phone: phone.clone(),
        reason: item.reason,
        at,
    })
}

/// One consent-history entry: the evidence's fields beside the keys.
#[derive(Serialize, Deserialize)]
struct ConsentItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    evidence: ConsentEvidence,
}

/// A recipient's recent sends: epoch milliseconds, the compare-and-set `version`, and the TTL.
#[derive(Serialize, Deserialize)]
struct SendSlotsItem {
    pk: String,
    sk: String,
    sends: Vec<i64>,
    version: u64,
    expires_at: i64,
}

fn read_send_slots(item: Item) -> Result<SendSlotsItem, StoreError> {
    from_item(item).map_err(|e| StoreError::Corrupt(format!("send-slot item: {e}")))
}

/// Sleep a random 5–30 ms before the next round of a lost race.
async fn backoff() {
    let pause = rand::thread_rng().gen_range(SLOT_BACKOFF_MS);
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

impl DynamoMessageStore {
    /// A recipient's send slots as stored (consistent read), if any.
    async fn read_send_slots_of(&self, phone: &PhoneNumber) -> Result<Option<SendSlotsItem>, StoreError> {
        self.get_consistent(keys::send_slots_key(phone))
            .await?
            .map(read_send_slots)
            .transpose()
    }

    /// The write of one round of `take_send_slot` on `stored` (what the round read):
    /// `Some(granted)`, or `None` when another writer changed the item since the read.
    async fn try_put_send_slot(
        &self,
        phone: &PhoneNumber,
        stored: Option<SendSlotsItem>,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<Option<bool>, StoreError> {
        let (mut sends, version) = stored.map_or((Vec::new(), 0), |s| (s.sends, s.version));
        let now_ms = now.timestamp_millis();
        let since = now_ms.saturating_sub(window.num_milliseconds());
        sends.retain(|at| *at > since);
        if u32::try_from(sends.len()).unwrap_or(u32::MAX) >= limit {
            return Ok(Some(false));
        }
        sends.push(now_ms);
        let item = to_item(SendSlotsItem {
            pk: keys::send_slots_pk(phone),
            sk: keys::SEND_SLOTS_SK.to_owned(),
            sends,
            version: version.saturating_add(1),
            expires_at: keys::send_slots_expires_at(now, window),
        })
        .map_err(encode_failed("encode send-slot item"))?;
        let written = self
            .put_if(
                item,
                "attribute_not_exists(#pk) OR #version = :read",
                &[("#pk", keys::PK), ("#version", keys::VERSION)],
                vec![(":read", AttributeValue::N(version.to_string()))],
            )
            .await;
        match written {
            Ok(()) => Ok(Some(true)),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Rounds of read-modify-write on the send slots, the first on `first_read`.
    async fn take_send_slot_from(
        &self,
        phone: &PhoneNumber,
        first_read: Option<SendSlotsItem>,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let mut stored = first_read;
        for round in 0..SLOT_ATTEMPTS {
            if round > 0 {
                backoff().await;
                stored = self.read_send_slots_of(phone).await?;
            }
            if let Some(granted) = self.try_put_send_slot(phone, stored.take(), now, window, limit).await? {
                return Ok(granted);
            }
        }
        tracing::warn!(
            rounds = SLOT_ATTEMPTS,
            "send slot still contended; giving up as throttled"
        );
        Err(StoreError::Throttled)
    }
}

#[async_trait]
impl ConsentStore for DynamoMessageStore {
    /// PutItem with `attribute_not_exists(pk)`; a lost condition means an opt-out exists, which
    /// is kept as it is.
    async fn opt_out(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let put = self.put_if(
            opt_out_item(phone, reason, at)?,
            "attribute_not_exists(#pk)",
            &[("#pk", keys::PK)],
            Vec::new(),
        );
        match put.await {
            Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// DeleteItem of `OPTOUT#<e164>`, unconditionally (removing nothing is fine).
    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        self.delete_if(keys::opt_out_key(phone), None, &[], Vec::new()).await
    }

    /// PutItem of `CONSENT#<e164>` / `EVIDENCE#<dedupe key>` with `attribute_not_exists(pk)`: a
    /// lost condition is the same entry recorded before.
    async fn append_consent(&self, phone: &PhoneNumber, evidence: &ConsentEvidence) -> Result<bool, StoreError> {
        let item = to_item(ConsentItem {
            pk: keys::consent_pk(phone),
            sk: keys::consent_sk(evidence),
            evidence: evidence.clone(),
        })
        .map_err(encode_failed("encode consent item"))?;
        match self
            .put_if(item, "attribute_not_exists(#pk)", &[("#pk", keys::PK)], Vec::new())
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Query of `CONSENT#<e164>` with ConsistentRead, every page; sorted by time here (the sort
    /// key orders by dedupe key, not time).
    async fn consent_history(&self, phone: &PhoneNumber) -> Result<Vec<ConsentEvidence>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", AttributeValue::S(keys::consent_pk(phone)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| super::store::classify(e, "Query"))?;
            for item in page.items.unwrap_or_default() {
                let item: ConsentItem =
                    from_item(item).map_err(|e| StoreError::Corrupt(format!("consent item: {e}")))?;
                out.push(item.evidence);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    /// GetItem of `OPTOUT#<e164>` with ConsistentRead.
    async fn opt_out_of(&self, phone: &PhoneNumber) -> Result<Option<OptOut>, StoreError> {
        self.get_consistent(keys::opt_out_key(phone))
            .await?
            .map(|item| read_opt_out(phone, item))
            .transpose()
    }

    /// Consistent GetItem of `SLOTS#<e164>`; sends at or before `now - window` are dropped; if
    /// `limit` remain the answer is `false` and nothing is written; otherwise `now` is appended
    /// and the item put back with `version + 1` and `expires_at` = end of the window, on
    /// condition `attribute_not_exists(pk) OR version = :read`. A lost condition (someone took a
    /// slot meanwhile) repeats the whole round after 5–30 ms, up to 20 rounds, then `Throttled`.
    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let stored = self.read_send_slots_of(phone).await?;
        self.take_send_slot_from(phone, stored, now, window, limit).await
    }

    /// One consistent BatchGetItem reads the opt-out and the send slots together (the default
    /// reads them one after the other: a request more per send); an opt-out answers `OptedOut`
    /// and takes no slot, otherwise the slot is taken as `take_send_slot` does, its first round
    /// on what was read.
    async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<SendCheck, StoreError> {
        let request = KeysAndAttributes::builder()
            .keys(keys::opt_out_key(phone))
            .keys(keys::send_slots_key(phone))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("build BatchGetItem request")))?;
        let mut slots = None;
        for item in self.batch_get_items(request).await? {
            match item.get(keys::SK) {
                Some(AttributeValue::S(sk)) if sk == keys::OPT_OUT_SK => {
                    return Ok(SendCheck::OptedOut(read_opt_out(phone, item)?));
                }
                Some(AttributeValue::S(sk)) if sk == keys::SEND_SLOTS_SK => slots = Some(read_send_slots(item)?),
                _ => {
                    return Err(StoreError::Corrupt(
                        "consent read returned an item of another key".to_owned(),
                    ))
                }
            }
        }
        Ok(if self.take_send_slot_from(phone, slots, now, window, limit).await? {
            SendCheck::Granted
        } else {
            SendCheck::Limited
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse_e164("+14155550100").expect("number")
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00.5Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_opt_out_item_uses_the_attribute_constants_and_reads_back() {
        let item = opt_out_item(&phone(), "keyword_stop", at()).expect("item");
        assert_eq!(
            item.get(keys::PK),
            Some(&AttributeValue::S("OPTOUT#+14155550100".to_owned()))
        );
        assert_eq!(
            item.get(keys::SK),
            Some(&AttributeValue::S(keys::OPT_OUT_SK.to_owned()))
        );
        assert_eq!(
            item.get(keys::REASON),
            Some(&AttributeValue::S("keyword_stop".to_owned()))
        );
        assert_eq!(
            item.get(keys::AT),
            Some(&AttributeValue::S("2026-03-01T12:00:00.500Z".to_owned()))
        );
        let back = read_opt_out(&phone(), item).expect("read back");
        assert_eq!(
            back,
            OptOut {
                phone: phone(),
                reason: "keyword_stop".to_owned(),
                at: at()
            }
        );
    }

    #[test]
    fn an_opt_out_item_with_a_bad_time_or_key_is_corrupt() {
        let mut item = opt_out_item(&phone(), "keyword_stop", at()).expect("item");
        item.insert(keys::AT.to_owned(), AttributeValue::S("yesterday".to_owned()));
        assert!(matches!(read_opt_out(&phone(), item), Err(StoreError::Corrupt(_))));

        let item = opt_out_item(&phone(), "keyword_stop", at()).expect("item");
        let other = PhoneNumber::parse_e164("+14155550199").expect("number");
        assert!(matches!(read_opt_out(&other, item), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_send_slot_item_holds_numbers_and_a_numeric_version_and_ttl() {
        let item = to_item(SendSlotsItem {
            pk: keys::send_slots_pk(&phone()),
            sk: keys::SEND_SLOTS_SK.to_owned(),
            sends: vec![1, 2],
            version: 3,
            expires_at: 4,
        })
        .expect("item");
        assert_eq!(
            item.get(keys::SENDS),
            Some(&AttributeValue::L(vec![
                AttributeValue::N("1".to_owned()),
                AttributeValue::N("2".to_owned())
            ]))
        );
        assert_eq!(item.get(keys::VERSION), Some(&AttributeValue::N("3".to_owned())));
        assert_eq!(item.get(keys::EXPIRES_AT), Some(&AttributeValue::N("4".to_owned())));
        let back = read_send_slots(item).expect("read back");
        assert_eq!((back.sends, back.version), (vec![1, 2], 3));
    }
}
