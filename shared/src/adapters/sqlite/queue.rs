//! `SqliteJobQueue`: the embedded, persistent [`JobQueue`] behind `smsrelay-local`.
//!
//! One table, `jobs` (see `schema::QUEUE`), which may live in the same SQLite file as the store
//! (its own connection, opened by `conn`: WAL mode, 5 s busy timeout). A job is hidden until `visible_at`; receiving it bumps
//! `receive_count` and pushes `visible_at` forward by the visibility timeout, and a receive that
//! would exceed `max_receives` marks it `dead` instead (the dead-letter queue is `dead = 1`).
//! Receipts carry the receive count (`"<row id>:<receive count>"`), so a stale receipt from an
//! earlier receive cannot delete a job that has since been received again (as in SQS).
//!
//! Time comes only from the injected [`Clock`]; this file must not read the system time. Every
//! SQLite call runs on the blocking pool, never on an async worker thread.

use super::conn::{self, Db};
use super::{schema, time};
use crate::ports::{Clock, JobPayload, JobQueue, QueueError, QueueStats, ReceivedJob, MAX_DELAY};
use anyhow::{anyhow, Context as _};
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Longest visibility timeout, as SQS's (12 hours); longer requests are capped.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// The SQLite-backed job queue. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct SqliteJobQueue {
    db: Db,
    max_receives: u32,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobQueue")
            .field("max_receives", &self.max_receives)
            .finish_non_exhaustive()
    }
}

impl SqliteJobQueue {
    /// Open (creating if needed) the queue in the SQLite file at `path`, which may be the store's
    /// file. A job received more than `max_receives` times is dead-lettered instead of returned.
    ///
    /// # Errors
    /// `Unexpected` when the file cannot be opened, switched to WAL, or the schema created.
    pub fn open(path: &Path, max_receives: u32, clock: Arc<dyn Clock>) -> Result<Self, QueueError> {
        let conn = conn::open_file(path)
            .with_context(|| format!("opening queue database {}", path.display()))
            .map_err(QueueError::Unexpected)?;
        Self::init(conn, max_receives, clock)
    }

    /// A private in-memory queue (tests, throwaway runs); gone when the last clone is dropped.
    ///
    /// # Errors
    /// `Unexpected` when SQLite cannot create the database or the schema.
    pub fn open_in_memory(max_receives: u32, clock: Arc<dyn Clock>) -> Result<Self, QueueError> {
        let conn = conn::open_memory()
            .context("opening in-memory queue database")
            .map_err(QueueError::Unexpected)?;
        Self::init(conn, max_receives, clock)
    }

    fn init(conn: Connection, max_receives: u32, clock: Arc<dyn Clock>) -> Result<Self, QueueError> {
        conn.execute_batch(schema::QUEUE)
            .context("creating the jobs table")
            .map_err(QueueError::Unexpected)?;
        Ok(Self::on(Db::new(conn), max_receives, clock))
    }

    /// The queue on a connection whose database has the jobs table (`SqliteStore::job_queue`).
    pub(crate) fn on(db: Db, max_receives: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            max_receives,
            clock,
        }
    }

    /// Run `f` with the connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    {
        self.db.call(f).await.map_err(QueueError::Unexpected)
    }
}

/// `now + by`, failing (rather than wrapping or saturating) on absurd durations.
fn later(now: DateTime<Utc>, by: Duration) -> anyhow::Result<DateTime<Utc>> {
    let delta = TimeDelta::from_std(by).context("duration out of range")?;
    now.checked_add_signed(delta).context("time out of range")
}

/// A receipt: the row id and the receive count it was issued for.
fn receipt(id: i64, receive_count: u32) -> String {
    format!("{id}:{receive_count}")
}

fn parse_receipt(receipt: &str) -> anyhow::Result<(i64, i64)> {
    let (id, count) = receipt
        .split_once(':')
        .ok_or_else(|| anyhow!("receipt is not <id>:<receive count>"))?;
    Ok((
        id.parse().context("receipt row id is not a number")?,
        count.parse().context("receipt receive count is not a number")?,
    ))
}

/// One due row, as selected by `receive`.
struct DueRow {
    id: i64,
    message_id: String,
    payload: String,
    receive_count: i64,
}

