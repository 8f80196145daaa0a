//! The `CounterStore` contract: behaviour every adapter must show, run against each of them.
//!
//! [`counter_contract!`](crate::counter_contract) expands one `#[tokio::test]` per behaviour; each
//! test builds a fresh store with the expression it is given (a new table, a new database file),
//! so tests never share state and may run in parallel. The checks themselves are the `pub async
//! fn`s below, named after the tests. Expiry is judged by the store against the wall clock, so
//! the fixtures set expiries an hour before or after now, and
//! one test moves the caller's `now` days away from the wall clock. This module is test support: it panics
//! on a broken contract.
//!
//! ```ignore
//! mod sqlite {
//!     smsrelay::counter_contract!(async {
//!         smsrelay::adapters::sqlite::SqliteStore::open_in_memory().expect("store")
//!     });
//! }
//! ```

#[cfg(feature = "aws")]
use crate::adapters::dynamodb::DynamoMessageStore;
use crate::adapters::sqlite::SqliteStore;
use crate::ports::CounterStore;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use std::sync::Arc;

/// Expand the counter contract suite: one `#[tokio::test]` per behaviour.
///
/// `$make` is an async expression (a future) evaluated afresh in every test; its output is
/// anything that implements [`ContractCounters`]: a `SqliteStore` or `DynamoMessageStore`, an
/// `Arc` of a store, an `Arc<dyn CounterStore>` or `Box<dyn CounterStore>`, or a `(store, guard)`
/// pair whose guard (a `TempDir`, say) lives as long as the test. The calling crate needs `tokio`
/// (with `macros` and `rt`) as a dependency.
#[macro_export]
macro_rules! counter_contract {
    ($make:expr) => {
        $crate::counter_contract!(@tests $make;
            an_add_to_an_absent_counter_returns_by,
            adds_accumulate,
            fifty_concurrent_adds_of_one_sum_to_exactly_fifty,
            negative_adds_work,
            values_of_absent_keys_are_zero_and_order_is_preserved,
            values_cover_more_keys_than_one_batch,
            an_expired_counter_reads_zero_and_a_later_add_restarts_from_by,
            an_add_with_an_expiry_moves_the_counters_expiry,
            a_restarted_counter_does_not_keep_the_old_expiry,
            concurrent_adds_to_an_expired_counter_restart_it_once,
            a_claim_is_taken_once_while_held,
            a_claim_can_be_taken_again_after_until_has_passed,
            of_ten_concurrent_claims_exactly_one_wins,
            a_document_round_trips,
            putting_a_document_replaces_it,
            an_absent_document_is_none,
            an_expired_document_is_none,
            counters_claims_and_documents_do_not_share_keys,
            expiry_is_judged_at_the_callers_now,
            a_reset_sets_zero_and_keeps_counting_from_there,
            concurrent_resets_never_drive_a_counter_negative,
            add_many_applies_every_change_and_returns_each_value,
            slots_start_now_and_follow_each_other_one_gap_apart,
            a_schedule_full_until_the_deadline_reserves_nothing,
            concurrent_reservations_get_distinct_slots_a_gap_apart,
            a_schedule_whose_slots_have_passed_starts_again_from_now,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let fixture = $make.await;
                $crate::testing::counter_contract::$name(
                    $crate::testing::counter_contract::ContractCounters::counters(&fixture),
                )
                .await;
            }
        )+
    };
}

/// What a `counter_contract!` maker may produce: something that lends a `&dyn CounterStore`.
pub trait ContractCounters {
    /// The store under test.
    fn counters(&self) -> &dyn CounterStore;
}

impl<S: CounterStore> ContractCounters for Arc<S> {
    fn counters(&self) -> &dyn CounterStore {
        &**self
    }
}

impl ContractCounters for Arc<dyn CounterStore> {
    fn counters(&self) -> &dyn CounterStore {
        &**self
    }
}

impl ContractCounters for Box<dyn CounterStore> {
    fn counters(&self) -> &dyn CounterStore {
        &**self
    }
}

impl ContractCounters for SqliteStore {
    fn counters(&self) -> &dyn CounterStore {
        self
    }
}

