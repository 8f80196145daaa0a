//! `MessageStore` and `MessageQueries` on `SqliteStore`: message records, the provider-sid
//! pointers, webhook receipts, the due index, the failed list and the messages of a ref.
//!
//! The conditional writes mirror `DynamoMessageStore` (primary-key inserts for "must not exist",
//! `WHERE version = ?` for compare-and-set), and the contract suite (`testing::store_contract`)
//! holds the two to the same behaviour. The whole `Message` is kept as JSON in `doc`; the other
//! `messages` columns exist for conditions, the indexes and filters.

use super::conn::{insert_error, sql_error};
use super::{time, SqliteStore};
use crate::domain::{Message, MessageId, MessageStatus, PhoneNumber, ProviderSid, Ref};
use crate::ports::message_store::Page;
use crate::ports::{MessageQueries, MessageStore, StoreError, WebhookRecord};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

/// Insert one message row (create fails on an existing id: the primary key).
const INSERT_MESSAGE: &str =
    "INSERT INTO messages (id, version, to_number, status, created_at, doc, due_at, failed_key, ref_key) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// The column values of a message row.
struct MessageRow {
    id: String,
    version: i64,
    to_number: String,
    status: &'static str,
    created_at: String,
    doc: String,
    due_at: Option<String>,
    failed_key: Option<String>,
    ref_key: Option<String>,
}

impl MessageRow {
    /// Run [`INSERT_MESSAGE`] (prepared on `stmt`) for this row; an existing id is
    /// `ConditionFailed`.
    fn insert(&self, stmt: &mut rusqlite::Statement<'_>) -> Result<(), StoreError> {
        stmt.execute(params![
            self.id,
            self.version,
            self.to_number,
            self.status,
            self.created_at,
            self.doc,
            self.due_at,
            self.failed_key,
            self.ref_key
        ])
        .map(|_| ())
        .map_err(insert_error)
    }
}

impl TryFrom<&Message> for MessageRow {
    type Error = StoreError;

    fn try_from(m: &Message) -> Result<Self, Self::Error> {
        Ok(Self {
            id: m.id.as_str().to_owned(),
            version: i64::try_from(m.version)
                .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("message version out of range")))?,
            to_number: m.to.as_str().to_owned(),
            status: m.status.as_str(),
            created_at: time::exact(&m.created_at),
            doc: serde_json::to_string(m)
                .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode message document")))?,
            due_at: m.due_at.as_ref().map(time::fixed),
            failed_key: m
                .failed_listed
                .then(|| format!("{}#{}", time::fixed(&m.updated_at), m.id)),
            ref_key: m.reference.as_ref().map(ref_key),
        })
    }
}

/// Read a message back from its `id`, `version` and `doc` columns.
fn decode_message(id: &str, version: i64, doc: &str) -> Result<Message, StoreError> {
    let message: Message =
        serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("message row {id}: {e}")))?;
    if message.id.as_str() != id || i64::try_from(message.version).ok() != Some(version) {
        return Err(StoreError::Corrupt(format!(
            "message row {id}: document does not match its columns"
        )));
    }
    Ok(message)
}

fn encode_cursor(last: &MessageId) -> String {
    URL_SAFE_NO_PAD.encode(last.as_str())
}

fn decode_cursor(cursor: &str) -> Result<MessageId, StoreError> {
    let unreadable = || StoreError::Corrupt("listing cursor is not readable".to_owned());
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| unreadable())?;
    let raw = String::from_utf8(raw).map_err(|_| unreadable())?;
    MessageId::parse(&raw).map_err(|_| unreadable())
}

/// The row of `message` and the version it must replace.
fn versioned_row(message: &Message) -> Result<(MessageRow, i64), StoreError> {
    let row = MessageRow::try_from(message)?;
    let expected = row
        .version
        .checked_sub(1)
        .filter(|v| *v >= 0)
        .ok_or(StoreError::ConditionFailed)?;
    Ok((row, expected))
}

/// Replace the row if its stored version is `expected`.
fn update_row(conn: &Connection, row: &MessageRow, expected: i64) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE messages SET version = ?2, to_number = ?3, status = ?4, created_at = ?5, doc = ?6, \
             due_at = ?8, failed_key = ?9 WHERE id = ?1 AND version = ?7",
        )
        .map_err(sql_error)?
        .execute(params![
            row.id,
            row.version,
            row.to_number,
            row.status,
            row.created_at,
            row.doc,
            expected,
            row.due_at,
            row.failed_key
        ])
        .map_err(sql_error)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::ConditionFailed)
    }
}

