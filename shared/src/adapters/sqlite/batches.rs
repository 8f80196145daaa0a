//! `BatchStore` on `SqliteStore`: one `batches` row per batch with its tallies, and one
//! `batch_items` row per counted item, so an item is counted once. Counting an item is one
//! transaction (insert the item row, bump two tallies, read the row back). Same semantics as the
//! DynamoDB adapter (the batch contract suite runs on both).

use super::conn::{insert_error, sql_error};
use super::{time, SqliteStore};
use crate::domain::MessageId;
use crate::ports::{BatchProgress, BatchRecord, BatchState, BatchStore, ItemOutcome, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

const SELECT: &str = "SELECT id, total, accepted, rejected, created_at, expires_at, sent, failed, suppressed, \
     rate_limited, finished, alerted FROM batches WHERE id = ?1 AND expires_at >= ?2";

/// The tally column of an outcome (a fixed set: never caller text in SQL).
fn column(outcome: ItemOutcome) -> &'static str {
    match outcome {
        ItemOutcome::Sent => "sent",
        ItemOutcome::Failed => "failed",
        ItemOutcome::Suppressed => "suppressed",
        ItemOutcome::RateLimited => "rate_limited",
    }
}

fn count(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("batch {what} out of range")))
}

/// The live batch `id` at `now_s` (epoch seconds), read inside the caller's connection.
fn read(conn: &Connection, id: &str, now_s: i64) -> Result<Option<BatchState>, StoreError> {
    type Row = (String, i64, i64, i64, String, i64, [i64; 5], bool);
    let row: Option<Row> = conn
        .prepare_cached(SELECT)
        .map_err(sql_error)?
        .query_row(params![id, now_s], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
                r.get(11)?,
            ))
        })
        .optional()
        .map_err(sql_error)?;
    let Some((id, total, accepted, rejected, created_at, expires_at, t, alerted)) = row else {
        return Ok(None);
    };
    let created_at =
        time::parse(&created_at).ok_or_else(|| StoreError::Corrupt(format!("batch {id}: created_at unreadable")))?;
    let expires_at = DateTime::from_timestamp(expires_at, 0)
        .ok_or_else(|| StoreError::Corrupt(format!("batch {id}: expires_at out of range")))?;
    Ok(Some(BatchState {
        record: BatchRecord {
            total: count(total, "total")?,
            accepted: count(accepted, "accepted")?,
            rejected: count(rejected, "rejected")?,
            created_at,
            expires_at,
            id,
        },
        progress: BatchProgress {
            sent: count(t[0], "sent")?,
            failed: count(t[1], "failed")?,
            suppressed: count(t[2], "suppressed")?,
            rate_limited: count(t[3], "rate_limited")?,
            finished: count(t[4], "finished")?,
        },
        alerted,
    }))
}

#[async_trait]
impl BatchStore for SqliteStore {
    /// INSERT; the primary key refuses an existing id. `finished` starts at `rejected`.
    async fn create_batch(&self, record: &BatchRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO batches (id, total, accepted, rejected, created_at, expires_at, finished) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4)",
                params![
                    r.id,
                    r.total,
                    r.accepted,
                    r.rejected,
                    time::exact(&r.created_at),
                    r.expires_at.timestamp()
                ],
            )
            .map_err(insert_error)?;
            Ok(())
        })
        .await
    }

    async fn get_batch(&self, id: &str, now: DateTime<Utc>) -> Result<Option<BatchState>, StoreError> {
        let (id, now_s) = (id.to_owned(), now.timestamp());
        self.run(move |conn| read(conn, &id, now_s)).await
    }

    /// One transaction: `INSERT OR IGNORE` the item row; if it was new, add to its tally and to
    /// `finished`, then read the batch back.
    async fn record_item(
        &self,
        id: &str,
        item: &MessageId,
        outcome: ItemOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<BatchState>, StoreError> {
        let (id, item, now_s) = (id.to_owned(), item.as_str().to_owned(), now.timestamp());
        let col = column(outcome);
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
            let Some(_) = read(&tx, &id, now_s)? else {
                return Ok(None);
            };
            let new = tx
                .prepare_cached("INSERT OR IGNORE INTO batch_items (batch_id, message_id) VALUES (?1, ?2)")
                .map_err(sql_error)?
                .execute(params![id, item])
                .map_err(sql_error)?;
            if new == 0 {
                return Ok(None);
            }
            tx.execute(
                &format!("UPDATE batches SET {col} = {col} + 1, finished = finished + 1 WHERE id = ?1"),
                params![id],
            )
            .map_err(sql_error)?;
            let state = read(&tx, &id, now_s)?;
            tx.commit().map_err(sql_error)?;
            Ok(state)
        })
        .await
    }

    async fn add_finished(&self, id: &str, n: u32) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |conn| {
            conn.execute(
                "UPDATE batches SET finished = finished + ?2 WHERE id = ?1",
                params![id, n],
            )
            .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    /// `UPDATE … SET completed = 1 WHERE completed = 0`: one changed row means taken.
    async fn claim_completion(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE batches SET completed = 1 WHERE id = ?1 AND completed = 0",
                    params![id],
                )
                .map_err(sql_error)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn mark_alerted(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run(move |conn| {
            conn.execute("UPDATE batches SET alerted = 1 WHERE id = ?1", params![id])
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}