#[cfg(feature = "aws")]
impl ContractCounters for DynamoMessageStore {
    fn counters(&self) -> &dyn CounterStore {
        self
    }
}

/// A store plus a guard that must outlive it (a temporary directory); the store drops first.
impl<S: ContractCounters, G> ContractCounters for (S, G) {
    fn counters(&self) -> &dyn CounterStore {
        self.0.counters()
    }
}

/// An expiry an hour from now: live for the whole test.
fn later() -> DateTime<Utc> {
    Utc::now() + Duration::hours(1)
}

/// An expiry an hour ago: already expired (and, on DynamoDB, likely not yet deleted by TTL).
fn past() -> DateTime<Utc> {
    Utc::now() - Duration::hours(1)
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| (*k).to_owned()).collect()
}

async fn value(store: &dyn CounterStore, key: &str) -> i64 {
    let values = store.values(&keys(&[key]), Utc::now()).await.expect("values");
    assert_eq!(values.len(), 1, "one value per key");
    values[0]
}

/// `n` concurrent adds of 1 to `key` (with an expiry an hour away); returns the values they
/// returned, sorted.
async fn concurrent_adds(store: &dyn CounterStore, key: &str, n: i64) -> Vec<i64> {
    let expires = later();
    let results = join_all((0..n).map(|_| store.add(key, 1, Some(expires), Utc::now()))).await;
    let mut returned: Vec<i64> = results.into_iter().map(|r| r.expect("concurrent add")).collect();
    returned.sort_unstable();
    returned
}

/// The first add to a counter returns `by` and stores it.
pub async fn an_add_to_an_absent_counter_returns_by(store: &dyn CounterStore) {
    assert_eq!(
        store.add("sent:2026-03-01T10", 5, None, Utc::now()).await.expect("add"),
        5
    );
    assert_eq!(value(store, "sent:2026-03-01T10").await, 5);
}

/// Each add returns the running total, with or without an expiry.
pub async fn adds_accumulate(store: &dyn CounterStore) {
    assert_eq!(store.add("c", 1, None, Utc::now()).await.expect("add"), 1);
    assert_eq!(store.add("c", 2, Some(later()), Utc::now()).await.expect("add"), 3);
    assert_eq!(store.add("c", 10, None, Utc::now()).await.expect("add"), 13);
    assert_eq!(store.add("c", 0, None, Utc::now()).await.expect("add"), 13);
    assert_eq!(value(store, "c").await, 13);
}

/// Adds are atomic: 50 at once sum to 50, and each saw a distinct running total.
pub async fn fifty_concurrent_adds_of_one_sum_to_exactly_fifty(store: &dyn CounterStore) {
    let returned = concurrent_adds(store, "c", 50).await;
    assert_eq!(returned, (1..=50).collect::<Vec<i64>>(), "each add saw its own total");
    assert_eq!(value(store, "c").await, 50);
}

/// Negative adds subtract, also below zero and on an absent counter.
pub async fn negative_adds_work(store: &dyn CounterStore) {
    assert_eq!(store.add("c", 5, None, Utc::now()).await.expect("add"), 5);
    assert_eq!(store.add("c", -8, None, Utc::now()).await.expect("add"), -3);
    assert_eq!(store.add("d", -2, None, Utc::now()).await.expect("add"), -2);
    assert_eq!(
        store.values(&keys(&["c", "d"]), Utc::now()).await.expect("values"),
        vec![-3, -2]
    );
}

/// `values` answers key by key, in the order asked (repeats included); absent keys are 0.
pub async fn values_of_absent_keys_are_zero_and_order_is_preserved(store: &dyn CounterStore) {
    assert_eq!(
        store.values(&[], Utc::now()).await.expect("values of nothing"),
        Vec::<i64>::new()
    );
    assert_eq!(
        store.values(&keys(&["x", "y"]), Utc::now()).await.expect("values"),
        vec![0, 0],
        "nothing stored yet"
    );
    for (key, by) in [("a", 1), ("b", 2), ("c", 3)] {
        store.add(key, by, None, Utc::now()).await.expect("add");
    }
    assert_eq!(
        store
            .values(&keys(&["c", "x", "a", "b", "a"]), Utc::now())
            .await
            .expect("values"),
        vec![3, 0, 1, 2, 1]
    );
}

