//! The one SQLite connection helper: open a file in WAL mode with a busy timeout (or a private
//! in-memory database), keep the connection behind a mutex, and run every call on tokio's
//! blocking pool so the async runtime never waits on disk. Error mapping of SQLite failures onto
//! the store port's `StoreError` lives here too. This module knows no table.

use crate::ports::StoreError;
use rusqlite::{Connection, ErrorCode};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a statement waits for another connection's lock before it gives up (`Throttled`
/// for the store). The store, the queue and the event log share one file, so each waits for
/// the others' writes instead of failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// SQLite failed (file, lock, pragma).
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The file would not switch to WAL mode.
    #[error("SQLite refused WAL mode (journal_mode is {0})")]
    NotWal(String),
}

/// Open (or create) the database at `path` in WAL mode with [`BUSY_TIMEOUT`]. The busy timeout
/// is set first: switching to WAL needs a lock another connection may hold. The parent
/// directory must exist; this function never creates it.
pub(crate) fn open_file(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NotWal(mode));
    }
    // In WAL mode, NORMAL syncs the log at checkpoints instead of at every commit: a committed
    // write survives the process being killed (it is in the OS's file cache, and the next open
    // replays the log), which is what smsrelay-local's write-before-send rule needs; only a power
    // loss or kernel crash can drop the last commits. FULL would fsync every one of the ~6 writes
    // of a message.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// A private in-memory database (tests, throwaway runs).
pub(crate) fn open_memory() -> Result<Connection, OpenError> {
    Ok(Connection::open_in_memory()?)
}

/// The blocking task that ran a statement panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("SQLite task did not finish")]
pub(crate) struct TaskFailed(#[source] tokio::task::JoinError);

impl From<TaskFailed> for StoreError {
    fn from(e: TaskFailed) -> Self {
        StoreError::Unexpected(anyhow::Error::new(e))
    }
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Sql(e) => sql_error(e),
            other => StoreError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// One connection shared by clones, used on the blocking pool.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Wrap an opened connection.
    pub(crate) fn new(conn: Connection) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// Run `f` with the connection on tokio's blocking pool.
    pub(crate) async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no half-applied write: each write is one
            // statement or one transaction, and dropping a rusqlite `Transaction` rolls it back.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(TaskFailed(e)))?
    }

    /// The connection, locked on the calling thread (tests that poke at rows).
    #[cfg(test)]
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Busy or locked is contention (retry later); anything else is unexpected.
pub(crate) fn sql_error(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Throttled,
        _ => StoreError::Unexpected(anyhow::Error::new(err)),
    }
}

/// Like [`sql_error`], but a primary-key violation is a lost condition.
pub(crate) fn insert_error(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error() {
        Some(e) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => StoreError::ConditionFailed,
        _ => sql_error(err),
    }
}
