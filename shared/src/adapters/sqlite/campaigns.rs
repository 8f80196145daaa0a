//! `CampaignStore` on `SqliteStore` (tables `campaigns` and `enrolments` in `schema`). Records are
//! JSON in `doc`; `UNIQUE (campaign_id, phone)` refuses a second enrolment of a lead in a
//! campaign, as the DynamoDB adapter's pair pointer does; `due_at` (derived from the record on
//! every write) is the due index, read in time order with `LIMIT`.

use super::conn::sql_error;
use super::{time, SqliteStore};
use crate::domain::{Campaign, Enrolment, EnrolmentId, PhoneNumber};
use crate::ports::message_store::Page;
use crate::ports::{CampaignStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn encode<T: Serialize>(v: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context(format!("encode {what}"))))
}

fn decode<T: DeserializeOwned>(doc: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what} document: {e}")))
}

fn constraint(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error() {
        Some(e)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::ConditionFailed
        }
        _ => sql_error(err),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteStore {
    async fn one_doc(&self, sql: &'static str, key: Vec<String>) -> Result<Option<String>, StoreError> {
        self.run(move |conn| {
            conn.query_row(sql, rusqlite::params_from_iter(key.iter()), |r| r.get(0))
                .optional()
                .map_err(sql_error)
        })
        .await
    }

    async fn docs(&self, sql: &'static str, key: Vec<String>) -> Result<Vec<String>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(key.iter()), |r| r.get(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(sql_error)?;
            Ok(rows)
        })
        .await
    }
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn put_campaign(&self, c: &Campaign, create: bool) -> Result<(), StoreError> {
        let (id, doc) = (c.id.clone(), encode(c, "campaign")?);
        self.run(move |conn| {
            let sql = if create {
                "INSERT INTO campaigns (id, doc) VALUES (?1, ?2)"
            } else {
                "INSERT INTO campaigns (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc"
            };
            conn.execute(sql, params![id, doc]).map_err(constraint)?;
            Ok(())
        })
        .await
    }

    async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        self.one_doc("SELECT doc FROM campaigns WHERE id = ?1", vec![id.to_owned()])
            .await?
            .map(|d| decode(&d, "campaign"))
            .transpose()
    }

    async fn list_campaigns(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Campaign>, StoreError> {
        let after = cursor.unwrap_or("").to_owned();
        let fetch = limit.saturating_add(1).to_string();
        let docs = self
            .docs(
                "SELECT doc FROM campaigns WHERE id > ?1 ORDER BY id LIMIT ?2",
                vec![after, fetch],
            )
            .await?;
        let more = docs.len() > limit;
        let items = docs
            .iter()
            .take(limit)
            .map(|d| decode(d, "campaign"))
            .collect::<Result<Vec<Campaign>, _>>()?;
        let next_cursor = if more { items.last().map(|c| c.id.clone()) } else { None };
        Ok(Page { items, next_cursor })
    }

    async fn create_enrolment(&self, e: &Enrolment) -> Result<(), StoreError> {
        let row = (
            e.id.as_str().to_owned(),
            to_i64(e.version),
            e.campaign_id.clone(),
            e.lead.phone.as_str().to_owned(),
            e.due_at().map(|t| time::fixed(&t)),
            encode(e, "enrolment")?,
        );
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO enrolments (id, version, campaign_id, phone, due_at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row.0, row.1, row.2, row.3, row.4, row.5],
            )
            .map_err(constraint)?;
            Ok(())
        })
        .await
    }

    async fn get_enrolment(&self, id: &EnrolmentId) -> Result<Option<Enrolment>, StoreError> {
        self.one_doc("SELECT doc FROM enrolments WHERE id = ?1", vec![id.as_str().to_owned()])
            .await?
            .map(|d| decode(&d, "enrolment"))
            .transpose()
    }

    async fn enrolment_of(&self, campaign_id: &str, phone: &PhoneNumber) -> Result<Option<Enrolment>, StoreError> {
        self.one_doc(
            "SELECT doc FROM enrolments WHERE campaign_id = ?1 AND phone = ?2",
            vec![campaign_id.to_owned(), phone.as_str().to_owned()],
        )
        .await?
        .map(|d| decode(&d, "enrolment"))
        .transpose()
    }

    async fn update_enrolment(&self, e: &Enrolment) -> Result<(), StoreError> {
        let previous = e.version.checked_sub(1).ok_or(StoreError::ConditionFailed)?;
        let row = (
            e.id.as_str().to_owned(),
            to_i64(e.version),
            to_i64(previous),
            e.due_at().map(|t| time::fixed(&t)),
            encode(e, "enrolment")?,
        );
        let changed = self
            .run(move |conn| {
                conn.execute(
                    "UPDATE enrolments SET version = ?2, due_at = ?4, doc = ?5 WHERE id = ?1 AND version = ?3",
                    params![row.0, row.1, row.2, row.3, row.4],
                )
                .map_err(sql_error)
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn enrolments_of_phone(&self, phone: &PhoneNumber) -> Result<Vec<Enrolment>, StoreError> {
        self.docs(
            "SELECT doc FROM enrolments WHERE phone = ?1 ORDER BY id",
            vec![phone.as_str().to_owned()],
        )
        .await?
        .iter()
        .map(|d| decode(d, "enrolment"))
        .collect()
    }

    async fn due_enrolments(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Enrolment>, StoreError> {
        self.docs(
            "SELECT doc FROM enrolments WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
            vec![time::fixed(&now), limit.to_string()],
        )
        .await?
        .iter()
        .map(|d| decode(d, "enrolment"))
        .collect()
    }
}
