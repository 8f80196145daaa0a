//! `ConsentStore` on `SqliteStore`: the opt-out registry and per-recipient send slots. Same
//! semantics as the DynamoDB adapter (the shared contract suite runs against both): every
//! check-and-write runs in one `BEGIN IMMEDIATE` transaction, which SQLite serialises across
//! connections and processes.

use super::conn::sql_error;
use super::{time, SqliteStore};
use crate::domain::PhoneNumber;
use crate::ports::{ConsentStore, OptOut, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn opt_out(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let (phone, reason, at) = (phone.as_str().to_owned(), reason.to_owned(), time::fixed(&at));
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
                let at =
                    time::parse(&at).ok_or_else(|| StoreError::Corrupt("opt-out time is not RFC 3339".to_owned()))?;
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
