//! `Retention` on `SqliteStore`: SQLite has no TTL, so the processor calls this each tick to
//! delete what has expired (the statements name tables only; no aggregate module is used).

use super::conn::sql_error;
use super::{time, SqliteStore};
use crate::ports::{Retention, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

#[async_trait]
impl Retention for SqliteStore {
    /// Expired counters, documents and claims, webhook receipts older than 30 days and
    /// idempotency records and batches past their expiry: SQLite has no TTL, so the processor calls this.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let epoch = now.timestamp();
        let until = time::fixed(&now);
        let receipts = time::fixed(&(now - chrono::Duration::days(30)));
        self.run(move |conn| {
            let mut n = 0;
            n += conn
                .execute(
                    "DELETE FROM counters WHERE expires_at IS NOT NULL AND expires_at < ?1",
                    params![epoch],
                )
                .map_err(sql_error)?;
            n += conn
                .execute(
                    "DELETE FROM docs WHERE expires_at IS NOT NULL AND expires_at < ?1",
                    params![epoch],
                )
                .map_err(sql_error)?;
            n += conn
                .execute("DELETE FROM claims WHERE until < ?1", params![until])
                .map_err(sql_error)?;
            n += conn
                .execute("DELETE FROM idempotency WHERE expires_at < ?1", params![epoch])
                .map_err(sql_error)?;
            n += conn
                .execute(
                    "DELETE FROM batch_items WHERE batch_id IN (SELECT id FROM batches WHERE expires_at < ?1)",
                    params![epoch],
                )
                .map_err(sql_error)?;
            n += conn
                .execute("DELETE FROM batches WHERE expires_at < ?1", params![epoch])
                .map_err(sql_error)?;
            n += conn
                .execute("DELETE FROM webhooks WHERE received_at < ?1", params![receipts])
                .map_err(sql_error)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }
}