/// `values` of more keys than one backend request holds (DynamoDB: 100), in order.
pub async fn values_cover_more_keys_than_one_batch(store: &dyn CounterStore) {
    let names: Vec<String> = (0..250).map(|i| format!("bucket:{i:03}")).collect();
    let stored: Vec<usize> = (0..250).filter(|i| i % 3 == 0).collect();
    let adds = join_all(stored.iter().map(|&i| {
        let by = i64::try_from(i).expect("small") + 1;
        store.add(&names[i], by, Some(later()), Utc::now())
    }))
    .await;
    for added in adds {
        added.expect("add");
    }
    let mut asked: Vec<String> = names.iter().rev().cloned().collect();
    asked.extend(names.iter().take(5).cloned());
    let expected: Vec<i64> = asked
        .iter()
        .map(|name| {
            let i: i64 = name["bucket:".len()..].parse().expect("index");
            if i % 3 == 0 {
                i + 1
            } else {
                0
            }
        })
        .collect();
    assert_eq!(store.values(&asked, Utc::now()).await.expect("values"), expected);
}

/// An expired counter reads 0 (even if the backend has not deleted it), and the next add starts
/// again from 0.
pub async fn an_expired_counter_reads_zero_and_a_later_add_restarts_from_by(store: &dyn CounterStore) {
    assert_eq!(store.add("c", 5, Some(past()), Utc::now()).await.expect("add"), 5);
    assert_eq!(value(store, "c").await, 0, "expired");
    assert_eq!(
        store.add("c", 2, Some(later()), Utc::now()).await.expect("add"),
        2,
        "restarted"
    );
    assert_eq!(value(store, "c").await, 2);
    assert_eq!(store.add("c", 1, None, Utc::now()).await.expect("add"), 3, "live again");
}

/// An add to a live counter that gives an expiry replaces the counter's expiry.
pub async fn an_add_with_an_expiry_moves_the_counters_expiry(store: &dyn CounterStore) {
    assert_eq!(store.add("c", 5, Some(later()), Utc::now()).await.expect("add"), 5);
    assert_eq!(
        store.add("c", 1, Some(past()), Utc::now()).await.expect("add"),
        6,
        "was live"
    );
    assert_eq!(value(store, "c").await, 0, "now expired");
}

/// Restarting an expired counter without an expiry leaves it without one (the stale expiry
/// does not make it read as expired again).
pub async fn a_restarted_counter_does_not_keep_the_old_expiry(store: &dyn CounterStore) {
    assert_eq!(store.add("c", 5, Some(past()), Utc::now()).await.expect("add"), 5);
    assert_eq!(store.add("c", 2, None, Utc::now()).await.expect("add"), 2);
    assert_eq!(value(store, "c").await, 2);
    assert_eq!(store.add("c", 1, None, Utc::now()).await.expect("add"), 3);
}

/// Concurrent adds to an expired counter restart it once between them: none is lost.
pub async fn concurrent_adds_to_an_expired_counter_restart_it_once(store: &dyn CounterStore) {
    assert_eq!(store.add("c", 100, Some(past()), Utc::now()).await.expect("add"), 100);
    let returned = concurrent_adds(store, "c", 20).await;
    assert_eq!(returned, (1..=20).collect::<Vec<i64>>(), "one restart, then adds");
    assert_eq!(value(store, "c").await, 20);
}

/// The first claim wins; while it is held (up to and including `until`) no one else gets it.
pub async fn a_claim_is_taken_once_while_held(store: &dyn CounterStore) {
    let now = Utc::now();
    let until = now + Duration::minutes(10);
    assert!(store.claim("alert", now, until).await.expect("claim"), "first");
    assert!(
        !store.claim("alert", now, until).await.expect("claim"),
        "second, same time"
    );
    assert!(
        !store
            .claim("alert", now + Duration::minutes(5), now + Duration::minutes(20))
            .await
            .expect("claim"),
        "while held"
    );
    assert!(
        !store
            .claim("alert", until, until + Duration::minutes(10))
            .await
            .expect("claim"),
        "held until `until` inclusive"
    );
    assert!(
        store.claim("other", now, until).await.expect("claim"),
        "another key is independent"
    );
}

