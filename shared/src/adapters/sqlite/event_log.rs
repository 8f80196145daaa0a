//! `LogEventPublisher`: the embedded [`EventPublisher`] behind `smsrelay-local`. Each event is
//! written to the log (`INFO`, with its detail type and detail) and appended to the SQLite table
//! `domain_events`, which operators and tests read back with [`LogEventPublisher::recent`].
//!
//! It opens its own connection to the store's database file (through `conn`: WAL mode, so it
//! neither blocks nor is blocked by the store's readers) and runs every statement on tokio's
//! blocking pool. Its table is `schema::EVENTS`; times are `time::exact`. It must
//! not touch the store's tables, nor create the database's parent directory. Details are logged
//! and stored as given: the port forbids full phone numbers and bodies in them.

use super::conn::{self, Db, OpenError, TaskFailed};
use super::{schema, time};
use crate::ports::{DomainEvent, EventPublisher, PublishError};
use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode};
use std::path::Path;

/// Why the event table could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// Another connection held the database locked for longer than the busy timeout; retry later.
    #[error("the event log database is busy")]
    Busy,
    /// Anything else (file, schema, corrupt row).
    #[error("the event log failed")]
    Unexpected(#[source] anyhow::Error),
}

impl From<rusqlite::Error> for EventLogError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Busy,
            _ => Self::Unexpected(anyhow::Error::new(err)),
        }
    }
}

impl From<OpenError> for EventLogError {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::Sql(e) => e.into(),
            other => Self::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<TaskFailed> for EventLogError {
    fn from(err: TaskFailed) -> Self {
        match err {
            TaskFailed::NotCommitted {
                code: Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked),
                ..
            } => Self::Busy,
            other => Self::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// [`EventPublisher`] writing to the log and the `domain_events` table.
#[derive(Debug, Clone)]
pub struct LogEventPublisher {
    db: Db,
}

impl LogEventPublisher {
    /// Open (or create) the database at `path` (normally the store's file), in WAL mode with a
    /// 5 s busy timeout, creating `domain_events` if missing. The parent directory must exist.
    ///
    /// # Errors
    /// [`EventLogError::Unexpected`] if the file cannot be opened, WAL is refused or the table
    /// cannot be created; [`EventLogError::Busy`] if another connection holds it locked too long.
    pub fn open(path: &Path) -> Result<Self, EventLogError> {
        Self::with_schema(conn::open_file(path)?)
    }

    /// A private in-memory table that lives as long as the publisher (tests, throwaway runs).
    ///
    /// # Errors
    /// [`EventLogError::Unexpected`] if SQLite cannot create it.
    pub fn open_in_memory() -> Result<Self, EventLogError> {
        Self::with_schema(conn::open_memory()?)
    }

    fn with_schema(conn: Connection) -> Result<Self, EventLogError> {
        conn.execute_batch(schema::EVENTS)?;
        Ok(Self::on(Db::new(conn)))
    }

    /// On a connection whose database has the table (`SqliteStore`'s accessor).
    pub(crate) fn on(db: Db) -> Self {
        Self { db }
    }

    /// The last `limit` events stored, newest first.
    ///
    /// # Errors
    /// [`EventLogError::Busy`] on lock contention; [`EventLogError::Unexpected`] if SQLite fails
    /// or a stored row is not a valid event.
    pub async fn recent(&self, limit: usize) -> Result<Vec<DomainEvent>, EventLogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT detail_type, detail, at FROM domain_events ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map(params![limit], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?;
            let mut events = Vec::new();
            for row in rows {
                let (detail_type, detail, at) = row?;
                events.push(DomainEvent {
                    detail_type,
                    detail: serde_json::from_str(&detail).map_err(|e| {
                        EventLogError::Unexpected(anyhow::Error::new(e).context("stored detail is not JSON"))
                    })?,
                    at: time::parse(&at)
                        .ok_or_else(|| EventLogError::Unexpected(anyhow::anyhow!("stored time is not RFC 3339")))?,
                });
            }
            Ok(events)
        })
        .await
    }

    /// Run `f` on the connection on tokio's blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, EventLogError>
    where
        F: FnOnce(&mut Connection) -> Result<T, EventLogError> + Send + 'static,
        T: Send + 'static,
    {
        self.db.call(f).await
    }
}

#[async_trait]
impl EventPublisher for LogEventPublisher {
    /// Logs every event, then stores them all in one transaction.
    ///
    /// # Errors
    /// [`PublishError`] listing every index when the transaction fails (none of them is stored).
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            let detail = event.detail.to_string();
            let at = time::exact(&event.at);
            tracing::info!(detail_type = %event.detail_type, detail = %detail, at = %at, "domain event");
            rows.push((event.detail_type.clone(), detail, at));
        }
        self.run(move |conn| {
            let tx = conn.savepoint()?;
            {
                let mut stmt =
                    tx.prepare_cached("INSERT INTO domain_events (detail_type, detail, at) VALUES (?1, ?2, ?3)")?;
                for (detail_type, detail, at) in &rows {
                    stmt.execute(params![detail_type, detail, at])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| PublishError {
            failed: (0..events.len()).collect(),
            source: Some(anyhow::Error::new(e).context("storing domain events in SQLite")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn event(n: u32) -> DomainEvent {
        DomainEvent {
            detail_type: format!("message.sent.{n}"),
            detail: json!({"message_id": format!("msg_{n}"), "n": n}),
            at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, n).single().expect("valid time")
                + chrono::Duration::nanoseconds(123_456_789),
        }
    }

    #[tokio::test]
    async fn published_events_read_back_newest_first_and_exact() {
        let log = LogEventPublisher::open_in_memory().expect("open");
        log.publish(&[event(1), event(2)]).await.expect("publish");
        log.publish(&[event(3)]).await.expect("publish");
        let recent = log.recent(10).await.expect("recent");
        assert_eq!(recent, vec![event(3), event(2), event(1)]);
        assert_eq!(log.recent(2).await.expect("recent"), vec![event(3), event(2)]);
    }

    #[tokio::test]
    async fn publishing_nothing_stores_nothing() {
        let log = LogEventPublisher::open_in_memory().expect("open");
        log.publish(&[]).await.expect("publish");
        assert!(log.recent(10).await.expect("recent").is_empty());
    }

    #[tokio::test]
    async fn a_file_database_uses_wal_and_keeps_events_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("smsrelay.db");
        LogEventPublisher::open(&path)
            .expect("open")
            .publish(&[event(1)])
            .await
            .expect("publish");
        let reopened = LogEventPublisher::open(&path).expect("reopen");
        assert_eq!(reopened.recent(10).await.expect("recent"), vec![event(1)]);
        let mode: String = Connection::open(&path)
            .expect("open raw")
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("query");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_failed_insert_reports_every_index() {
        let log = LogEventPublisher::open_in_memory().expect("open");
        log.run(|conn| Ok(conn.execute_batch("DROP TABLE domain_events")?))
            .await
            .expect("drop");
        let err = log.publish(&[event(1), event(2)]).await.expect_err("no table");
        assert_eq!(err.failed, vec![0, 1]);
        assert!(err.source.is_some());
    }
}