/// Point `sid` at `id`; a sid pointing elsewhere is a lost condition.
fn link_sid(conn: &Connection, sid: &str, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO provider_sids (sid, message_id) VALUES (?1, ?2) ON CONFLICT (sid) DO NOTHING")
        .map_err(sql_error)?
        .execute(params![sid, id])
        .map_err(sql_error)?;
    let current: String = conn
        .prepare_cached("SELECT message_id FROM provider_sids WHERE sid = ?1")
        .map_err(sql_error)?
        .query_row(params![sid], |r| r.get(0))
        .map_err(sql_error)?;
    if current == id {
        Ok(())
    } else {
        Err(StoreError::ConditionFailed)
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    /// INSERT; the primary key refuses an existing id.
    async fn create_message(&self, message: &Message) -> Result<(), StoreError> {
        let row = MessageRow::try_from(message)?;
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(INSERT_MESSAGE).map_err(sql_error)?;
            row.insert(&mut stmt)
        })
        .await
    }

    /// All rows in one transaction (one commit instead of one per message); each INSERT keeps its
    /// own outcome, so an existing id fails alone.
    async fn create_messages(&self, messages: &[Message]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let rows = messages
            .iter()
            .map(MessageRow::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
            let mut out = Vec::with_capacity(rows.len());
            {
                let mut stmt = tx.prepare_cached(INSERT_MESSAGE).map_err(sql_error)?;
                for row in rows {
                    out.push(row.insert(&mut stmt));
                }
            }
            tx.commit().map_err(sql_error)?;
            Ok(out)
        })
        .await
    }

    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let row: Option<(i64, String)> = conn
                .prepare_cached("SELECT version, doc FROM messages WHERE id = ?1")
                .map_err(sql_error)?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sql_error)?;
            row.map(|(version, doc)| decode_message(&id, version, &doc)).transpose()
        })
        .await
    }

    /// `UPDATE … WHERE id = ? AND version = ?` (the caller's version minus one); no row changed
    /// means someone else wrote first, or the message is gone.
    async fn update_message(&self, message: &Message) -> Result<(), StoreError> {
        let (row, expected) = versioned_row(message)?;
        self.run(move |conn| update_row(conn, &row, expected)).await
    }

    async fn link_provider_sid(&self, sid: &ProviderSid, id: &MessageId) -> Result<(), StoreError> {
        let (sid, id) = (sid.as_str().to_owned(), id.as_str().to_owned());
        self.run(move |conn| link_sid(conn, &sid, &id)).await
    }

    /// Both statements in one savepoint: a lost condition on either undoes both.
    async fn update_message_and_link(&self, message: &Message, sid: &ProviderSid) -> Result<(), StoreError> {
        let (row, expected) = versioned_row(message)?;
        let sid = sid.as_str().to_owned();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
            update_row(&tx, &row, expected)?;
            link_sid(&tx, &sid, &row.id)?;
            tx.commit().map_err(sql_error)
        })
        .await
    }

    async fn message_id_for_sid(&self, sid: &ProviderSid) -> Result<Option<MessageId>, StoreError> {
        let sid = sid.as_str().to_owned();
        self.run(move |conn| {
            let id: Option<String> = conn
                .prepare_cached("SELECT message_id FROM provider_sids WHERE sid = ?1")
                .map_err(sql_error)?
                .query_row(params![sid], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            id.map(|id| MessageId::parse(&id).map_err(|e| StoreError::Corrupt(format!("provider sid row {sid}: {e}"))))
                .transpose()
        })
        .await
    }

    /// INSERT OR IGNORE: one row changed means this key was new.
    async fn record_webhook(&self, record: &WebhookRecord) -> Result<bool, StoreError> {
        let record = record.clone();
        self.run(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO webhooks (key, kind, message_id, provider_sid, status, received_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql_error)?
                .execute(params![
                    record.key,
                    record.kind,
                    record.message_id.as_ref().map(MessageId::as_str),
                    record.provider_sid.as_ref().map(ProviderSid::as_str),
                    record.status,
                    time::exact(&record.received_at),
                ])
                .map_err(sql_error)?;
            Ok(inserted == 1)
        })
        .await
    }

    /// Newest first by id (ULIDs sort by creation time) on the `(to_number, id DESC)` index;
    /// reads `limit + 1` rows to know whether a next page exists.
    async fn list_messages_to(
        &self,
        to: &PhoneNumber,
        status: Option<MessageStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, StoreError> {
        let after = cursor.map(decode_cursor).transpose()?;
        if limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let mut sql = String::from("SELECT id, version, doc FROM messages WHERE to_number = ?");
        let mut args = vec![to.as_str().to_owned()];
        if let Some(after) = after {
            sql.push_str(" AND id < ?");
            args.push(after.as_str().to_owned());
        }
        if let Some(status) = status {
            sql.push_str(" AND status = ?");
            args.push(status.as_str().to_owned());
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut found = self
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
                let params = args
                    .iter()
                    .map(|a| a as &dyn rusqlite::ToSql)
                    .chain(std::iter::once(&fetch as &dyn rusqlite::ToSql));
                let rows = stmt
                    .query_map(params_from_iter(params), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                    })
                    .map_err(sql_error)?;
                let mut found = Vec::new();
                for row in rows {
                    let (id, version, doc) = row.map_err(sql_error)?;
                    found.push(decode_message(&id, version, &doc)?);
                }
                Ok(found)
            })
            .await?;
        let next_cursor = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|last| encode_cursor(&last.id))
        } else {
            None
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }
}

