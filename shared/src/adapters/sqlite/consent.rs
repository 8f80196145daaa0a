//! `ConsentStore` on `SqliteStore`: the opt-out registry and per-recipient send slots. Same
//! semantics as the DynamoDB adapter (the shared contract suite runs against both): every
//! check-and-write runs in one savepoint of the connection's `BEGIN IMMEDIATE` group
//! transaction (`conn::Db`), which SQLite serialises across connections and processes.

use super::conn::sql_error;
use super::{time, SqliteStore};
use crate::domain::{ConsentEvidence, PhoneNumber};
use crate::ports::{ConsentStore, OptOut, SendCheck, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

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
        self.run(move |conn| read_opt_out(conn, &owned)).await
    }

    /// Count and insert inside one savepoint of the IMMEDIATE group transaction: concurrent callers are serialised, so
    /// they can never take more than `limit` slots between them.
    async fn append_consent(&self, phone: &PhoneNumber, evidence: &ConsentEvidence) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(evidence)
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode consent evidence")))?;
        let row = (
            phone.as_str().to_owned(),
            evidence.dedupe_key(),
            time::fixed(&evidence.at),
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

    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        let phone = phone.as_str().to_owned();
        let (now_ms, since) = (now.timestamp_millis(), (now - window).timestamp_millis());
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
            let granted = take_slot(&tx, &phone, now_ms, since, limit)?;
            tx.commit().map_err(sql_error)?;
            Ok(granted)
        })
        .await
    }

    /// The opt-out read and the slot in one savepoint (one store call, at most one commit).
    async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<SendCheck, StoreError> {
        let owned = phone.clone();
        let (now_ms, since) = (now.timestamp_millis(), (now - window).timestamp_millis());
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
            let check = if let Some(o) = read_opt_out(&tx, &owned)? {
                SendCheck::OptedOut(o)
            } else if take_slot(&tx, owned.as_str(), now_ms, since, limit)? {
                SendCheck::Granted
            } else {
                SendCheck::Limited
            };
            tx.commit().map_err(sql_error)?;
            Ok(check)
        })
        .await
    }
}

/// The opt-out of `phone`, if any.
fn read_opt_out(conn: &Connection, phone: &PhoneNumber) -> Result<Option<OptOut>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT reason, at FROM opt_outs WHERE phone = ?1")
        .map_err(sql_error)?
        .query_row(params![phone.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(sql_error)?;
    row.map(|(reason, at)| {
        let at = time::parse(&at).ok_or_else(|| StoreError::Corrupt("opt-out time is not RFC 3339".to_owned()))?;
        Ok(OptOut {
            phone: phone.clone(),
            reason,
            at,
        })
    })
    .transpose()
}

/// Inside the caller's savepoint: drop slots at or before `since`, count the rest,
/// and take one at `now_ms` if fewer than `limit` remain.
fn take_slot(tx: &Connection, phone: &str, now_ms: i64, since: i64, limit: u32) -> Result<bool, StoreError> {
    tx.prepare_cached("DELETE FROM send_slots WHERE phone = ?1 AND at_ms <= ?2")
        .map_err(sql_error)?
        .execute(params![phone, since])
        .map_err(sql_error)?;
    let taken: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM send_slots WHERE phone = ?1")
        .map_err(sql_error)?
        .query_row(params![phone], |r| r.get(0))
        .map_err(sql_error)?;
    let granted = taken < i64::from(limit);
    if granted {
        tx.prepare_cached("INSERT INTO send_slots (phone, at_ms) VALUES (?1, ?2)")
            .map_err(sql_error)?
            .execute(params![phone, now_ms])
            .map_err(sql_error)?;
    }
    Ok(granted)
}