/// Once `until` has passed (per the caller's `now`), the next claim takes it over, and holds it.
pub async fn a_claim_can_be_taken_again_after_until_has_passed(store: &dyn CounterStore) {
    let now = Utc::now();
    let until = now + Duration::minutes(10);
    assert!(store.claim("done", now, until).await.expect("claim"));
    let after = until + Duration::milliseconds(1);
    let next_until = until + Duration::minutes(10);
    assert!(
        store.claim("done", after, next_until).await.expect("claim"),
        "expired hold"
    );
    assert!(
        !store
            .claim("done", after + Duration::seconds(1), next_until + Duration::minutes(1))
            .await
            .expect("claim"),
        "the new holder has it"
    );
    assert!(
        store
            .claim(
                "done",
                next_until + Duration::seconds(1),
                next_until + Duration::minutes(1)
            )
            .await
            .expect("claim"),
        "and loses it after its own until"
    );
}

/// Of ten callers claiming at once, exactly one wins.
pub async fn of_ten_concurrent_claims_exactly_one_wins(store: &dyn CounterStore) {
    let now = Utc::now();
    let until = now + Duration::minutes(10);
    let results = join_all((0..10).map(|_| store.claim("complete:batch_1", now, until))).await;
    let won = results
        .into_iter()
        .map(|r| r.expect("claim"))
        .filter(|won| *won)
        .count();
    assert_eq!(won, 1);
}

/// A document comes back as stored.
pub async fn a_document_round_trips(store: &dyn CounterStore) {
    let doc = serde_json::json!({
        "batch": "b_1",
        "done": 17,
        "ratio": 0.25,
        "note": "Ünïcödé 📅",
        "nested": {"ok": true, "tags": ["a", "b"], "none": null},
        "big": i64::MAX,
        "negative": -3,
    });
    store.put_doc("progress:b_1", &doc, None).await.expect("put");
    assert_eq!(store.get_doc("progress:b_1", Utc::now()).await.expect("get"), Some(doc));
    let scalar = serde_json::json!("just a string");
    store.put_doc("s", &scalar, Some(later())).await.expect("put");
    assert_eq!(store.get_doc("s", Utc::now()).await.expect("get"), Some(scalar));
}

/// A second put replaces the document, and its expiry.
pub async fn putting_a_document_replaces_it(store: &dyn CounterStore) {
    store
        .put_doc("heartbeat", &serde_json::json!({"at": 1}), None)
        .await
        .expect("put");
    store
        .put_doc("heartbeat", &serde_json::json!({"at": 2, "more": [1]}), None)
        .await
        .expect("put");
    assert_eq!(
        store.get_doc("heartbeat", Utc::now()).await.expect("get"),
        Some(serde_json::json!({"at": 2, "more": [1]}))
    );
    store
        .put_doc("heartbeat", &serde_json::json!({"at": 3}), Some(past()))
        .await
        .expect("put");
    assert_eq!(
        store.get_doc("heartbeat", Utc::now()).await.expect("get"),
        None,
        "expired"
    );
    store
        .put_doc("heartbeat", &serde_json::json!({"at": 4}), None)
        .await
        .expect("put");
    assert_eq!(
        store.get_doc("heartbeat", Utc::now()).await.expect("get"),
        Some(serde_json::json!({"at": 4})),
        "the replacement has no expiry"
    );
}

/// A key never written has no document.
pub async fn an_absent_document_is_none(store: &dyn CounterStore) {
    assert_eq!(store.get_doc("nothing", Utc::now()).await.expect("get"), None);
}

/// A document past its expiry is absent (even if the backend has not deleted it); one with a
/// future expiry is there.
pub async fn an_expired_document_is_none(store: &dyn CounterStore) {
    let doc = serde_json::json!({"x": 1});
    store.put_doc("old", &doc, Some(past())).await.expect("put");
    assert_eq!(store.get_doc("old", Utc::now()).await.expect("get"), None);
    store.put_doc("fresh", &doc, Some(later())).await.expect("put");
    assert_eq!(store.get_doc("fresh", Utc::now()).await.expect("get"), Some(doc));
}

