//! `CounterStore` on `SqliteStore`: counters, one-time claims and small JSON documents.
//!
//! Same semantics as the DynamoDB adapter (the counter contract suite runs against both). Expiry
//! is epoch seconds, like DynamoDB's TTL attribute: a row whose `expires_at` is before the second
//! of the caller's `now` reads as absent, and an add to an expired counter restarts it from 0. Expired rows are
//! not deleted (nothing here scans the tables); they are overwritten when their key is written
//! again. Every check-and-write is a single statement, so it is atomic under SQLite's own locking
//! across connections and processes, not only under the store's mutex.

use super::conn::sql_error;
use super::{time, SqliteStore};
use crate::ports::{epoch_nanos, CounterOp, CounterStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

/// One UPSERT: a new row starts at `by`; a live row adds `by` and takes the new expiry if one is
/// given (else keeps its own); an expired row restarts at `by` with the new expiry (or none).
/// All right-hand sides see the row as it was before the update.
const ADD: &str = "
INSERT INTO counters (key, value, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN counters.expires_at < ?4 THEN excluded.value
                 ELSE counters.value + excluded.value END,
    expires_at = CASE WHEN counters.expires_at < ?4 THEN excluded.expires_at
                      ELSE COALESCE(excluded.expires_at, counters.expires_at) END
RETURNING value";

/// Set to 0, keeping the expiry (a missing counter is created at 0, with no expiry).
const RESET: &str = "
INSERT INTO counters (key, value, expires_at) VALUES (?1, 0, NULL)
ON CONFLICT (key) DO UPDATE SET value = 0";

/// A live counter's value (no row for absent or expired ones).
const VALUE: &str = "SELECT value FROM counters WHERE key = ?1 AND (expires_at IS NULL OR expires_at >= ?2)";

/// Insert the claim, or take over one held until before `now`; one changed row means taken.
const CLAIM: &str = "
INSERT INTO claims (key, until) VALUES (?1, ?2)
ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE claims.until < ?3";

const PUT_DOC: &str = "
INSERT INTO docs (key, doc, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET doc = excluded.doc, expires_at = excluded.expires_at";

/// Reserve a schedule slot (see `reserve_slot`): the row's `value` is the next free slot in epoch
/// nanoseconds. A new row, or one whose next slot has passed, starts from `now` (?2); the update
/// happens only while that slot is before the deadline (?4), and returns the new next slot (the
/// reserved one plus the gap, ?3). One statement, so atomic across connections and processes.
const RESERVE_SLOT: &str = "
INSERT INTO counters (key, value, expires_at) VALUES (?1, ?2 + ?3, ?5)
ON CONFLICT (key) DO UPDATE SET value = MAX(counters.value, ?2) + ?3, expires_at = ?5
    WHERE MAX(counters.value, ?2) < ?4
RETURNING value";

/// A live document (no row for absent or expired ones).
const GET_DOC: &str = "SELECT doc FROM docs WHERE key = ?1 AND (expires_at IS NULL OR expires_at >= ?2)";

#[async_trait]
impl CounterStore for SqliteStore {
    /// One `INSERT … ON CONFLICT DO UPDATE … RETURNING value` (see `ADD`).
    async fn add(
        &self,
        key: &str,
        by: i64,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let key = key.to_owned();
        let expires = expires_at.map(|t| t.timestamp());
        let now = now.timestamp();
        self.run(move |conn| {
            conn.prepare_cached(ADD)
                .map_err(sql_error)?
                .query_row(params![key, by, expires, now], |r| r.get(0))
                .map_err(sql_error)
        })
        .await
    }

    /// One UPSERT (see `RESET`).
    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            conn.prepare_cached(RESET)
                .map_err(sql_error)?
                .execute(params![key])
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    /// Every change in one transaction (one commit), with the statements of `add` and `reset`.
    async fn add_many(&self, ops: &[CounterOp], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let ops = ops.to_vec();
        let now = now.timestamp();
        self.run(move |conn| {
            let tx = conn.savepoint().map_err(sql_error)?;
            let mut out = Vec::with_capacity(ops.len());
            for op in &ops {
                out.push(match op {
                    CounterOp::Add { key, by, expires_at } => tx
                        .prepare_cached(ADD)
                        .map_err(sql_error)?
                        .query_row(params![key, by, expires_at.map(|t| t.timestamp()), now], |r| r.get(0))
                        .map_err(sql_error)?,
                    CounterOp::Reset { key } => {
                        tx.prepare_cached(RESET)
                            .map_err(sql_error)?
                            .execute(params![key])
                            .map_err(sql_error)?;
                        0
                    }
                });
            }
            tx.commit().map_err(sql_error)?;
            Ok(out)
        })
        .await
    }

    /// One indexed lookup per key, all under the connection lock.
    async fn values(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let now = now.timestamp();
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(VALUE).map_err(sql_error)?;
            keys.iter()
                .map(|key| {
                    let value: Option<i64> = stmt
                        .query_row(params![key, now], |r| r.get(0))
                        .optional()
                        .map_err(sql_error)?;
                    Ok(value.unwrap_or(0))
                })
                .collect()
        })
        .await
    }

    /// One conditional UPSERT (see `CLAIM`): taken if a row was inserted or taken over.
    async fn claim(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let (key, now, until) = (key.to_owned(), time::fixed(&now), time::fixed(&until));
        self.run(move |conn| {
            let changed = conn
                .prepare_cached(CLAIM)
                .map_err(sql_error)?
                .execute(params![key, until, now])
                .map_err(sql_error)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn put_doc(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        let doc = serde_json::to_string(doc)
            .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode document")))?;
        let expires = expires_at.map(|t| t.timestamp());
        self.run(move |conn| {
            conn.prepare_cached(PUT_DOC)
                .map_err(sql_error)?
                .execute(params![key, doc, expires])
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn get_doc(&self, key: &str, now: DateTime<Utc>) -> Result<Option<serde_json::Value>, StoreError> {
        let key = key.to_owned();
        let now = now.timestamp();
        self.run(move |conn| {
            let doc: Option<String> = conn
                .prepare_cached(GET_DOC)
                .map_err(sql_error)?
                .query_row(params![key, now], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            doc.map(|doc| serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("document {key}: {e}"))))
                .transpose()
        })
        .await
    }

    /// One conditional UPSERT (see `RESERVE_SLOT`) on the counter `schedule#<key>`.
    async fn reserve_slot(
        &self,
        key: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
        deadline: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if now >= deadline {
            return Ok(None);
        }
        let key = schedule_key(key);
        let gap_ns = i64::try_from(gap.as_nanos()).unwrap_or(i64::MAX);
        let (now_ns, deadline_ns) = (epoch_nanos(now)?, epoch_nanos(deadline)?);
        let expires = deadline.timestamp() + 3600;
        let next: Option<i64> = self
            .run(move |conn| {
                conn.prepare_cached(RESERVE_SLOT)
                    .map_err(sql_error)?
                    .query_row(params![key, now_ns, gap_ns, deadline_ns, expires], |r| r.get(0))
                    .optional()
                    .map_err(sql_error)
            })
            .await?;
        next.map(|next| Ok(DateTime::from_timestamp_nanos(next - gap_ns)))
            .transpose()
    }
}

/// The counter a schedule's next free slot is kept in.
fn schedule_key(key: &str) -> String {
    format!("schedule#{key}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Retention as _;
    use chrono::Duration;

    #[tokio::test]
    async fn a_document_that_does_not_parse_is_corrupt() {
        let store = SqliteStore::open_in_memory().expect("store");
        store
            .put_doc("k", &serde_json::json!({"a": 1}), None)
            .await
            .expect("put");
        store
            .run(|conn| {
                conn.execute("UPDATE docs SET doc = '{not json' WHERE key = 'k'", [])
                    .map_err(sql_error)
            })
            .await
            .expect("corrupt the row");
        assert!(matches!(
            store.get_doc("k", Utc::now()).await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn an_add_keeps_the_expiry_unless_given_and_a_restart_drops_the_stale_one() {
        let store = SqliteStore::open_in_memory().expect("store");
        let later = Utc::now() + Duration::hours(1);
        let past = Utc::now() - Duration::hours(1);
        let expiry = |store: SqliteStore| async move {
            store
                .run(|conn| {
                    conn.query_row("SELECT expires_at FROM counters WHERE key = 'k'", [], |r| {
                        r.get::<_, Option<i64>>(0)
                    })
                    .map_err(sql_error)
                })
                .await
                .expect("read expiry")
        };
        assert_eq!(store.add("k", 1, Some(later), Utc::now()).await.expect("add"), 1);
        assert_eq!(store.add("k", 1, None, Utc::now()).await.expect("add"), 2);
        assert_eq!(expiry(store.clone()).await, Some(later.timestamp()));
        assert_eq!(store.add("k", 1, Some(past), Utc::now()).await.expect("add"), 3);
        assert_eq!(store.add("k", 5, None, Utc::now()).await.expect("add"), 5);
        assert_eq!(expiry(store.clone()).await, None);
    }

    #[tokio::test]
    async fn a_claim_held_exactly_until_now_is_still_held() {
        let store = SqliteStore::open_in_memory().expect("store");
        let now = Utc::now();
        let until = now + Duration::minutes(5);
        assert!(store.claim("c", now, until).await.expect("claim"));
        assert!(!store
            .claim("c", until, until + Duration::minutes(5))
            .await
            .expect("claim"));
        assert!(store
            .claim("c", until + Duration::milliseconds(1), until + Duration::minutes(5))
            .await
            .expect("claim"));
    }

    #[tokio::test]
    async fn purging_removes_only_what_has_expired() {
        let store = SqliteStore::open_in_memory().expect("store");
        let now = chrono::Utc::now();
        store
            .add("old", 1, Some(now - chrono::Duration::hours(1)), now)
            .await
            .expect("add");
        store
            .add("live", 1, Some(now + chrono::Duration::hours(1)), now)
            .await
            .expect("add");
        store.add("forever", 1, None, Utc::now()).await.expect("add");
        assert!(store
            .claim("held", now, now + chrono::Duration::minutes(5))
            .await
            .expect("claim"));
        assert!(store
            .claim(
                "done",
                now - chrono::Duration::hours(2),
                now - chrono::Duration::hours(1)
            )
            .await
            .expect("claim"));
        let purged = store.purge_expired(now).await.expect("purge");
        assert_eq!(purged, 2, "the expired counter and the released claim");
        let keys = ["old".to_owned(), "live".to_owned(), "forever".to_owned()];
        assert_eq!(store.values(&keys, Utc::now()).await.expect("values"), vec![0, 1, 1]);
        assert!(
            !store
                .claim("held", now, now + chrono::Duration::minutes(5))
                .await
                .expect("claim"),
            "a held claim survives"
        );
    }
}
