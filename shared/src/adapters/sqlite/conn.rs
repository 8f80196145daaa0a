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

/// A call that did not give its answer.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum TaskFailed {
    /// The call panicked, or the connection's thread is gone.
    #[error("SQLite task did not finish")]
    Lost,
    /// The call ran, but the transaction of its group could not be committed (or SQLite rolled
    /// it back on its own), so none of its writes stand.
    #[error("SQLite could not commit: {message}")]
    NotCommitted {
        /// SQLite's primary result code of the failure, when it gave one.
        code: Option<ErrorCode>,
        /// SQLite's message.
        message: String,
    },
}

impl TaskFailed {
    fn not_committed(e: &rusqlite::Error) -> Self {
        Self::NotCommitted {
            code: e.sqlite_error_code(),
            message: e.to_string(),
        }
    }
}

impl From<TaskFailed> for StoreError {
    fn from(e: TaskFailed) -> Self {
        match e {
            TaskFailed::NotCommitted {
                code: Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked),
                ..
            } => StoreError::Throttled,
            other => StoreError::Unexpected(anyhow::Error::new(other)),
        }
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

/// What a call leaves behind once it has run: its answer, given when the commit of its group is
/// known (`None`: committed; `Some`: not, with why).
type Answer = Box<dyn FnOnce(Option<&TaskFailed>) + Send>;

/// A call waiting for the connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) -> Answer + Send>;

/// Calls run and transactions committed by every connection of the process: how much
/// SQLite work the store's calls cost (`scripts/bench.sh` prints transactions per message).
static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static TRANSACTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// SQLite calls run and transactions committed so far in this process, over all connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkDone {
    /// Store, queue, event-log and simulator calls run.
    pub calls: u64,
    /// Transactions they were committed in (a group of calls is one).
    pub transactions: u64,
}

/// How much SQLite work this process has done ([`WorkDone`]).
#[must_use]
pub fn work_done() -> WorkDone {
    use std::sync::atomic::Ordering::Relaxed;
    WorkDone {
        calls: CALLS.load(Relaxed),
        transactions: TRANSACTIONS.load(Relaxed),
    }
}

/// The most calls one transaction takes. A group holds the write lock while its calls run, so
/// this bounds how long another process's writer waits; 64 calls of a few dozen microseconds each.
const GROUP_MAX: usize = 64;

/// One connection shared by clones, owned by a thread of its own that runs the calls in order.
/// The thread ends when the last clone is dropped.
///
/// **Group commit.** The calls waiting when the thread comes round run in one transaction
/// (`BEGIN IMMEDIATE`, each call inside a savepoint of its own, one `COMMIT`), and every one of
/// them is answered only after that commit: a write is acknowledged once it is durable, as
/// before, but a burst of calls costs one log append, one lock round and one commit instead of
/// one each. A call that panics is rolled back to its savepoint and the others stand. A call's
/// own multi-statement writes use a savepoint (never `BEGIN`), so they nest in the group. If the
/// commit fails every call of the group is told so ([`TaskFailed::NotCommitted`]) and none of
/// their writes stand.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Calls queued so far (a [`ConnectionHold`] tells which were queued while it held).
    #[cfg(any(test, feature = "testing"))]
    queued: Arc<std::sync::atomic::AtomicU64>,
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
                while let Ok(first) = queue.recv() {
                    let mut group = vec![first];
                    while group.len() < GROUP_MAX {
                        match queue.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    // Uncontended but for tests that poke at rows (`lock`).
                    let mut c = owned.lock().unwrap_or_else(PoisonError::into_inner);
                    run_group(&mut c, group);
                }
            })
            .expect("spawn the SQLite connection thread");
        Self {
            jobs,
            #[cfg(any(test, feature = "testing"))]
            queued: Arc::default(),
            conn,
        }
    }

    /// Queue `f` for the connection's thread now (calls run in the order they are made) and
    /// give a future of its answer, which comes once its writes are committed. A caller that
    /// stops waiting does not stop the call: it runs to its end, as a write that reached the
    /// store must.
    pub(crate) fn call<T, E, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, E>> + Send + 'static
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            Box::new(move |failed: Option<&TaskFailed>| {
                let result = match failed {
                    // A call that failed wrote nothing that matters; its own error says more.
                    Some(e) if result.is_ok() => Err(E::from(e.clone())),
                    _ => result,
                };
                // A caller that stopped waiting has dropped the receiver; the call still ran.
                let _unheard = reply.send(result);
            })
        });
        let queued = self.jobs.send(job);
        #[cfg(any(test, feature = "testing"))]
        self.queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            queued.map_err(|_| E::from(TaskFailed::Lost))?;
            answer.await.map_err(|_| E::from(TaskFailed::Lost))?
        }
    }

    /// Hold the connection's thread (tests, the simulation): a call queued from now on is
    /// in flight, queued and not answered, until [`ConnectionHold::release`].
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn hold(&self) -> ConnectionHold {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let at_hold = self.queued.load(std::sync::atomic::Ordering::SeqCst);
        let held = self.call(move |_c| {
            // Released, or the hold dropped: either ends the wait.
            let _released_or_dropped = released.recv().is_ok();
            Ok::<_, StoreError>(())
        });
        ConnectionHold {
            release: Some(release),
            held: Box::pin(held),
            db: self.clone(),
            at_hold,
        }
    }

    /// The connection, locked on the calling thread (tests that poke at rows).
    #[cfg(test)]
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection's thread held by [`Db::hold`] (tests, the simulation's crash with a store
/// call in flight). Dropped without [`ConnectionHold::release`], it lets the thread go on.
#[cfg(any(test, feature = "testing"))]
pub struct ConnectionHold {
    release: Option<std::sync::mpsc::Sender<()>>,
    held: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>,
    db: Db,
    at_hold: u64,
}

