//! `CampaignStore` on `DynamoMessageStore`. Items (keys in `keys`):
//! - the campaign, `CAMPAIGN#<id>` / `META`, on `gsi1` as `CAMPAIGNS` / `<id>` (the list, by id);
//! - the enrolment, `ENR#<id>` / `META`, on `gsi1` as `ENRS#<phone>` / `<id>` (a phone's
//!   enrolments) and, while something is due, on `gsi2` as `EDUE#<shard>` / `<due_at>#<id>` (the
//!   sharded due index: `due_enrolments` queries each shard for `gsi2sk <= <now>#~`);
//! - the pair pointer, `ENRPAIR#<campaign>#<phone>` / `ENRPAIR` → `enrolment_id`, put with the
//!   enrolment in one TransactWriteItems, both `attribute_not_exists(pk)`: one enrolment per lead
//!   and campaign, however many requests race.
//!
//! Updates are one conditional PutItem on `version` (the whole item, so the due-index attributes
//! follow the record). No Scan.

use super::conversations::build;
use super::items::Item;
use super::keys;
use super::store::{classify, DynamoMessageStore};
use crate::domain::{Campaign, Enrolment, EnrolmentId, PhoneNumber};
use crate::ports::message_store::Page;
use crate::ports::{CampaignStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Items read per Query page.
const PAGE_SIZE: i32 = 100;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn with_doc<T: Serialize>(mut item: Item, v: &T, what: &str) -> Result<Item, StoreError> {
    let doc = serde_json::to_string(v)
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context(format!("encode {what}"))))?;
    item.insert(keys::DOC.to_owned(), s(doc));
    Ok(item)
}

fn read_doc<T: DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let doc = item
        .get(keys::DOC)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{what} item without doc")))?;
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what} item: {e}")))
}

fn enrolment_item(e: &Enrolment) -> Result<Item, StoreError> {
    let mut item = with_doc(keys::enrolment_item_keys(e), e, "enrolment")?;
    item.insert(keys::VERSION.to_owned(), AttributeValue::N(e.version.to_string()));
    Ok(item)
}

impl DynamoMessageStore {
    /// Every item of `gsi1` partition `pk`, in key order, from `start`, up to `limit` (all when `None`).
    async fn gsi1_items(
        &self,
        pk: String,
        mut start: Option<Item>,
        limit: Option<usize>,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let mut out = Vec::new();
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .limit(PAGE_SIZE)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify(e, "Query"))?;
            for item in page.items() {
                if limit.is_some_and(|l| out.len() == l) {
                    return Ok((out, true));
                }
                out.push(item.clone());
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((out, false)),
            }
        }
    }
}

#[async_trait]
impl CampaignStore for DynamoMessageStore {
    async fn put_campaign(&self, c: &Campaign, create: bool) -> Result<(), StoreError> {
        let item = with_doc(keys::campaign_item_keys(&c.id), c, "campaign")?;
        if create {
            self.put_if(item, "attribute_not_exists(#pk)", &[("#pk", keys::PK)], Vec::new())
                .await
        } else {
            self.put(item).await
        }
    }

