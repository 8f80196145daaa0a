//! `SimulatorLedger`: the Twilio simulator's own record of the messages it accepted, in the
//! table `simulator_messages` (`schema::SIMULATOR`) of the same SQLite file as the store. It is
//! what Twilio's side of the line remembers: a restarted smsrelay-local finds every message its
//! simulator accepted before the crash, so status polls and reconciliation get Twilio's answers
//! instead of "not found".
//!
//! Its own connection (through `conn`: WAL mode, busy timeout), every statement on the blocking
//! pool. Times are `time::fixed` (text order is time order). It must not touch the store's tables.

use super::conn::{self, Db};
use super::{schema, time};
use crate::adapters::twilio::ledger::SimRecord;
use crate::ports::{Sender, StoreError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;

/// The simulator's messages in SQLite. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct SimulatorLedger {
    db: Db,
}

const COLUMNS: &str = "sid, to_number, from_number, messaging_service_sid, body, status, created_at";

fn record(row: &Row<'_>) -> rusqlite::Result<(SimRecord, String)> {
    let created: String = row.get(6)?;
    Ok((
        SimRecord {
            sid: row.get(0)?,
            to: row.get(1)?,
            from: row.get(2)?,
            messaging_service_sid: row.get(3)?,
            body: row.get(4)?,
            status: row.get(5)?,
            date_created: DateTime::<Utc>::MIN_UTC,
        },
        created,
    ))
}

fn with_time((mut r, created): (SimRecord, String)) -> Result<SimRecord, StoreError> {
    r.date_created = time::parse(&created).ok_or_else(|| StoreError::Corrupt(format!("created_at of {}", r.sid)))?;
    Ok(r)
}

impl SimulatorLedger {
    /// Open (or create) the ledger in the SQLite file at `path` (normally the store's file). The
    /// parent directory must exist.
    ///
    /// # Errors
    /// `Unexpected` if the file cannot be opened or the table created; `Throttled` if another
    /// connection holds it locked past the busy timeout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_schema(conn::open_file(path)?)
    }

    /// A private in-memory SQLite ledger (tests): gone with the process. A Lambda without
    /// Twilio credentials keeps its ledger without SQLite (`twilio::ledger::Ledger::in_memory`).
    ///
    /// # Errors
    /// `Unexpected` if SQLite cannot create it.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_schema(conn::open_memory()?)
    }

    fn with_schema(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(schema::SIMULATOR).map_err(conn::sql_error)?;
        Ok(Self::on(Db::new(conn)))
    }

    /// On a connection whose database has the table (`SqliteStore`'s accessor).
    pub(crate) fn on(db: Db) -> Self {
        Self { db }
    }

    /// Record an accepted message.
    ///
    /// # Errors
    /// `ConditionFailed` if the sid exists; other SQLite failures.
    pub async fn insert(&self, r: SimRecord) -> Result<(), StoreError> {
        self.db
            .call(move |c| {
                c.prepare_cached(
                    "INSERT INTO simulator_messages
                       (sid, to_number, from_number, messaging_service_sid, body, status, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(conn::sql_error)?
                .execute(params![
                    r.sid,
                    r.to,
                    r.from,
                    r.messaging_service_sid,
                    r.body,
                    r.status,
                    time::fixed(&r.date_created)
                ])
                .map_err(conn::insert_error)?;
                Ok(())
            })
            .await
    }

    /// The message with `sid`, if the simulator ever accepted it.
    ///
    /// # Errors
    /// SQLite failures; `Corrupt` for an unreadable row.
    pub async fn get(&self, sid: &str) -> Result<Option<SimRecord>, StoreError> {
        let sid = sid.to_owned();
        self.db
            .call(move |c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM simulator_messages WHERE sid = ?1"),
                    params![sid],
                    record,
                )
                .optional()
                .map_err(conn::sql_error)?
                .map(with_time)
                .transpose()
            })
            .await
    }

    /// Move `sid` to `status` if its stored status is one of `from` (a status only moves
    /// forward). Returns whether it moved.
    ///
    /// # Errors
    /// SQLite failures.
    pub async fn advance(
        &self,
        sid: &str,
        from: &'static [&'static str],
        status: &'static str,
    ) -> Result<bool, StoreError> {
        let sid = sid.to_owned();
        self.db
            .call(move |c| {
                let tx = c.savepoint().map_err(conn::sql_error)?;
                let current: Option<String> = tx
                    .prepare_cached("SELECT status FROM simulator_messages WHERE sid = ?1")
                    .map_err(conn::sql_error)?
                    .query_row(params![sid], |row| row.get(0))
                    .optional()
                    .map_err(conn::sql_error)?;
                let moved = current.is_some_and(|s| from.contains(&s.as_str()));
                if moved {
                    tx.prepare_cached("UPDATE simulator_messages SET status = ?2 WHERE sid = ?1")
                        .map_err(conn::sql_error)?
                        .execute(params![sid, status])
                        .map_err(conn::sql_error)?;
                }
                tx.commit().map_err(conn::sql_error)?;
                Ok(moved)
            })
            .await
    }

    /// Messages to `to` from `from` (a number, or a Messaging Service) created at or after
    /// `since`, newest first (acceptance order breaks ties), at most `limit`.
    ///
    /// # Errors
    /// SQLite failures; `Corrupt` for an unreadable row.
    pub async fn list(
        &self,
        to: &str,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SimRecord>, StoreError> {
        let to = to.to_owned();
        let (number, service) = match from {
            Sender::Number(n) => (Some(n.as_str().to_owned()), None),
            Sender::MessagingService(ms) => (None, Some(ms.clone())),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .call(move |c| {
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM simulator_messages
                         WHERE to_number = ?1 AND created_at >= ?2
                           AND ((?3 IS NOT NULL AND messaging_service_sid IS NULL AND from_number = ?3)
                             OR (?4 IS NOT NULL AND messaging_service_sid = ?4))
                         ORDER BY created_at DESC, rowid DESC
                         LIMIT ?5"
                    ))
                    .map_err(conn::sql_error)?;
                let rows = stmt
                    .query_map(params![to, time::fixed(&since), number, service, limit], record)
                    .map_err(conn::sql_error)?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(with_time(row.map_err(conn::sql_error)?)?);
                }
                Ok(out)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::twilio::ledger::tests::rec;

    #[tokio::test]
    async fn messages_survive_a_reopen_of_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("local.db");
        let at = time::parse("2026-11-21T19:30:00.123Z").expect("time");
        {
            let ledger = SimulatorLedger::open(&path).expect("open");
            ledger.insert(rec("SM1", at)).await.expect("insert");
            assert!(ledger.advance("SM1", &["queued"], "sent").await.expect("advance"));
        }
        let reopened = SimulatorLedger::open(&path).expect("reopen");
        let got = reopened.get("SM1").await.expect("get").expect("kept");
        assert_eq!(
            got,
            SimRecord {
                status: "sent".to_owned(),
                ..rec("SM1", at)
            }
        );
        assert!(
            !reopened.advance("SM1", &["queued"], "sent").await.expect("advance"),
            "only forward"
        );
        assert!(reopened.get("SM2").await.expect("get").is_none());
        assert!(matches!(
            reopened.insert(rec("SM1", at)).await,
            Err(StoreError::ConditionFailed)
        ));
    }
}
