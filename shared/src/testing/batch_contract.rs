//! The `BatchStore` contract: behaviour every adapter must show, run against each of them.
//!
//! [`batch_contract!`](crate::batch_contract) expands one `#[tokio::test]` per behaviour; each
//! test builds a fresh store with the expression it is given, so tests never share state. The
//! checks are the `pub async fn`s below, named after the tests. Times are fixed (the caller's
//! `now`), far from the wall clock. This module is test support: it panics on a broken contract.

use crate::domain::MessageId;
use crate::ports::{BatchProgress, BatchRecord, BatchStore, ItemOutcome, StoreError};
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use std::sync::Arc;

/// Expand the batch contract suite: one `#[tokio::test]` per behaviour. `$make` is an async
/// expression whose output implements [`ContractBatches`] (a store, an `Arc` of one, or a
/// `(store, guard)` pair).
#[macro_export]
macro_rules! batch_contract {
    ($make:expr) => {
        $crate::batch_contract!(@tests $make;
            a_created_batch_reads_back_with_finished_at_rejected,
            creating_an_existing_batch_fails,
            an_unknown_batch_is_none,
            an_expired_batch_is_none,
            an_item_is_counted_once,
            each_outcome_counts_in_its_own_tally,
            concurrent_counts_of_distinct_items_all_count,
            concurrent_counts_of_one_item_count_once,
            an_item_of_an_unknown_batch_is_not_counted,
            unwritten_items_add_to_finished,
            completion_is_claimed_exactly_once,
            the_alert_marker_is_remembered,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let fixture = $make.await;
                $crate::testing::batch_contract::$name(
                    $crate::testing::batch_contract::ContractBatches::batches(&fixture),
                )
                .await;
            }
        )+
    };
}

/// What a `batch_contract!` maker may produce: something that lends a `&dyn BatchStore`.
pub trait ContractBatches {
    /// The store under test.
    fn batches(&self) -> &dyn BatchStore;
}

impl<S: BatchStore> ContractBatches for Arc<S> {
    fn batches(&self) -> &dyn BatchStore {
        &**self
    }
}

impl ContractBatches for crate::adapters::sqlite::SqliteStore {
    fn batches(&self) -> &dyn BatchStore {
        self
    }
}

#[cfg(feature = "aws")]
impl ContractBatches for crate::adapters::dynamodb::DynamoMessageStore {
    fn batches(&self) -> &dyn BatchStore {
        self
    }
}

/// A store plus a guard that must outlive it (a temporary directory).
impl<S: ContractBatches, G> ContractBatches for (S, G) {
    fn batches(&self) -> &dyn BatchStore {
        self.0.batches()
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).expect("time")
}

fn item(n: i64) -> MessageId {
    MessageId::generate(now() + Duration::milliseconds(n))
}

fn record(total: u32, rejected: u32) -> BatchRecord {
    BatchRecord {
        id: format!("bat_{}", ulid::Ulid::new()),
        total,
        accepted: total - rejected,
        rejected,
        created_at: now() + Duration::nanoseconds(123_456_789),
        expires_at: now() + Duration::days(30),
    }
}

async fn created(store: &dyn BatchStore, total: u32, rejected: u32) -> BatchRecord {
    let r = record(total, rejected);
    store.create_batch(&r).await.expect("create batch");
    r
}

async fn progress(store: &dyn BatchStore, id: &str) -> BatchProgress {
    store
        .get_batch(id, now())
        .await
        .expect("get batch")
        .expect("the batch exists")
        .progress
}

/// Round-trip of the record; `finished` starts at `rejected`, the tallies at 0.
pub async fn a_created_batch_reads_back_with_finished_at_rejected(store: &dyn BatchStore) {
    let r = created(store, 5, 2).await;
    let got = store.get_batch(&r.id, now()).await.expect("get").expect("exists");
    assert_eq!(got.record, r);
    assert_eq!(
        got.progress,
        BatchProgress {
            finished: 2,
            ..BatchProgress::default()
        }
    );
    assert!(!got.alerted);
    assert!(!got.is_complete());
}

/// The id is unique.
pub async fn creating_an_existing_batch_fails(store: &dyn BatchStore) {
    let r = created(store, 1, 0).await;
    assert!(matches!(store.create_batch(&r).await, Err(StoreError::ConditionFailed)));
}

/// Nothing stored, nothing read.
pub async fn an_unknown_batch_is_none(store: &dyn BatchStore) {
    assert_eq!(store.get_batch("bat_unknown", now()).await.expect("get"), None);
}

/// Past `expires_at` (the caller's `now`), a batch reads as absent even before it is deleted.
pub async fn an_expired_batch_is_none(store: &dyn BatchStore) {
    let r = created(store, 1, 0).await;
    let later = r.expires_at + Duration::seconds(1);
    assert_eq!(store.get_batch(&r.id, later).await.expect("get"), None);
    assert!(store.get_batch(&r.id, r.expires_at).await.expect("get").is_some());
}