    async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        self.get_consistent(keys::campaign_key(id))
            .await?
            .map(|i| read_doc(&i, "campaign"))
            .transpose()
    }

    /// Query of `gsi1` `CAMPAIGNS` in id order; the cursor is the last id (its key is rebuilt).
    async fn list_campaigns(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Campaign>, StoreError> {
        let start = cursor
            .map(|c| {
                crate::domain::campaign::validate_campaign_id(c)
                    .map(|()| keys::campaign_item_keys(c))
                    .map_err(|_| StoreError::Corrupt("listing cursor is not readable".to_owned()))
            })
            .transpose()?;
        let (items, more) = self
            .gsi1_items(keys::CAMPAIGNS_GSI1PK.to_owned(), start, Some(limit))
            .await?;
        let items = items
            .iter()
            .map(|i| read_doc(i, "campaign"))
            .collect::<Result<Vec<Campaign>, _>>()?;
        let next_cursor = if more { items.last().map(|c| c.id.clone()) } else { None };
        Ok(Page { items, next_cursor })
    }

    async fn create_enrolment(&self, e: &Enrolment) -> Result<(), StoreError> {
        let make = || {
            let put = Put::builder()
                .table_name(self.table())
                .set_item(Some(enrolment_item(e)?))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK);
            let mut pair = keys::enrolment_pair_key(&e.campaign_id, &e.lead.phone);
            pair.insert(keys::ENROLMENT_ID.to_owned(), s(e.id.as_str()));
            let pointer = Put::builder()
                .table_name(self.table())
                .set_item(Some(pair))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK);
            Ok(vec![
                TransactWriteItem::builder().put(build(put.build())?).build(),
                TransactWriteItem::builder().put(build(pointer.build())?).build(),
            ])
        };
        match self.transact_retrying(make).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::ConditionFailed),
        }
    }

    async fn get_enrolment(&self, id: &EnrolmentId) -> Result<Option<Enrolment>, StoreError> {
        self.get_consistent(keys::enrolment_key(id))
            .await?
            .map(|i| read_doc(&i, "enrolment"))
            .transpose()
    }

    /// GetItem of the pair pointer, then of the enrolment it names (both consistent).
    async fn enrolment_of(&self, campaign_id: &str, phone: &PhoneNumber) -> Result<Option<Enrolment>, StoreError> {
        let key = keys::enrolment_pair_key(campaign_id, phone);
        let Some(id) = self
            .pointer_target(key, keys::ENROLMENT_ID, "enrolment", EnrolmentId::parse)
            .await?
        else {
            return Ok(None);
        };
        self.get_enrolment(&id).await
    }

    async fn update_enrolment(&self, e: &Enrolment) -> Result<(), StoreError> {
        let previous = e.version.checked_sub(1).ok_or(StoreError::ConditionFailed)?;
        self.put_if(
            enrolment_item(e)?,
            "attribute_exists(#pk) AND #version = :previous",
            &[("#pk", keys::PK), ("#version", keys::VERSION)],
            vec![(":previous", AttributeValue::N(previous.to_string()))],
        )
        .await
    }

    /// Query of `gsi1` `ENRS#<phone>`.
    async fn enrolments_of_phone(&self, phone: &PhoneNumber) -> Result<Vec<Enrolment>, StoreError> {
        let (items, _) = self.gsi1_items(keys::enrolments_gsi1pk(phone), None, None).await?;
        items.iter().map(|i| read_doc(i, "enrolment")).collect()
    }

    /// One Query per shard of `gsi2` (`EDUE#<shard>`, `gsi2sk <= <now>#~`, up to `limit` each),
    /// merged by due time. Reads grow with what is due, not with how many enrolments exist.
    async fn due_enrolments(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Enrolment>, StoreError> {
        let upper = keys::due_gsi2sk_upper_bound(&now);
        let per_shard = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let mut found: Vec<(String, Enrolment)> = Vec::new();
        for shard in 0..keys::DUE_SHARDS {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .index_name(keys::GSI2)
                .key_condition_expression("#pk = :pk AND #sk <= :upper")
                .expression_attribute_names("#pk", keys::GSI2PK)
                .expression_attribute_names("#sk", keys::GSI2SK)
                .expression_attribute_values(":pk", s(keys::enrolment_due_gsi2pk(shard)))
                .expression_attribute_values(":upper", s(upper.clone()))
                .limit(per_shard)
                .send()
                .await
                .map_err(|e| classify(e, "Query"))?;
            for item in page.items() {
                let sk = item
                    .get(keys::GSI2SK)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                found.push((sk, read_doc(item, "enrolment")?));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().take(limit).map(|(_, e)| e).collect())
    }
}
