//! The embedded SQLite adapters behind `smsrelay-local`, one file per aggregate, mirroring
//! `adapters::dynamodb`:
//!
//! - [`conn`]: the one connection helper (open, WAL, busy timeout, blocking-pool calls, errors).
//! - [`schema`]: every table and index.
//! - [`time`]: the one stored time format.
//! - `messages`: `MessageStore` and `MessageQueries` (messages, sid pointers, webhook receipts,
//!   the due index, the failed list, messages of a ref).
//! - `consent`: `ConsentStore` (opt-outs and their evidence, send slots).
//! - `conversations`: `ConversationStore` (conversations, one open per pair).
//! - `campaigns`: `CampaignStore` (campaigns, enrolments one per lead and campaign, their due index).
//! - `idempotency`: `IdempotencyStore`.
//! - `counters`: `CounterStore` (counters, claims, documents).
//! - `batches`: `BatchStore` (batch records, tallies, items counted once).
//! - `retention`: `Retention` (deleting what expired: SQLite has no TTL).
//! - [`queue`]: `SqliteJobQueue`, the retry queue.
//! - [`event_log`]: `LogEventPublisher`, domain events in the log and a table.
//! - [`simulator`]: `SimulatorLedger`, the Twilio simulator's accepted messages.
//!
//! Aggregate modules use `conn`, `schema` and `time` only, never each other. The conditional
//! writes mirror `DynamoMessageStore`, and the contract suites in `crate::testing` hold the two
//! to the same behaviour. Nothing here creates the database's parent directory: the caller owns
//! the path.

mod batches;
mod campaigns;
pub(crate) mod conn;
mod consent;
mod conversations;
mod counters;
pub mod event_log;
mod idempotency;
mod messages;
pub mod queue;
mod retention;
pub(crate) mod schema;
pub mod simulator;
pub(crate) mod time;

#[cfg(any(test, feature = "testing"))]
pub use conn::ConnectionHold;
pub use conn::{work_done, WorkDone};
pub use event_log::{EventLogError, LogEventPublisher};
pub use queue::SqliteJobQueue;
pub use simulator::SimulatorLedger;

use crate::ports::StoreError;
use conn::Db;
use rusqlite::Connection;
use std::path::Path;

/// Every store port in one SQLite database file (one connection behind a mutex).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    /// Open (or create) the database at `path`, in WAL mode, creating the tables if missing.
    /// The parent directory must exist.
    ///
    /// # Errors
    /// `Unexpected` if the file cannot be opened or the schema cannot be created; `Throttled` if
    /// another process holds the database locked for longer than the busy timeout.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::with_schema(conn::open_file(path)?)
    }

    /// A private database that lives as long as the store (tests, throwaway runs).
    ///
    /// # Errors
    /// `Unexpected` if SQLite cannot create it.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::with_schema(conn::open_memory()?)
    }

    fn with_schema(conn: Connection) -> Result<Self, StoreError> {
        for tables in [schema::STORE, schema::QUEUE, schema::EVENTS, schema::SIMULATOR] {
            conn.execute_batch(tables).map_err(conn::sql_error)?;
        }
        Ok(Self { db: Db::new(conn) })
    }

    /// The retry queue in this store's database, on its connection: one connection thread for
    /// the process, so the store's and the queue's writes share group commits and no
    /// connection's page cache is invalidated by another's writes.
    #[must_use]
    pub fn job_queue(&self, max_receives: u32, clock: std::sync::Arc<dyn crate::ports::Clock>) -> SqliteJobQueue {
        SqliteJobQueue::on(self.db.clone(), max_receives, clock)
    }

    /// The event log in this store's database, on its connection (as [`Self::job_queue`]).
    #[must_use]
    pub fn event_log(&self) -> LogEventPublisher {
        LogEventPublisher::on(self.db.clone())
    }

    /// The Twilio simulator's ledger in this store's database, on its connection (as
    /// [`Self::job_queue`]).
    #[must_use]
    pub fn simulator_ledger(&self) -> SimulatorLedger {
        SimulatorLedger::on(self.db.clone())
    }

    /// Hold the connection's thread: a call made from now on is queued and not answered until
    /// the hold is released (the simulation's crash with a store call in flight).
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn hold_connection(&self) -> ConnectionHold {
        self.db.hold()
    }

    /// Run `f` on the connection on tokio's blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.db.call(f).await
    }
}