/// The index value of a caller's entity link (`<type>\u{1f}<id>`; the unit separator cannot be
/// confused with text in either part).
pub(crate) fn ref_key(r: &Ref) -> String {
    format!("{}\u{1f}{}", r.kind, r.id)
}

fn rows_to_messages(rows: Vec<(String, i64, String)>) -> Result<Vec<Message>, StoreError> {
    rows.iter().map(|(id, v, doc)| decode_message(id, *v, doc)).collect()
}

#[async_trait]
impl MessageQueries for SqliteStore {
    /// Uses the partial index `messages_due`: reads only rows whose due time has come.
    async fn list_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>, StoreError> {
        let upper = time::fixed(&now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, version, doc FROM messages WHERE due_at IS NOT NULL AND due_at <= ?1 \
                     ORDER BY due_at, id LIMIT ?2",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![upper, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            rows_to_messages(rows)
        })
        .await
    }

    /// Uses the partial index `messages_failed` (`<updated_at>#<id>`), newest first; the cursor
    /// is the last key returned.
    async fn list_failed(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Message>, StoreError> {
        let after = match cursor {
            Some(c) => {
                let raw = URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|k| k.contains("#msg_"))
                    .ok_or_else(|| StoreError::Corrupt("listing cursor is not readable".to_owned()))?;
                Some(raw)
            }
            None => None,
        };
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64, String, String)> = self
            .run(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id, version, doc, failed_key FROM messages WHERE failed_key IS NOT NULL \
                         AND (?1 IS NULL OR failed_key < ?1) ORDER BY failed_key DESC LIMIT ?2",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map(params![after, fetch], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(sql_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_error)?;
                Ok(rows)
            })
            .await?;
        let more = rows.len() > limit;
        let page: Vec<_> = rows.into_iter().take(limit).collect();
        let next_cursor = if more {
            page.last().map(|(_, _, _, key)| URL_SAFE_NO_PAD.encode(key))
        } else {
            None
        };
        let items = rows_to_messages(page.into_iter().map(|(id, v, doc, _)| (id, v, doc)).collect())?;
        Ok(Page { items, next_cursor })
    }

    async fn list_by_ref(&self, reference: &Ref, limit: usize) -> Result<Vec<Message>, StoreError> {
        let key = ref_key(reference);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, version, doc FROM messages WHERE ref_key = ?1 ORDER BY id LIMIT ?2")
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![key, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            rows_to_messages(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageBody;
    use rusqlite::Connection;
    use std::time::Duration;

    fn message() -> Message {
        let at = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        Message::new(
            MessageId::generate(at),
            PhoneNumber::parse_e164("+14155550100").expect("number"),
            "+14155550111".to_owned(),
            MessageBody::parse("hello").expect("body"),
            MessageStatus::Sending,
            None,
            serde_json::Map::new(),
            at,
        )
    }

    fn corrupt_doc(store: &SqliteStore, id: &MessageId, doc: &str) {
        let conn = store.db.lock();
        conn.execute("UPDATE messages SET doc = ?2 WHERE id = ?1", params![id.as_str(), doc])
            .expect("update");
    }

    #[tokio::test]
    async fn a_row_whose_document_does_not_parse_is_corrupt() {
        let store = SqliteStore::open_in_memory().expect("store");
        let m = message();
        store.create_message(&m).await.expect("create");
        corrupt_doc(&store, &m.id, "{not json");
        assert!(matches!(store.get_message(&m.id).await, Err(StoreError::Corrupt(_))));
        let listed = store.list_messages_to(&m.to, None, 10, None).await;
        assert!(matches!(listed, Err(StoreError::Corrupt(_))));
    }

    #[tokio::test]
    async fn a_row_whose_document_names_another_message_is_corrupt() {
        let store = SqliteStore::open_in_memory().expect("store");
        let m = message();
        store.create_message(&m).await.expect("create");
        let mut other = m.clone();
        other.id = MessageId::generate(DateTime::from_timestamp(1_767_225_601, 0).expect("time"));
        corrupt_doc(&store, &m.id, &serde_json::to_string(&other).expect("json"));
        assert!(matches!(store.get_message(&m.id).await, Err(StoreError::Corrupt(_))));
    }

    #[tokio::test]
    async fn a_file_store_uses_wal_and_keeps_its_data_across_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let m = message();
        {
            let store = SqliteStore::open(&path).expect("open");
            store.create_message(&m).await.expect("create");
            let mode: String = store
                .db
                .lock()
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .expect("pragma");
            assert_eq!(mode, "wal");
        }
        let reopened = SqliteStore::open(&path).expect("reopen");
        assert_eq!(reopened.get_message(&m.id).await.expect("get"), Some(m));
    }

    #[tokio::test]
    async fn a_busy_database_is_throttled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).expect("open");
        store
            .db
            .lock()
            .busy_timeout(Duration::from_millis(10))
            .expect("timeout");
        let other = Connection::open(&path).expect("second connection");
        other.execute_batch("BEGIN EXCLUSIVE").expect("lock the database");
        let result = store.create_message(&message()).await;
        assert!(matches!(result, Err(StoreError::Throttled)), "{result:?}");
        other.execute_batch("ROLLBACK").expect("unlock");
    }
}
