//! `IdempotencyStore` on `SqliteStore`: the Powertools-shaped begin / complete / release, each
//! check-and-write in one savepoint of the connection's `BEGIN IMMEDIATE` group transaction
//! (`conn::Db`; serialised across connections and processes). Same semantics as the DynamoDB adapter (the shared contract suite runs on both).

use super::conn::sql_error;
use super::SqliteStore;
use crate::ports::idempotency_store::{IDEMPOTENCY_LEASE_SECS, IDEMPOTENCY_TTL_SECS};
use crate::ports::{Begin, IdempotencyStore, SavedResponse, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn begin(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Begin, StoreError> {
        let (key, hash) = (key.to_owned(), request_hash.to_owned());
        let now_s = now.timestamp();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
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