/// A counter, a claim and a document under the same key are three separate things.
pub async fn counters_claims_and_documents_do_not_share_keys(store: &dyn CounterStore) {
    let now = Utc::now();
    assert_eq!(store.add("k", 3, None, Utc::now()).await.expect("add"), 3);
    assert!(store.claim("k", now, now + Duration::minutes(1)).await.expect("claim"));
    let doc = serde_json::json!({"k": true});
    store.put_doc("k", &doc, None).await.expect("put");
    assert_eq!(value(store, "k").await, 3);
    assert_eq!(store.get_doc("k", Utc::now()).await.expect("get"), Some(doc));
    assert!(!store.claim("k", now, now + Duration::minutes(1)).await.expect("claim"));
    assert_eq!(store.add("k", 1, None, Utc::now()).await.expect("add"), 4);
}

/// Expiry is judged at the caller's `now`, never the wall clock: ten days ahead of it, a counter
/// (and a document) expiring an hour later is live, and two hours later it reads as absent and an
/// add restarts it.
pub async fn expiry_is_judged_at_the_callers_now(store: &dyn CounterStore) {
    let t = Utc::now() + Duration::days(10);
    let expires = Some(t + Duration::hours(1));
    assert_eq!(store.add("c", 2, expires, t).await.expect("add"), 2);
    assert_eq!(store.add("c", 3, expires, t).await.expect("add"), 5);
    assert_eq!(
        store
            .values(&keys(&["c"]), t + Duration::minutes(59))
            .await
            .expect("values"),
        vec![5]
    );
    let after = t + Duration::hours(2);
    assert_eq!(store.values(&keys(&["c"]), after).await.expect("values"), vec![0]);
    assert_eq!(store.add("c", 1, None, after).await.expect("add"), 1, "restarted");
    let doc = serde_json::json!({"at": "t"});
    store.put_doc("d", &doc, expires).await.expect("put");
    assert_eq!(store.get_doc("d", t).await.expect("get"), Some(doc));
    assert_eq!(store.get_doc("d", after).await.expect("get"), None);
}

/// A reset is one write to 0; later adds count from 0; resetting an absent counter creates 0.
pub async fn a_reset_sets_zero_and_keeps_counting_from_there(store: &dyn CounterStore) {
    let now = Utc::now();
    assert_eq!(store.add("streak", 4, None, now).await.expect("add"), 4);
    store.reset("streak").await.expect("reset");
    assert_eq!(value(store, "streak").await, 0);
    assert_eq!(store.add("streak", 1, None, now).await.expect("add"), 1);
    store.reset("never").await.expect("reset absent");
    assert_eq!(value(store, "never").await, 0);
}

/// Two (here ten) successes at once must not drive a streak below 0, as a read-then-subtract
/// did; adds racing the resets leave at most their own count.
pub async fn concurrent_resets_never_drive_a_counter_negative(store: &dyn CounterStore) {
    let now = Utc::now();
    assert_eq!(store.add("streak", 5, None, now).await.expect("add"), 5);
    let resets = join_all((0..10).map(|_| store.reset("streak"))).await;
    assert!(resets.iter().all(Result::is_ok));
    assert_eq!(value(store, "streak").await, 0);
    let (_, _) = futures_util::join!(
        join_all((0..5).map(|_| store.reset("streak"))),
        join_all((0..3).map(|_| store.add("streak", 1, None, now)))
    );
    let v = value(store, "streak").await;
    assert!((0..=3).contains(&v), "{v}");
}

/// `add_many` is the adds and resets it lists, in order, with each new value.
pub async fn add_many_applies_every_change_and_returns_each_value(store: &dyn CounterStore) {
    use crate::ports::CounterOp;
    let now = Utc::now();
    assert_eq!(store.add("b", 7, None, now).await.expect("add"), 7);
    let ops = [
        CounterOp::Add {
            key: "a".to_owned(),
            by: 2,
            expires_at: Some(later()),
        },
        CounterOp::Reset { key: "b".to_owned() },
        CounterOp::Add {
            key: "a".to_owned(),
            by: 3,
            expires_at: None,
        },
    ];
    assert_eq!(store.add_many(&ops, now).await.expect("add_many"), vec![2, 0, 5]);
    assert_eq!(store.values(&keys(&["a", "b"]), now).await.expect("values"), vec![5, 0]);
    assert_eq!(store.add_many(&[], now).await.expect("nothing"), Vec::<i64>::new());
}

