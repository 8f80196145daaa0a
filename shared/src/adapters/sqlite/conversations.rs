//! `ConversationStore` on `SqliteStore` (table `conversations` in `schema`). The whole `Conversation` is JSON in `doc`; `open_pair`
//! (`<business>#<phone>` while not ended, NULL once ended) is UNIQUE, so SQLite itself refuses a
//! second open conversation for a pair, as the DynamoDB adapter's pair pointer does. Listing reads
//! the `(phone, id DESC)` index, and by status the `(status, id DESC)` one; ids are ULIDs, so that
//! is newest first.

use super::conn::sql_error;
use super::SqliteStore;
use crate::domain::{Conversation, ConversationId, ConversationStatus, PhoneNumber};
use crate::ports::conversation_store::{ConversationFilter, ConversationStore};
use crate::ports::message_store::Page;
use crate::ports::StoreError;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

fn open_pair(c: &Conversation) -> Option<String> {
    (c.status != ConversationStatus::Ended).then(|| format!("{}#{}", c.business_number.as_str(), c.phone.as_str()))
}

fn encode(c: &Conversation) -> Result<String, StoreError> {
    serde_json::to_string(c).map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode conversation")))
}

fn decode(doc: &str) -> Result<Conversation, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("conversation document: {e}")))
}

/// A primary-key or UNIQUE violation is a lost condition.
fn insert_error(err: rusqlite::Error) -> StoreError {
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

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn create_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
        let row = (
            c.id.as_str().to_owned(),
            i64::try_from(c.version).unwrap_or(i64::MAX),
            c.phone.as_str().to_owned(),
            c.status.as_str(),
            c.outcome.map(|o| o.as_str()),
            open_pair(c),
            encode(c)?,
        );
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO conversations (id, version, phone, status, outcome, open_pair, doc) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![row.0, row.1, row.2, row.3, row.4, row.5, row.6],
            )
            .map_err(insert_error)?;
            Ok(())
        })
        .await
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        let id = id.as_str().to_owned();
        let doc: Option<String> = self
            .run(move |conn| {
                conn.query_row("SELECT doc FROM conversations WHERE id = ?1", params![id], |r| r.get(0))
                    .optional()
                    .map_err(sql_error)
            })
            .await?;
        doc.as_deref().map(decode).transpose()
    }

    async fn open_conversation(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
    ) -> Result<Option<Conversation>, StoreError> {
        let pair = format!("{}#{}", business_number.as_str(), phone.as_str());
        let doc: Option<String> = self
            .run(move |conn| {
                conn.query_row(
                    "SELECT doc FROM conversations WHERE open_pair = ?1",
                    params![pair],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)
            })
            .await?;
        doc.as_deref().map(decode).transpose()
    }

    async fn update_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
        let Some(previous) = c.version.checked_sub(1) else {
            return Err(StoreError::ConditionFailed);
        };
        let row = (
            c.id.as_str().to_owned(),
            i64::try_from(c.version).unwrap_or(i64::MAX),
            i64::try_from(previous).unwrap_or(i64::MAX),
            c.status.as_str(),
            c.outcome.map(|o| o.as_str()),
            open_pair(c),
            encode(c)?,
        );
        let changed = self
            .run(move |conn| {
                conn.execute(
                    "UPDATE conversations SET version = ?2, status = ?4, outcome = ?5, open_pair = ?6, doc = ?7 \
                     WHERE id = ?1 AND version = ?3",
                    params![row.0, row.1, row.2, row.3, row.4, row.5, row.6],
                )
                .map_err(insert_error)
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn list_conversations(
        &self,
        phone: &PhoneNumber,
        filter: ConversationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, StoreError> {
        let after = after_cursor(cursor)?;
        let phone = phone.as_str().to_owned();
        let status = filter.status.map(|s| s.as_str().to_owned());
        let outcome = filter.outcome.map(|o| o.as_str().to_owned());
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let docs = self
            .conversation_docs(
                "SELECT doc FROM conversations WHERE phone = ?1 AND (?2 IS NULL OR id < ?2) \
                 AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR outcome = ?4) \
                 ORDER BY id DESC LIMIT ?5",
                vec![phone.into(), after.into(), status.into(), outcome.into(), fetch.into()],
            )
            .await?;
        page_of(&docs, limit)
    }

    async fn list_conversations_by_status(
        &self,
        status: ConversationStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Conversation>, StoreError> {
        let after = after_cursor(cursor)?;
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let docs = self
            .conversation_docs(
                "SELECT doc FROM conversations WHERE status = ?1 AND (?2 IS NULL OR id < ?2) \
                 ORDER BY id DESC LIMIT ?3",
                vec![status.as_str().to_owned().into(), after.into(), fetch.into()],
            )
            .await?;
        page_of(&docs, limit)
    }
}

impl SqliteStore {
    /// The `doc` of each conversation row `sql` selects with `args`, in order.
    async fn conversation_docs(
        &self,
        sql: &'static str,
        args: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<String>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(sql_error)?;
            Ok(rows)
        })
        .await
    }
}

/// The id a listing cursor names (the last conversation of the previous page).
fn after_cursor(cursor: Option<&str>) -> Result<Option<String>, StoreError> {
    cursor
        .map(|c| {
            ConversationId::parse(c)
                .map(String::from)
                .map_err(|_| StoreError::Corrupt("listing cursor is not readable".to_owned()))
        })
        .transpose()
}

/// A page of the first `limit` of `docs` (one more was read to know whether more follow).
fn page_of(docs: &[String], limit: usize) -> Result<Page<Conversation>, StoreError> {
    let more = docs.len() > limit;
    let items = docs
        .iter()
        .take(limit)
        .map(|d| decode(d))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if more {
        items.last().map(|c| c.id.as_str().to_owned())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}
