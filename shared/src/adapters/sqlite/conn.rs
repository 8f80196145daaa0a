//! The one SQLite connection helper: open a file in WAL mode with a busy timeout (or a private
//! in-memory database), and give the connection a thread of its own that runs the calls in the
//! order they come, so the async runtime never waits on disk or on a lock. (A call per
//! `spawn_blocking` task made dozens of pool threads fight over one connection's mutex: under
//! load most of the time went to futex wake-ups; one owner thread has no contention and works
//! through a queue of calls without sleeping between them.) Error mapping of SQLite failures onto
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
    // Checkpoint every 10,000 pages (about 40 MB of log) instead of 1,000: a checkpoint fsyncs
    // the database file, and under a burst of sends it ran every few hundred messages.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    Ok(conn)
}

/// A private in-memory database (tests, throwaway runs).
pub(crate) fn open_memory() -> Result<Connection, OpenError> {
    Ok(Connection::open_in_memory()?)
}

/// The call panicked, or the connection's thread is gone.
#[derive(Debug, thiserror::Error)]
#[error("SQLite task did not finish")]
pub(crate) struct TaskFailed;

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

/// A call waiting for the connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// One connection shared by clones, owned by a thread of its own that runs the calls in order.
/// The thread ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    jobs: std::sync::mpsc::Sender<Job>,
    /// The thread's connection, for tests that poke at rows.
    #[cfg_attr(not(test), allow(dead_code))]
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Wrap an opened connection and start its thread.
    pub(crate) fn new(conn: Connection) -> Self {
        let conn = Arc::new(Mutex::new(conn));
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let owned = Arc::clone(&conn);
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // Uncontended but for tests that poke at rows (`lock`). A panicking call
                    // leaves no half-applied write: each write is one statement or one
                    // transaction, and dropping a rusqlite `Transaction` rolls it back.
                    let mut c = owned.lock().unwrap_or_else(PoisonError::into_inner);
                    // The panic reached the caller as a dropped reply (`TaskFailed`); the thread lives on.
                    let _panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut c)));
                }
            })
            .expect("spawn the SQLite connection thread");
        Self { jobs, conn }
    }

    /// Run `f` with the connection on its thread. A caller that stops waiting does not stop the
    /// call: it runs to its end, as a write that reached the store must.
    pub(crate) async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // A caller that stopped waiting has dropped the receiver; the call still ran.
            let _unheard = reply.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| E::from(TaskFailed))?;
        answer.await.map_err(|_| E::from(TaskFailed))?
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