#[async_trait]
impl JobQueue for SqliteJobQueue {
    async fn enqueue(&self, payload: &JobPayload, delay: Duration) -> Result<(), QueueError> {
        let now = self.clock.now();
        let visible_at = later(now, delay.min(MAX_DELAY)).map_err(QueueError::Unexpected)?;
        let body = serde_json::to_string(payload)
            .context("serializing job payload")
            .map_err(QueueError::Unexpected)?;
        // The queue's message id is a ULID of the enqueue time (from the clock, not the system).
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let message_id = ulid::Ulid::from_parts(ms, rand::random::<u128>()).to_string();
        let (visible_at, created_at) = (time::fixed(&visible_at), time::fixed(&now));
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO jobs (queue_message_id, payload, visible_at, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![message_id, body, visible_at, created_at],
            )
            .context("inserting job")?;
            Ok(())
        })
        .await
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedJob>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let hidden_until = time::fixed(&later(now, visibility.min(MAX_VISIBILITY)).map_err(QueueError::Unexpected)?);
        let now = time::fixed(&now);
        let max_receives = i64::from(self.max_receives);
        let rows = self
            .with_conn(move |conn| {
                let tx = conn.savepoint().context("beginning receive transaction")?;
                let mut taken: Vec<DueRow> = Vec::new();
                // Rows that die here drop out of the next select, so each pass makes progress.
                loop {
                    let want = i64::try_from(max - taken.len()).unwrap_or(i64::MAX);
                    let due = {
                        let mut stmt = tx
                            .prepare_cached(
                                "SELECT id, queue_message_id, payload, receive_count FROM jobs
                                 WHERE dead = 0 AND visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2",
                            )
                            .context("preparing due-job select")?;
                        let rows = stmt
                            .query_map(params![now, want], |row| {
                                Ok(DueRow {
                                    id: row.get(0)?,
                                    message_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                                    payload: row.get(2)?,
                                    receive_count: row.get(3)?,
                                })
                            })
                            .context("selecting due jobs")?;
                        rows.collect::<Result<Vec<_>, _>>().context("reading due jobs")?
                    };
                    if due.is_empty() {
                        break;
                    }
                    for mut row in due {
                        if row.receive_count + 1 > max_receives {
                            tx.execute("UPDATE jobs SET dead = 1 WHERE id = ?1", params![row.id])
                                .context("dead-lettering job")?;
                            tracing::warn!(
                                queue_message_id = %row.message_id,
                                receive_count = row.receive_count,
                                "job exceeded its receive limit; moved to the dead-letter queue"
                            );
                            continue;
                        }
                        tx.execute(
                            "UPDATE jobs SET receive_count = receive_count + 1, visible_at = ?2 WHERE id = ?1",
                            params![row.id, hidden_until],
                        )
                        .context("hiding received job")?;
                        row.receive_count += 1;
                        taken.push(row);
                    }
                    if taken.len() >= max {
                        break;
                    }
                }
                tx.commit().context("committing receive")?;
                Ok(taken)
            })
            .await?;

        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let receive_count = u32::try_from(row.receive_count)
                .context("receive count out of range")
                .map_err(QueueError::Unexpected)?;
            match serde_json::from_str::<JobPayload>(&row.payload) {
                Ok(payload) => jobs.push(ReceivedJob {
                    receipt: receipt(row.id, receive_count),
                    message_id: row.message_id,
                    payload,
                    receive_count,
                }),
                // Left hidden and counted: it dead-letters after `max_receives`, like SQS's redrive.
                Err(e) => tracing::error!(
                    queue_message_id = %row.message_id,
                    error.message = %e,
                    "skipping a job whose payload is malformed"
                ),
            }
        }
        Ok(jobs)
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        let (id, receive_count) = parse_receipt(receipt).map_err(QueueError::Unexpected)?;
        self.with_conn(move |conn| {
            // A stale receipt (job received again since, dead-lettered, or already acked) deletes
            // nothing and is not an error, as with SQS.
            let deleted = conn
                .execute(
                    "DELETE FROM jobs WHERE id = ?1 AND receive_count = ?2 AND dead = 0",
                    params![id, receive_count],
                )
                .context("deleting acked job")?;
            if deleted == 0 {
                tracing::debug!(receipt_id = id, "ack with a stale receipt deleted nothing");
            }
            Ok(())
        })
        .await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.with_conn(|conn| {
            let (pending, dead): (i64, i64) = conn
                .query_row(
                    "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM jobs",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .context("counting jobs")?;
            Ok(QueueStats {
                pending: u64::try_from(pending).context("negative pending count")?,
                dead: u64::try_from(dead).context("negative dead count")?,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageId;
    use crate::testing::ManualClock;
    use chrono::TimeZone as _;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a valid time")
    }

    fn queue(max_receives: u32) -> (SqliteJobQueue, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(start()));
        let queue = SqliteJobQueue::open_in_memory(max_receives, clock.clone()).expect("open in memory");
        (queue, clock)
    }

    fn payload() -> JobPayload {
        JobPayload::send_attempt(MessageId::generate(start()), start())
    }

    const VIS: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn delay_is_honoured_to_the_millisecond_on_the_clock() {
        let (q, clock) = queue(3);
        q.enqueue(&payload(), Duration::from_millis(1500))
            .await
            .expect("enqueue");
        clock.advance(Duration::from_millis(1499));
        assert!(q.receive(10, VIS).await.expect("receive").is_empty());
        clock.advance(Duration::from_millis(1));
        assert_eq!(q.receive(10, VIS).await.expect("receive").len(), 1);
    }

    #[tokio::test]
    async fn delay_is_capped_at_max_delay() {
        let (q, clock) = queue(3);
        q.enqueue(&payload(), Duration::from_secs(7200)).await.expect("enqueue");
        clock.advance(MAX_DELAY);
        assert_eq!(q.receive(10, VIS).await.expect("receive").len(), 1);
    }

    #[tokio::test]
    async fn job_dead_letters_on_the_receive_after_max_receives() {
        let (q, clock) = queue(3);
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        for n in 1..=3 {
            let got = q.receive(10, VIS).await.expect("receive");
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, n);
            clock.advance(VIS);
        }
        assert!(q.receive(10, VIS).await.expect("receive").is_empty());
        assert_eq!(q.stats().await.expect("stats"), QueueStats { pending: 0, dead: 1 });
        clock.advance(VIS * 10);
        assert!(q.receive(10, VIS).await.expect("receive").is_empty());
    }

    #[tokio::test]
    async fn dead_rows_do_not_starve_a_receive_of_live_ones() {
        let (q, clock) = queue(1);
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        assert_eq!(q.receive(2, VIS).await.expect("receive").len(), 2);
        clock.advance(VIS);
        let fresh = payload();
        q.enqueue(&fresh, Duration::ZERO).await.expect("enqueue");
        // The two exhausted jobs sort first; they die and the fresh one is still returned.
        let got = q.receive(1, VIS).await.expect("receive");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, fresh);
        assert_eq!(q.stats().await.expect("stats"), QueueStats { pending: 1, dead: 2 });
    }

    #[tokio::test]
    async fn stale_receipt_does_not_delete_a_re_received_job() {
        let (q, clock) = queue(3);
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        let first = q.receive(1, VIS).await.expect("receive").remove(0);
        clock.advance(VIS);
        let second = q.receive(1, VIS).await.expect("receive").remove(0);
        assert_eq!(first.message_id, second.message_id);
        assert_ne!(first.receipt, second.receipt);
        q.ack(&first.receipt).await.expect("ack");
        assert_eq!(q.stats().await.expect("stats").pending, 1);
        q.ack(&second.receipt).await.expect("ack");
        assert_eq!(q.stats().await.expect("stats").pending, 0);
        q.ack(&second.receipt).await.expect("ack");
    }

    #[tokio::test]
    async fn garbage_receipt_is_an_error() {
        let (q, _clock) = queue(3);
        assert!(matches!(q.ack("nope").await, Err(QueueError::Unexpected(_))));
        assert!(matches!(q.ack("1:x").await, Err(QueueError::Unexpected(_))));
    }

    #[tokio::test]
    async fn receive_returns_oldest_visible_first_and_respects_max() {
        let (q, clock) = queue(3);
        let (a, b, c) = (payload(), payload(), payload());
        q.enqueue(&c, Duration::from_secs(3)).await.expect("enqueue");
        q.enqueue(&a, Duration::from_secs(1)).await.expect("enqueue");
        q.enqueue(&b, Duration::from_secs(2)).await.expect("enqueue");
        clock.advance(Duration::from_secs(3));
        let got = q.receive(2, VIS).await.expect("receive");
        let got: Vec<_> = got.into_iter().map(|j| j.payload).collect();
        assert_eq!(got, vec![a, b]);
        assert_eq!(q.receive(0, VIS).await.expect("receive").len(), 0);
        assert_eq!(q.receive(5, VIS).await.expect("receive")[0].payload, c);
    }

    #[tokio::test]
    async fn message_ids_are_ulids_and_unique() {
        let (q, _clock) = queue(3);
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        let got = q.receive(10, VIS).await.expect("receive");
        assert_eq!(got.len(), 2);
        assert_ne!(got[0].message_id, got[1].message_id);
        for job in &got {
            assert_eq!(
                ulid::Ulid::from_string(&job.message_id).expect("a ULID").timestamp_ms(),
                1_772_366_400_000
            );
        }
    }

    #[tokio::test]
    async fn malformed_row_is_skipped_and_eventually_dead_lettered() {
        let (q, clock) = queue(2);
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        q.with_conn(|conn| Ok(conn.execute("UPDATE jobs SET payload = 'not json'", [])?))
            .await
            .expect("corrupt the row");
        for _ in 0..3 {
            assert!(q.receive(10, VIS).await.expect("receive").is_empty());
            clock.advance(VIS);
        }
        assert_eq!(q.stats().await.expect("stats"), QueueStats { pending: 0, dead: 1 });
    }

    #[tokio::test]
    async fn visibility_is_capped_at_twelve_hours() {
        let (q, clock) = queue(3);
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        assert_eq!(q.receive(1, Duration::MAX).await.expect("receive").len(), 1);
        clock.advance(MAX_VISIBILITY);
        assert_eq!(q.receive(1, VIS).await.expect("receive").len(), 1);
    }

    #[tokio::test]
    async fn queue_waits_for_the_stores_write_lock_instead_of_failing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("smsrelay.db");
        let clock = Arc::new(ManualClock::new(start()));
        let q = SqliteJobQueue::open(&path, 3, clock).expect("open file queue");
        // Given the store's connection holding the write lock for a while
        let mut store = Connection::open(&path).expect("store connection");
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let tx = store.savepoint().expect("store write lock");
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(300));
            tx.commit().expect("store commit");
        });
        locked_rx.recv().expect("lock taken");
        // When the queue writes, then it waits (busy timeout) and succeeds
        q.enqueue(&payload(), Duration::ZERO)
            .await
            .expect("enqueue behind the store's lock");
        holder.join().expect("store thread");
        assert_eq!(q.stats().await.expect("stats").pending, 1);
    }

    #[tokio::test]
    async fn file_queue_uses_wal_persists_and_shares_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("smsrelay.db");
        // Given another connection (the store) already using the file
        let store = Connection::open(&path).expect("store connection");
        store
            .execute_batch("CREATE TABLE messages (id TEXT PRIMARY KEY)")
            .expect("create store table");
        let clock = Arc::new(ManualClock::new(start()));
        let q = SqliteJobQueue::open(&path, 3, clock.clone()).expect("open file queue");
        q.enqueue(&payload(), Duration::ZERO).await.expect("enqueue");
        // WAL is a property of the file: any new connection sees it.
        let other = Connection::open(&path).expect("another connection");
        let mode: String = other.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("query");
        assert_eq!(mode, "wal");
        drop(q);
        // When the queue is reopened
        let q = SqliteJobQueue::open(&path, 3, clock).expect("reopen file queue");
        // Then the job is still there, and the store's table is untouched
        assert_eq!(q.receive(10, VIS).await.expect("receive").len(), 1);
        let n: i64 = store
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .expect("query");
        assert_eq!(n, 0);
    }
}