/// The first slot of an idle schedule is `now`; the next ones follow one `gap` apart, and each
/// schedule (sender) is its own.
pub async fn slots_start_now_and_follow_each_other_one_gap_apart(store: &dyn CounterStore) {
    let now = Utc::now();
    let gap = std::time::Duration::from_millis(10);
    let deadline = now + Duration::seconds(20);
    let first = store
        .reserve_slot("sender:a", now, gap, deadline)
        .await
        .expect("reserve");
    let second = store
        .reserve_slot("sender:a", now, gap, deadline)
        .await
        .expect("reserve");
    let other = store
        .reserve_slot("sender:b", now, gap, deadline)
        .await
        .expect("reserve");
    let at = |d: DateTime<Utc>| d.timestamp_nanos_opt().expect("in range");
    assert_eq!(first.map(at), Some(at(now)));
    assert_eq!(second.map(at), Some(at(now) + 10_000_000));
    assert_eq!(other.map(at), Some(at(now)), "another sender's schedule is idle");
}

/// A slot at or after the deadline is not reserved, and reserving nothing moves nothing.
pub async fn a_schedule_full_until_the_deadline_reserves_nothing(store: &dyn CounterStore) {
    let now = Utc::now();
    let gap = std::time::Duration::from_millis(100);
    let deadline = now + Duration::milliseconds(250);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(
            store
                .reserve_slot("sender:a", now, gap, deadline)
                .await
                .expect("reserve"),
        );
    }
    let reserved: Vec<i64> = got.iter().flatten().map(|d| (*d - now).num_milliseconds()).collect();
    assert_eq!(reserved, vec![0, 100, 200]);
    assert_eq!(got.iter().filter(|s| s.is_none()).count(), 2);
    // A later deadline continues right after the last reserved slot (the refusals took nothing).
    let later = store
        .reserve_slot("sender:a", now, gap, now + Duration::seconds(5))
        .await
        .expect("reserve")
        .map(|d| (d - now).num_milliseconds());
    assert_eq!(later, Some(300));
    assert_eq!(
        store.reserve_slot("sender:a", now, gap, now).await.expect("reserve"),
        None
    );
}

/// Forty concurrent reservers (two processes' worth of batch tasks) get forty distinct slots,
/// every two at least one gap apart: the schedule is shared, not per caller.
pub async fn concurrent_reservations_get_distinct_slots_a_gap_apart(store: &dyn CounterStore) {
    let now = Utc::now();
    let gap = std::time::Duration::from_millis(10);
    let deadline = now + Duration::seconds(20);
    let results = join_all((0..40).map(|_| store.reserve_slot("sender:shared", now, gap, deadline))).await;
    let mut slots: Vec<i64> = results
        .into_iter()
        .map(|r| {
            r.expect("reserve")
                .expect("a slot before the deadline")
                .timestamp_nanos_opt()
                .expect("in range")
        })
        .collect();
    slots.sort_unstable();
    assert_eq!(slots.len(), 40);
    for pair in slots.windows(2) {
        assert!(pair[1] - pair[0] >= 10_000_000, "{slots:?}");
    }
    assert_eq!(slots[39] - slots[0], 39 * 10_000_000, "no slot is skipped");
}

/// A schedule whose next slot has passed starts again from the caller's `now` (no burst to
/// "catch up").
pub async fn a_schedule_whose_slots_have_passed_starts_again_from_now(store: &dyn CounterStore) {
    let gap = std::time::Duration::from_millis(10);
    let earlier = Utc::now() - Duration::seconds(30);
    for _ in 0..3 {
        store
            .reserve_slot("sender:a", earlier, gap, earlier + Duration::seconds(20))
            .await
            .expect("reserve");
    }
    let now = Utc::now();
    let slot = store
        .reserve_slot("sender:a", now, gap, now + Duration::seconds(20))
        .await
        .expect("reserve");
    assert_eq!(
        slot.map(|d| d.timestamp_nanos_opt().expect("in range")),
        Some(now.timestamp_nanos_opt().expect("in range"))
    );
}