#[cfg(any(test, feature = "testing"))]
impl ConnectionHold {
    /// Calls queued on the connection since the hold began: in flight (queued behind the hold,
    /// not answered) for as long as it holds.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.db.queued.load(std::sync::atomic::Ordering::SeqCst) - self.at_hold - 1
    }

    /// Let the thread go on, and wait until it has run every call queued before this returns
    /// (their callers may be gone: the calls run, and their writes land, all the same). Returns
    /// how many calls were queued while it held.
    pub async fn release(mut self) -> u64 {
        let in_flight = self.in_flight();
        drop(self.release.take());
        let _held = (&mut self.held).await;
        // Calls run in the order they were queued: once this one is answered, all before it were.
        let _drained = self.db.call(|_c| Ok::<_, StoreError>(())).await;
        in_flight
    }
}

#[cfg(any(test, feature = "testing"))]
impl std::fmt::Debug for ConnectionHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHold")
            .field("at_hold", &self.at_hold)
            .finish_non_exhaustive()
    }
}

/// Run one call; a panic reaches its caller as a dropped answer ([`TaskFailed::Lost`]).
fn run_one(conn: &mut Connection, job: Job) -> Option<Answer> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))).ok()
}

/// Run `jobs` outside a group, each committing on its own as it goes.
fn run_alone(conn: &mut Connection, jobs: impl IntoIterator<Item = Job>) {
    for job in jobs {
        TRANSACTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(answer) = run_one(conn, job) {
            answer(None);
        }
    }
}