/// A second count of the same item changes nothing and returns `None`.
pub async fn an_item_is_counted_once(store: &dyn BatchStore) {
    let r = created(store, 2, 0).await;
    let m = item(1);
    let first = store
        .record_item(&r.id, &m, ItemOutcome::Sent, now())
        .await
        .expect("count")
        .expect("counted");
    assert_eq!((first.progress.sent, first.progress.finished), (1, 1));
    let again = store
        .record_item(&r.id, &m, ItemOutcome::Failed, now())
        .await
        .expect("count again");
    assert_eq!(again, None);
    let p = progress(store, &r.id).await;
    assert_eq!((p.sent, p.failed, p.finished), (1, 0, 1));
}

/// Every outcome has its tally; `finished` counts them all; the last makes it complete.
pub async fn each_outcome_counts_in_its_own_tally(store: &dyn BatchStore) {
    let r = created(store, 5, 1).await;
    let outcomes = [
        ItemOutcome::Sent,
        ItemOutcome::Failed,
        ItemOutcome::Suppressed,
        ItemOutcome::RateLimited,
    ];
    let mut last = None;
    for (i, o) in outcomes.into_iter().enumerate() {
        last = store
            .record_item(&r.id, &item(i64::try_from(i).expect("index")), o, now())
            .await
            .expect("count");
    }
    let state = last.expect("the last count returns the batch");
    assert_eq!(
        state.progress,
        BatchProgress {
            sent: 1,
            failed: 1,
            suppressed: 1,
            rate_limited: 1,
            finished: 5,
        }
    );
    assert!(state.is_complete());
}

/// Counts are atomic: 20 concurrent counts of distinct items finish 20.
pub async fn concurrent_counts_of_distinct_items_all_count(store: &dyn BatchStore) {
    let r = created(store, 20, 0).await;
    let ids: Vec<MessageId> = (0..20).map(item).collect();
    let results = join_all(
        ids.iter()
            .map(|m| store.record_item(&r.id, m, ItemOutcome::Sent, now())),
    )
    .await;
    let mut finished: Vec<u32> = results
        .into_iter()
        .map(|x| x.expect("count").expect("counted").progress.finished)
        .collect();
    finished.sort_unstable();
    assert_eq!(finished.last(), Some(&20));
    let p = progress(store, &r.id).await;
    assert_eq!((p.sent, p.finished), (20, 20));
}

/// Ten concurrent counts of one item: exactly one counts it.
pub async fn concurrent_counts_of_one_item_count_once(store: &dyn BatchStore) {
    let r = created(store, 3, 0).await;
    let m = item(7);
    let results = join_all((0..10).map(|_| store.record_item(&r.id, &m, ItemOutcome::Failed, now()))).await;
    let counted = results
        .into_iter()
        .filter(|x| x.as_ref().expect("count").is_some())
        .count();
    assert_eq!(counted, 1);
    let p = progress(store, &r.id).await;
    assert_eq!((p.failed, p.finished), (1, 1));
}

/// No batch, no count (and nothing created).
pub async fn an_item_of_an_unknown_batch_is_not_counted(store: &dyn BatchStore) {
    let got = store
        .record_item("bat_unknown", &item(1), ItemOutcome::Sent, now())
        .await
        .expect("count");
    assert_eq!(got, None);
    assert_eq!(store.get_batch("bat_unknown", now()).await.expect("get"), None);
}

/// Items whose record was never written finish without a tally.
pub async fn unwritten_items_add_to_finished(store: &dyn BatchStore) {
    let r = created(store, 4, 1).await;
    store.add_finished(&r.id, 2).await.expect("add finished");
    let p = progress(store, &r.id).await;
    assert_eq!((p.finished, p.sent, p.failed), (3, 0, 0));
}

/// Completion is taken once, by one of many concurrent callers.
pub async fn completion_is_claimed_exactly_once(store: &dyn BatchStore) {
    let r = created(store, 1, 1).await;
    let results = join_all((0..10).map(|_| store.claim_completion(&r.id))).await;
    let won = results.into_iter().filter(|x| *x.as_ref().expect("claim")).count();
    assert_eq!(won, 1);
    assert!(!store.claim_completion(&r.id).await.expect("claim again"));
}

/// `mark_alerted` shows in the state read afterwards.
pub async fn the_alert_marker_is_remembered(store: &dyn BatchStore) {
    let r = created(store, 2, 0).await;
    store.mark_alerted(&r.id).await.expect("mark");
    assert!(
        store
            .get_batch(&r.id, now())
            .await
            .expect("get")
            .expect("exists")
            .alerted
    );
}
