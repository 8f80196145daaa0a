//! The other store ports on `SqliteStore`: the due index and failed list (`MessageQueries`),
//! consent (`ConsentStore`) and idempotency records (`IdempotencyStore`). Same semantics as the
//! DynamoDB adapter (the shared contract suite runs against both): every check-and-write runs in
//! one `BEGIN IMMEDIATE` transaction, which SQLite serialises across connections and processes.

use super::sqlite_store::{decode_message, sql_error, SqliteStore};
use crate::domain::{ConsentEvidence, Message, PhoneNumber, Ref};
use crate::ports::idempotency_store::{IDEMPOTENCY_LEASE_SECS, IDEMPOTENCY_TTL_SECS};
use crate::ports::message_store::Page;
use crate::ports::{Begin, ConsentStore, IdempotencyStore, MessageQueries, OptOut, SavedResponse, StoreError};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

/// Tables of these ports (created with the store's own schema).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS opt_outs (
    phone TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_evidence (
    phone TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (phone, dedupe_key)
);
CREATE TABLE IF NOT EXISTS send_slots (
    phone TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS send_slots_by_phone ON send_slots (phone, at_ms);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status INTEGER,
    body TEXT
);
";

/// Fixed-width UTC time (`2026-11-21T19:50:32.123Z`) so text order is time order.
pub(crate) fn sortable_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
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
        let upper = sortable_time(&now);
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

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn opt_out(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let (phone, reason, at) = (phone.as_str().to_owned(), reason.to_owned(), sortable_time(&at));
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO opt_outs (phone, reason, at) VALUES (?1, ?2, ?3) ON CONFLICT (phone) DO NOTHING",
                params![phone, reason, at],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        let phone = phone.as_str().to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM opt_outs WHERE phone = ?1", params![phone])
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn opt_out_of(&self, phone: &PhoneNumber) -> Result<Option<OptOut>, StoreError> {
        let owned = phone.clone();
        self.run(move |conn| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT reason, at FROM opt_outs WHERE phone = ?1",
                    params![owned.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            row.map(|(reason, at)| {
                let at = DateTime::parse_from_rfc3339(&at)
                    .map_err(|_| StoreError::Corrupt("opt-out time is not RFC 3339".to_owned()))?
                    .with_timezone(&Utc);
                Ok(OptOut {
                    phone: owned.clone(),
                    reason,
                    at,
                })
            })
            .transpose()
        })
        .await
    }

    async fn append_consent(&self, phone: &PhoneNumber, evidence: &ConsentEvidence) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(evidence)
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode consent evidence")))?;
        let row = (
            phone.as_str().to_owned(),
            evidence.dedupe_key(),
            sortable_time(&evidence.at),
            doc,
        );
        self.run(move |conn| {
            let added = conn
                .execute(
                    "INSERT INTO consent_evidence (phone, dedupe_key, at, doc) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (phone, dedupe_key) DO NOTHING",
                    params![row.0, row.1, row.2, row.3],
                )
                .map_err(sql_error)?;
            Ok(added == 1)
        })
        .await
    }

    async fn consent_history(&self, phone: &PhoneNumber) -> Result<Vec<ConsentEvidence>, StoreError> {
        let phone = phone.as_str().to_owned();
        let docs: Vec<String> = self
            .run(move |conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT doc FROM consent_evidence WHERE phone = ?1 ORDER BY at, dedupe_key")
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map(params![phone], |r| r.get(0))
                    .map_err(sql_error)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(sql_error)?;
                Ok(rows)
            })
            .await?;
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("consent evidence: {e}"))))
            .collect()
    }

    /// Count and insert inside one IMMEDIATE transaction: concurrent callers are serialised, so
    /// they can never take more than `limit` slots between them.
    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let phone = phone.as_str().to_owned();
        let now_ms = now.timestamp_millis();
        let since = now_ms - window.num_milliseconds();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            tx.execute(
                "DELETE FROM send_slots WHERE phone = ?1 AND at_ms <= ?2",
                params![phone, since],
            )
            .map_err(sql_error)?;
            let taken: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM send_slots WHERE phone = ?1",
                    params![phone],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            let granted = taken < i64::from(limit);
            if granted {
                tx.execute(
                    "INSERT INTO send_slots (phone, at_ms) VALUES (?1, ?2)",
                    params![phone, now_ms],
                )
                .map_err(sql_error)?;
            }
            tx.commit().map_err(sql_error)?;
            Ok(granted)
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn begin(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Begin, StoreError> {
        let (key, hash) = (key.to_owned(), request_hash.to_owned());
        let now_s = now.timestamp();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
            type Row = (String, String, i64, i64, Option<u16>, Option<String>);
            let existing: Option<Row> = tx
                .query_row(
                    "SELECT request_hash, state, lease_until, expires_at, status, body FROM idempotency WHERE key = ?1",
                    params![key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .optional()
                .map_err(sql_error)?;
            let claimable = match &existing {
                None => true,
                Some((_, state, lease_until, expires_at, _, _)) => {
                    *expires_at < now_s || (state == "in_progress" && *lease_until < now_s)
                }
            };
            let outcome = if claimable {
                tx.execute(
                    "INSERT OR REPLACE INTO idempotency (key, request_hash, state, lease_until, expires_at, status, body) \
                     VALUES (?1, ?2, 'in_progress', ?3, ?4, NULL, NULL)",
                    params![key, hash, now_s + IDEMPOTENCY_LEASE_SECS, now_s + IDEMPOTENCY_TTL_SECS],
                )
                .map_err(sql_error)?;
                Begin::Started
            } else {
                match existing {
                    Some((stored_hash, _, _, _, _, _)) if stored_hash != hash => Begin::Mismatch,
                    Some((_, state, _, _, Some(status), Some(body))) if state == "completed" => {
                        Begin::Replay(SavedResponse { status, body })
                    }
                    _ => Begin::InProgress,
                }
            };
            tx.commit().map_err(sql_error)?;
            Ok(outcome)
        })
        .await
    }

    async fn complete(
        &self,
        key: &str,
        request_hash: &str,
        response: &SavedResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (key, hash, status, body) = (
            key.to_owned(),
            request_hash.to_owned(),
            response.status,
            response.body.clone(),
        );
        let expires = now.timestamp() + IDEMPOTENCY_TTL_SECS;
        self.run(move |conn| {
            conn.execute(
                "UPDATE idempotency SET state = 'completed', status = ?3, body = ?4, expires_at = ?5 \
                 WHERE key = ?1 AND request_hash = ?2",
                params![key, hash, status, body, expires],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM idempotency WHERE key = ?1 AND state = 'in_progress'",
                params![key],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}