/// Run `group` in one transaction (see [`Db`]), answering each call after the commit.
fn run_group(conn: &mut Connection, group: Vec<Job>) {
    use std::sync::atomic::Ordering::Relaxed;
    CALLS.fetch_add(u64::try_from(group.len()).unwrap_or(u64::MAX), Relaxed);
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // No write lock (another process holds it past the busy timeout): run the calls on
        // their own, each committing as it goes, as they would without grouping.
        tracing::debug!(error.message = %e, "SQLite group transaction not begun; calls run one by one");
        run_alone(conn, group);
        return;
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
    let mut calls = group.into_iter();
    for job in calls.by_ref() {
        let saved = conn.execute_batch("SAVEPOINT call").is_ok();
        let answer = run_one(conn, job);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back on an error of its own (a full disk, an
            // I/O error): the calls before this one are undone, this one's writes with them.
            let failed = TaskFailed::NotCommitted {
                code: None,
                message: "SQLite rolled the transaction back".to_owned(),
            };
            answers.extend(answer);
            for answer in answers.drain(..) {
                answer(Some(&failed));
            }
            // The rest run on their own.
            run_alone(conn, calls);
            return;
        }
        if saved {
            if answer.is_none() {
                // The call panicked: undo what it wrote, keep the others'.
                let _undone = conn.execute_batch("ROLLBACK TO call");
            }
            let _released = conn.execute_batch("RELEASE call");
        }
        answers.extend(answer);
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            TRANSACTIONS.fetch_add(1, Relaxed);
            for answer in answers {
                answer(None);
            }
        }
        Err(e) => {
            let failed = TaskFailed::not_committed(&e);
            if !conn.is_autocommit() {
                let _rolled_back = conn.execute_batch("ROLLBACK");
            }
            for answer in answers {
                answer(Some(&failed));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with a table whose rows must point at a parent row, checked at commit.
    fn db() -> Db {
        let conn = open_memory().expect("open");
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY,
                                 parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO parent (id) VALUES (1);",
        )
        .expect("schema");
        Db::new(conn)
    }

    /// Hold the connection's thread until the returned sender is dropped, so the calls made
    /// meanwhile wait together and run as one group.
    async fn hold(db: &Db) -> (std::sync::mpsc::Sender<()>, impl std::future::Future<Output = ()>) {
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let held = db.call(move |_c| {
            let _told = started_tx.send(());
            let _released_or_dropped = released.recv().is_ok();
            Ok::<_, StoreError>(())
        });
        started.await.expect("the holding call started");
        (release, async move { held.await.expect("held call") })
    }

    fn insert_child(id: i64, parent: i64) -> impl FnOnce(&mut Connection) -> Result<(), StoreError> {
        move |c| {
            c.execute("INSERT INTO child (id, parent) VALUES (?1, ?2)", [id, parent])
                .map(drop)
                .map_err(sql_error)
        }
    }

    fn children(db: &Db) -> Vec<i64> {
        let c = db.lock();
        let mut stmt = c.prepare("SELECT id FROM child ORDER BY id").expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[tokio::test]
    async fn calls_waiting_together_commit_together_and_each_is_answered_after_the_commit() {
        let db = db();
        let (release, held) = hold(&db).await;
        let calls: Vec<_> = (10..20).map(|id| db.call(insert_child(id, 1))).collect();
        // Nothing is answered while the group waits, so no write is acknowledged before it is
        // committed.
        let peek = db.call(|c| Ok::<_, StoreError>(c.is_autocommit()));
        drop(release);
        held.await;
        for call in calls {
            call.await.expect("committed");
        }
        assert!(
            !peek.await.expect("peek"),
            "a call of a group runs inside its transaction"
        );
        assert_eq!(children(&db), (10..20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_call_of_its_group_and_none_of_their_writes_stand() {
        let db = db();
        let (release, held) = hold(&db).await;
        let before = db.call(insert_child(1, 1));
        // Parent 99 does not exist: the statement succeeds, the group's COMMIT does not.
        let orphan = db.call(insert_child(2, 99));
        let after = db.call(insert_child(3, 1));
        drop(release);
        held.await;
        for (name, call) in [
            ("before", before.await),
            ("orphan", orphan.await),
            ("after", after.await),
        ] {
            assert!(
                matches!(call, Err(StoreError::Unexpected(ref e)) if e.to_string().contains("could not commit")),
                "{name}: {call:?}"
            );
        }
        assert_eq!(children(&db), Vec::<i64>::new());
        // The connection is usable again: the next call commits on its own.
        db.call(insert_child(4, 1)).await.expect("next call");
        assert_eq!(children(&db), [4]);
    }

    #[tokio::test]
    async fn a_call_that_panics_is_undone_and_the_rest_of_its_group_stands() {
        let db = db();
        let (release, held) = hold(&db).await;
        let first = db.call(insert_child(1, 1));
        let panicking = db.call(|c| -> Result<(), StoreError> {
            insert_child(2, 1)(c).expect("insert");
            panic!("a bug in a call");
        });
        let last = db.call(insert_child(3, 1));
        drop(release);
        held.await;
        first.await.expect("first");
        assert!(matches!(panicking.await, Err(StoreError::Unexpected(_))));
        last.await.expect("last");
        assert_eq!(children(&db), [1, 3]);
    }

    #[tokio::test]
    async fn a_failed_call_keeps_its_error_and_does_not_fail_its_group() {
        let db = db();
        let (release, held) = hold(&db).await;
        let first = db.call(insert_child(1, 1));
        let duplicate = db.call(|c| {
            c.execute("INSERT INTO parent (id) VALUES (1)", [])
                .map(drop)
                .map_err(insert_error)
        });
        let last = db.call(insert_child(3, 1));
        drop(release);
        held.await;
        first.await.expect("first");
        assert!(matches!(duplicate.await, Err(StoreError::ConditionFailed)));
        last.await.expect("last");
        assert_eq!(children(&db), [1, 3]);
    }

    #[tokio::test]
    async fn a_held_call_is_in_flight_until_release_and_its_write_lands_though_its_caller_left() {
        use std::future::Future as _;
        let db = db();
        let hold = db.hold();
        let mut dropped = Box::pin(db.call(insert_child(1, 1)));
        // Queued, not answered: the thread is held.
        let pending = std::future::poll_fn(|cx| std::task::Poll::Ready(dropped.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "answered while the thread was held");
        assert_eq!(hold.in_flight(), 1);
        drop(dropped);
        assert_eq!(hold.release().await, 1);
        assert_eq!(children(&db), [1]);
    }
}
