//! The store contract: behaviour every store adapter must show on every store port
//! (`MessageStore`, `MessageQueries`, `ConsentStore`, `IdempotencyStore`), run against each of them.
//!
//! [`store_contract!`](crate::store_contract) expands one `#[tokio::test]` per behaviour; each test
//! builds a fresh store with the expression it is given (a new table, a new database file), so
//! tests never share state and may run in parallel. The checks themselves are the `pub async fn`s
//! below, named after the tests. This module is test support: it panics on a broken contract.
//!
//! ```ignore
//! mod sqlite {
//!     smsrelay::store_contract!(async {
//!         smsrelay::adapters::sqlite::SqliteStore::open_in_memory().expect("store")
//!     });
//! }
//! ```

#[cfg(feature = "aws")]
use crate::adapters::dynamodb::DynamoMessageStore;
use crate::adapters::sqlite::SqliteStore;
use crate::domain::{
    Message, MessageBody, MessageError, MessageId, MessageStatus, PhoneNumber, ProviderSid, Ref, RescheduleReason,
    Rescheduled, StatusEvent,
};
use crate::ports::message_store::Page;
use crate::ports::{Begin, OptOut, SavedResponse, StoreError, WebhookRecord};
use crate::testing::StoreUnderTest as Store;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use std::collections::HashSet;
use std::sync::Arc;

/// Expand the store contract suite: one `#[tokio::test]` per behaviour.
///
/// `$make` is an async expression (a future) evaluated afresh in every test; its output is
/// anything that implements [`ContractStore`]: a `SqliteStore` or `DynamoMessageStore`, an
/// `Arc` of a store, an `Arc<dyn Store>` or `Box<dyn Store>`, or a `(store, guard)`
/// pair whose guard (a `TempDir`, say) lives as long as the test. The calling crate needs `tokio` (with `macros` and `rt`) as a dependency.
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::store_contract!(@tests $make;
            create_then_get_returns_the_same_record,
            a_bulk_create_writes_every_message_and_its_indexes,
            a_bulk_create_failing_midway_stores_none_of_the_messages_it_reports_failed,
            creating_the_same_message_twice_is_condition_failed,
            getting_an_unknown_id_is_none,
            an_update_with_the_next_version_is_visible_to_the_next_get,
            an_update_with_a_stale_version_is_condition_failed_and_changes_nothing,
            an_update_with_version_zero_is_condition_failed,
            updating_a_missing_message_is_condition_failed,
            of_two_concurrent_updates_from_the_same_read_exactly_one_wins,
            a_linked_sid_resolves_to_its_message,
            linking_the_same_pair_twice_is_ok,
            linking_a_sid_to_another_message_is_condition_failed,
            an_update_and_link_writes_the_message_and_its_sid_together,
            an_update_and_link_with_a_stale_version_writes_neither,
            a_webhook_is_recorded_once_per_key,
            listing_is_newest_first_and_pages_without_duplicates_or_gaps,
            listing_has_no_next_cursor_when_the_last_page_is_full,
            listing_filters_by_status_across_pages,
            listing_follows_status_updates,
            listing_excludes_other_recipients,
            an_unreadable_cursor_is_corrupt,
            a_message_is_listed_due_only_once_its_due_time_has_come,
            a_message_due_exactly_now_is_listed,
            changing_or_clearing_due_at_moves_a_message_in_the_due_index,
            due_messages_are_listed_oldest_first,
            due_messages_spread_over_shards_are_all_found,
            the_failed_list_holds_exactly_the_listed_messages,
            the_failed_list_is_newest_change_first_and_pages_without_duplicates_or_gaps,
            the_failed_list_has_no_next_cursor_when_the_last_page_is_full,
            the_failed_list_follows_updates_and_clearing,
            an_unreadable_failed_list_cursor_is_corrupt,
            messages_are_listed_by_ref_oldest_first,
            an_opt_out_is_read_back_with_its_reason,
            a_second_opt_out_keeps_the_first_record,
            opting_in_removes_the_opt_out,
            consent_evidence_is_kept_in_time_order_with_every_field,
            the_same_consent_evidence_twice_is_recorded_once,
            send_slots_run_out_at_the_limit,
            concurrent_send_slot_takers_never_exceed_the_limit,
            send_slots_free_up_as_the_window_rolls_on,
            check_send_suppresses_an_opted_out_recipient_without_taking_a_slot,
            check_send_grants_up_to_the_limit_then_refuses,
            a_first_begin_is_started_and_a_repeat_is_in_progress,
            a_completed_key_replays_its_response,
            a_key_reused_with_another_request_is_a_mismatch,
            completing_with_another_request_hash_saves_nothing,
            an_in_progress_claim_can_be_taken_over_once_its_lease_runs_out,
            a_completed_record_expires_after_a_day,
            a_released_key_can_be_started_again_but_a_completed_one_is_kept,
            of_ten_concurrent_begins_exactly_one_is_started,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let fixture = $make.await;
                $crate::testing::store_contract::$name(
                    $crate::testing::store_contract::ContractStore::store(&fixture),
                )
                .await;
            }
        )+
    };
}

/// What a `store_contract!` maker may produce: something that lends a `&dyn Store`.
pub trait ContractStore {
    /// The store under test.
    fn store(&self) -> &dyn Store;
}

impl<S: Store> ContractStore for Arc<S> {
    fn store(&self) -> &dyn Store {
        &**self
    }
}

impl ContractStore for Arc<dyn Store> {
    fn store(&self) -> &dyn Store {
        &**self
    }
}

impl ContractStore for Box<dyn Store> {
    fn store(&self) -> &dyn Store {
        &**self
    }
}

impl ContractStore for SqliteStore {
    fn store(&self) -> &dyn Store {
        self
    }
}

#[cfg(feature = "aws")]
impl ContractStore for DynamoMessageStore {
    fn store(&self) -> &dyn Store {
        self
    }
}

/// A store plus a guard that must outlive it (a temporary directory); the store drops first.
impl<S: ContractStore, G> ContractStore for (S, G) {
    fn store(&self) -> &dyn Store {
        self.0.store()
    }
}

/// A fixed instant the fixtures count from.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_366_400, 0).unwrap_or_default()
}

/// The `n`th test recipient (`+1415555` and four digits).
pub fn recipient(n: u16) -> PhoneNumber {
    PhoneNumber::parse_e164(&format!("+1415555{:04}", n % 10_000)).expect("fixture number is E.164")
}

/// A fresh message to `to` created `seconds` after [`epoch`], in `status`; ids made at later
/// seconds sort after earlier ones.
pub fn message_to(to: &PhoneNumber, seconds: i64, status: MessageStatus) -> Message {
    let at = epoch() + Duration::seconds(seconds);
    Message::new(
        MessageId::generate(at),
        to.clone(),
        "+14155550000".to_owned(),
        MessageBody::parse(format!("Reminder #{seconds}: your appointment is tomorrow")).expect("fixture body"),
        status,
        None,
        serde_json::Map::new(),
        at,
    )
}

/// A message with every optional field set, so a round trip covers the whole record.
pub fn full_message() -> Message {
    let at = epoch();
    let mut metadata = serde_json::Map::new();
    metadata.insert("customer".to_owned(), serde_json::json!("c_42"));
    metadata.insert("priority".to_owned(), serde_json::json!(2));
    metadata.insert(
        "nested".to_owned(),
        serde_json::json!({"ok": true, "tags": ["a", "b"], "none": null}),
    );
    let mut m = Message::new(
        MessageId::generate(at),
        recipient(1),
        "MG0123456789abcdef0123456789abcdef".to_owned(),
        MessageBody::parse("Ünïcödé reminder 📅 with a long enough text").expect("fixture body"),
        MessageStatus::Scheduled,
        Some(Ref {
            kind: "calendar_event".to_owned(),
            id: "evt_1".to_owned(),
        }),
        metadata,
        at,
    );
    m.provider_status = Some("undelivered".to_owned());
    m.provider_sid = Some(ProviderSid::parse("SM1342fe1b2c904d1ab04f0fc7a58abca9").expect("fixture sid"));
    m.attempts = 2;
    m.error = Some(MessageError {
        code: 30_005,
        message: "Unknown destination handset".to_owned(),
    });
    m.send_at = Some(at + Duration::minutes(30));
    m.attempt_started_at = Some(at + Duration::minutes(31));
    m.due_at = Some(at + Duration::minutes(45));
    m.failed_listed = true;
    m.previous_sids = vec![sid(7), sid(8)];
    m.status_callback = Some("https://relay.example.com/v1/callbacks/twilio/status".to_owned());
    m.original_send_at = Some(at + Duration::minutes(20));
    m.events.push(StatusEvent {
        status: MessageStatus::Scheduled,
        at: at + Duration::minutes(20),
        code: None,
        rescheduled: Some(Rescheduled {
            reason: RescheduleReason::QuietHours,
            send_at: at + Duration::minutes(30),
        }),
    });
    m.events.push(StatusEvent {
        status: MessageStatus::Undelivered,
        at: at + Duration::minutes(32),
        code: Some(30_005),
        rescheduled: None,
    });
    m
}

fn sid(n: u32) -> ProviderSid {
    ProviderSid::parse(&format!("SM{n:032}")).expect("fixture sid")
}

/// `message` after one more write: advanced to `status`, `version` incremented.
fn next_version(message: &Message, status: MessageStatus) -> Message {
    let mut next = message.clone();
    next.reset_to(status, message.updated_at + Duration::seconds(1));
    next.version += 1;
    next
}

async fn create(store: &dyn Store, message: &Message) {
    store.create_message(message).await.expect("create_message");
}

async fn get(store: &dyn Store, id: &MessageId) -> Option<Message> {
    store.get_message(id).await.expect("get_message")
}

fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id.clone()).collect()
}

/// Read every page of a listing with page size `limit`.
async fn all_pages(
    store: &dyn Store,
    to: &PhoneNumber,
    status: Option<MessageStatus>,
    limit: usize,
) -> Vec<Page<Message>> {
    let mut pages: Vec<Page<Message>> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_messages_to(to, status, limit, cursor.as_deref())
            .await
            .expect("list_messages_to");
        assert!(page.items.len() <= limit, "a page holds at most `limit` items");
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() <= 50, "listing does not end");
    }
}

/// A created message reads back equal, every field included.
pub async fn create_then_get_returns_the_same_record(store: &dyn Store) {
    let m = full_message();
    create(store, &m).await;
    assert_eq!(get(store, &m.id).await, Some(m));
}

/// Bulk create (batches): 60 messages (several BatchWriteItem chunks), every one readable, on the
/// due index and findable by its ref afterwards.
pub async fn a_bulk_create_writes_every_message_and_its_indexes(store: &dyn Store) {
    let to = recipient(700);
    let reference = Ref {
        kind: "batch_test".to_owned(),
        id: "b1".to_owned(),
    };
    let messages: Vec<Message> = (0..60)
        .map(|i| {
            let mut m = message_to(&to, i, MessageStatus::Queued);
            m.reference = Some(reference.clone());
            m.due_at = Some(epoch());
            m
        })
        .collect();
    let results = store.create_messages(&messages).await.expect("bulk create");
    assert_eq!(results.len(), 60);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for m in &messages {
        assert_eq!(store.get_message(&m.id).await.expect("get").as_ref(), Some(m));
    }
    let by_ref = store.list_by_ref(&reference, 100).await.expect("by ref");
    assert_eq!(by_ref.len(), 60);
    let due: HashSet<MessageId> = store
        .list_due(epoch() + Duration::seconds(1), 200)
        .await
        .expect("due")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(
        messages.iter().all(|m| due.contains(&m.id)),
        "every bulk-created message is on the due index"
    );
}

/// A bulk create whose write fails midway (an id that exists at index 40 of 150: on DynamoDB
/// its whole transaction chunk is refused, on SQLite that one row): every message reported
/// written is stored as given, every one reported failed is not stored (nor on the due index),
/// the existing record is kept, and the writes after the failure still happen.
pub async fn a_bulk_create_failing_midway_stores_none_of_the_messages_it_reports_failed(store: &dyn Store) {
    let to = recipient(710);
    let mut existing = message_to(&to, 40, MessageStatus::Sent);
    existing.due_at = None;
    create(store, &existing).await;
    let mut messages: Vec<Message> = (0..150)
        .map(|i| {
            let mut m = message_to(&to, i, MessageStatus::Queued);
            m.due_at = Some(epoch());
            m
        })
        .collect();
    let mut clash = existing.clone();
    clash.status = MessageStatus::Queued;
    clash.due_at = Some(epoch());
    messages[40] = clash;
    let results = store.create_messages(&messages).await.expect("the call itself");
    assert_eq!(results.len(), 150);
    assert!(results[40].is_err(), "the existing id is not overwritten");
    assert!(results[149].is_ok(), "writes after the failure still happen");
    let due: HashSet<MessageId> = store
        .list_due(epoch() + Duration::seconds(1), 500)
        .await
        .expect("due")
        .into_iter()
        .map(|m| m.id)
        .collect();
    for (i, (m, r)) in messages.iter().zip(&results).enumerate() {
        let stored = get(store, &m.id).await;
        if r.is_ok() {
            assert_eq!(stored.as_ref(), Some(m), "message {i} reported written");
            assert!(due.contains(&m.id), "message {i} is due");
        } else if i == 40 {
            assert_eq!(stored.as_ref(), Some(&existing), "the first record is kept");
        } else {
            assert_eq!(stored, None, "message {i} reported failed must not be stored");
            assert!(!due.contains(&m.id), "message {i} reported failed must not be due");
        }
    }
}

/// Creating an id that exists loses, and keeps the first record.
pub async fn creating_the_same_message_twice_is_condition_failed(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Queued);
    create(store, &m).await;
    let mut again = m.clone();
    again.from = "+14155559999".to_owned();
    assert!(matches!(
        store.create_message(&again).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(get(store, &m.id).await, Some(m));
}

/// An id never written reads as absent.
pub async fn getting_an_unknown_id_is_none(store: &dyn Store) {
    create(store, &message_to(&recipient(1), 0, MessageStatus::Queued)).await;
    let unknown = MessageId::generate(epoch() + Duration::seconds(5));
    assert_eq!(get(store, &unknown).await, None);
}

/// An update carrying version + 1 wins and is read back.
pub async fn an_update_with_the_next_version_is_visible_to_the_next_get(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    let v1 = next_version(&m, MessageStatus::Sent);
    store.update_message(&v1).await.expect("first update");
    assert_eq!(get(store, &m.id).await, Some(v1.clone()));
    let v2 = next_version(&v1, MessageStatus::Delivered);
    store.update_message(&v2).await.expect("second update");
    assert_eq!(get(store, &m.id).await, Some(v2));
}

/// An update built on an old read loses and leaves the stored record as it was.
pub async fn an_update_with_a_stale_version_is_condition_failed_and_changes_nothing(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    let v1 = next_version(&m, MessageStatus::Sent);
    store.update_message(&v1).await.expect("first update");
    let stale = next_version(&m, MessageStatus::Failed);
    assert!(matches!(
        store.update_message(&stale).await,
        Err(StoreError::ConditionFailed)
    ));
    let skipping = Message {
        version: v1.version + 2,
        ..next_version(&v1, MessageStatus::Failed)
    };
    assert!(matches!(
        store.update_message(&skipping).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(get(store, &m.id).await, Some(v1));
}

/// Version 0 is only ever created, never an update's result.
pub async fn an_update_with_version_zero_is_condition_failed(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    let mut same = m.clone();
    same.status = MessageStatus::Sent;
    assert!(matches!(
        store.update_message(&same).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(get(store, &m.id).await, Some(m));
}

/// Updating a message that was never created loses and does not create it.
pub async fn updating_a_missing_message_is_condition_failed(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    let v1 = next_version(&m, MessageStatus::Sent);
    assert!(matches!(
        store.update_message(&v1).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(get(store, &m.id).await, None);
}

/// Two writers that read the same version race; exactly one wins and its record is stored.
pub async fn of_two_concurrent_updates_from_the_same_read_exactly_one_wins(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    let read = get(store, &m.id).await.expect("created message");
    let a = next_version(&read, MessageStatus::Sent);
    let b = next_version(&read, MessageStatus::Failed);
    let (ra, rb) = tokio::join!(store.update_message(&a), store.update_message(&b));
    let winner = match (ra, rb) {
        (Ok(()), Err(StoreError::ConditionFailed)) => a,
        (Err(StoreError::ConditionFailed), Ok(())) => b,
        other => panic!("expected exactly one winner and one ConditionFailed, got {other:?}"),
    };
    assert_eq!(get(store, &m.id).await, Some(winner));
}

/// A linked sid resolves to its message; an unlinked one to nothing.
pub async fn a_linked_sid_resolves_to_its_message(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    store.link_provider_sid(&sid(1), &m.id).await.expect("link");
    assert_eq!(store.message_id_for_sid(&sid(1)).await.expect("lookup"), Some(m.id));
    assert_eq!(store.message_id_for_sid(&sid(2)).await.expect("lookup"), None);
}

/// Linking is idempotent for the same pair (a retried send records the same sid again).
pub async fn linking_the_same_pair_twice_is_ok(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    store.link_provider_sid(&sid(1), &m.id).await.expect("first link");
    store
        .link_provider_sid(&sid(1), &m.id)
        .await
        .expect("second link of the same pair");
    assert_eq!(store.message_id_for_sid(&sid(1)).await.expect("lookup"), Some(m.id));
}

/// A sid never moves to another message.
pub async fn linking_a_sid_to_another_message_is_condition_failed(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    let other = message_to(&recipient(1), 1, MessageStatus::Sending);
    create(store, &m).await;
    create(store, &other).await;
    store.link_provider_sid(&sid(1), &m.id).await.expect("link");
    assert!(matches!(
        store.link_provider_sid(&sid(1), &other.id).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(store.message_id_for_sid(&sid(1)).await.expect("lookup"), Some(m.id));
}

/// The provider call's outcome and its sid are written in one call and both read back.
pub async fn an_update_and_link_writes_the_message_and_its_sid_together(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    let sent = next_version(&m, MessageStatus::Sent);
    store
        .update_message_and_link(&sent, &sid(1))
        .await
        .expect("update and link");
    assert_eq!(get(store, &m.id).await, Some(sent));
    assert_eq!(store.message_id_for_sid(&sid(1)).await.expect("lookup"), Some(m.id));
}

/// A lost version condition (a callback wrote first) leaves the record as it was and the sid
/// unlinked: the caller links it on its own and merges onto the newer record.
pub async fn an_update_and_link_with_a_stale_version_writes_neither(store: &dyn Store) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    let newer = next_version(&m, MessageStatus::Sent);
    store.update_message(&newer).await.expect("the callback's write");
    let stale = next_version(&m, MessageStatus::Failed);
    assert!(matches!(
        store.update_message_and_link(&stale, &sid(1)).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(get(store, &m.id).await, Some(newer));
    assert_eq!(store.message_id_for_sid(&sid(1)).await.expect("lookup"), None);
}

/// The first receipt of a key is new, a repeat is a duplicate, another key is new again.
pub async fn a_webhook_is_recorded_once_per_key(store: &dyn Store) {
    let record = WebhookRecord {
        key: format!("{}:delivered", sid(1)),
        kind: "twilio_status".to_owned(),
        message_id: Some(MessageId::generate(epoch())),
        provider_sid: Some(sid(1)),
        status: Some("delivered".to_owned()),
        received_at: epoch(),
    };
    assert!(store.record_webhook(&record).await.expect("first receipt"));
    let repeat = WebhookRecord {
        received_at: epoch() + Duration::seconds(30),
        ..record.clone()
    };
    assert!(!store.record_webhook(&repeat).await.expect("repeat"));
    let unknown = WebhookRecord {
        key: format!("{}:sent", sid(2)),
        message_id: None,
        provider_sid: None,
        status: None,
        ..record
    };
    assert!(store.record_webhook(&unknown).await.expect("another key"));
    assert!(!store.record_webhook(&unknown).await.expect("its repeat"));
}

/// Seven messages read three at a time: pages of 3, 3 and 1, newest first, each exactly once,
/// and only the last page lacks a cursor.
pub async fn listing_is_newest_first_and_pages_without_duplicates_or_gaps(store: &dyn Store) {
    let to = recipient(1);
    let mut created = Vec::new();
    for i in 0..7 {
        let m = message_to(&to, i, MessageStatus::Sent);
        create(store, &m).await;
        created.push(m);
    }
    let pages = all_pages(store, &to, None, 3).await;
    assert_eq!(pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(), vec![3, 3, 1]);
    assert!(pages[..2].iter().all(|p| p.next_cursor.is_some()));
    let listed: Vec<Message> = pages.into_iter().flat_map(|p| p.items).collect();
    created.reverse();
    assert_eq!(listed, created, "every message once, newest first, as stored");
}

/// When the messages fill the last page exactly, that page says there is no next one.
pub async fn listing_has_no_next_cursor_when_the_last_page_is_full(store: &dyn Store) {
    let to = recipient(1);
    for i in 0..6 {
        create(store, &message_to(&to, i, MessageStatus::Sent)).await;
    }
    let pages = all_pages(store, &to, None, 3).await;
    assert_eq!(pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(), vec![3, 3]);
    let everything = store.list_messages_to(&to, None, 6, None).await.expect("list");
    assert_eq!(everything.items.len(), 6);
    assert_eq!(everything.next_cursor, None);
}

/// A status filter returns only matching messages, newest first, across pages, even when the
/// matches are sparse among other messages.
pub async fn listing_filters_by_status_across_pages(store: &dyn Store) {
    let to = recipient(1);
    let mut failed = Vec::new();
    for i in 0..12 {
        let status = if i % 3 == 0 {
            MessageStatus::Failed
        } else {
            MessageStatus::Delivered
        };
        let m = message_to(&to, i, status);
        create(store, &m).await;
        if status == MessageStatus::Failed {
            failed.push(m.id.clone());
        }
    }
    failed.reverse();
    let pages = all_pages(store, &to, Some(MessageStatus::Failed), 2).await;
    assert_eq!(pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(), vec![2, 2]);
    let listed: Vec<Message> = pages.into_iter().flat_map(|p| p.items).collect();
    assert!(listed.iter().all(|m| m.status == MessageStatus::Failed));
    assert_eq!(ids(&listed), failed);
    let none = store
        .list_messages_to(&to, Some(MessageStatus::Canceled), 5, None)
        .await
        .expect("list");
    assert_eq!(
        none,
        Page {
            items: Vec::new(),
            next_cursor: None
        }
    );
}

/// The filter sees a message's current status, not the one it was created with.
pub async fn listing_follows_status_updates(store: &dyn Store) {
    let to = recipient(1);
    let m = message_to(&to, 0, MessageStatus::Sending);
    create(store, &m).await;
    let failed = next_version(&m, MessageStatus::Failed);
    store.update_message(&failed).await.expect("update");
    let sending = store
        .list_messages_to(&to, Some(MessageStatus::Sending), 5, None)
        .await
        .expect("list");
    assert!(sending.items.is_empty());
    let page = store
        .list_messages_to(&to, Some(MessageStatus::Failed), 5, None)
        .await
        .expect("list");
    assert_eq!(page.items, vec![failed]);
}

/// A listing holds only the recipient's messages, interleaved writes to others included.
pub async fn listing_excludes_other_recipients(store: &dyn Store) {
    let (to, other) = (recipient(1), recipient(2));
    let mut mine = Vec::new();
    for i in 0..6 {
        let m = message_to(if i % 2 == 0 { &to } else { &other }, i, MessageStatus::Sent);
        create(store, &m).await;
        if m.to == to {
            mine.push(m.id.clone());
        }
    }
    mine.reverse();
    let listed: Vec<Message> = all_pages(store, &to, None, 2)
        .await
        .into_iter()
        .flat_map(|p| p.items)
        .collect();
    assert_eq!(ids(&listed), mine);
    let nobody = store
        .list_messages_to(&recipient(3), None, 5, None)
        .await
        .expect("list");
    assert_eq!(
        nobody,
        Page {
            items: Vec::new(),
            next_cursor: None
        }
    );
}

/// A cursor the store did not hand out is `Corrupt`, not a silent restart.
pub async fn an_unreadable_cursor_is_corrupt(store: &dyn Store) {
    let to = recipient(1);
    create(store, &message_to(&to, 0, MessageStatus::Sent)).await;
    for cursor in ["not a cursor!", "bXNnX25vdC1hLXVsaWQ"] {
        let result = store.list_messages_to(&to, None, 5, Some(cursor)).await;
        assert!(
            matches!(result, Err(StoreError::Corrupt(_))),
            "cursor {cursor:?} gave {result:?}"
        );
    }
}

// ---- MessageQueries: the due index ----

/// A `list_due` limit well above the due messages of a test. A store may read the due index in
/// shards with a per-shard share of the limit (`DynamoMessageStore`: 16 shards, `ceil(limit/16)`
/// each), so only a limit of 16 × the due count is sure to return all of them at once.
const ROOMY: usize = 100;

/// `message` created with `due_at` set, `seconds` after [`epoch`].
fn due_message(n: u16, seconds: i64, due_at: Option<DateTime<Utc>>) -> Message {
    let mut m = message_to(&recipient(n), seconds, MessageStatus::Queued);
    m.due_at = due_at;
    m
}

async fn due(store: &dyn Store, now: DateTime<Utc>, limit: usize) -> Vec<Message> {
    store.list_due(now, limit).await.expect("list_due")
}

/// A message due in the past is listed; one due later, or never, is not.
pub async fn a_message_is_listed_due_only_once_its_due_time_has_come(store: &dyn Store) {
    let now = epoch() + Duration::hours(1);
    let past = due_message(1, 0, Some(now - Duration::minutes(5)));
    let future = due_message(2, 1, Some(now + Duration::minutes(5)));
    let never = due_message(3, 2, None);
    for m in [&past, &future, &never] {
        create(store, m).await;
    }
    assert_eq!(due(store, now, ROOMY).await, vec![past.clone()]);
    assert_eq!(
        ids(&due(store, now + Duration::minutes(10), ROOMY).await),
        vec![past.id, future.id]
    );
}

/// The bound is inclusive: due at exactly `now` is due.
pub async fn a_message_due_exactly_now_is_listed(store: &dyn Store) {
    let now = epoch() + Duration::hours(1);
    let m = due_message(1, 0, Some(now));
    create(store, &m).await;
    assert_eq!(due(store, now, ROOMY).await, vec![m]);
    assert!(due(store, now - Duration::milliseconds(1), ROOMY).await.is_empty());
}

/// An update that moves `due_at` later hides the message until then; one that clears it removes
/// it for good.
pub async fn changing_or_clearing_due_at_moves_a_message_in_the_due_index(store: &dyn Store) {
    let now = epoch() + Duration::hours(1);
    let m = due_message(1, 0, Some(now - Duration::minutes(1)));
    create(store, &m).await;
    let mut later = next_version(&m, MessageStatus::Sending);
    later.due_at = Some(now + Duration::minutes(10));
    store.update_message(&later).await.expect("update");
    assert!(due(store, now, ROOMY).await.is_empty());
    assert_eq!(
        due(store, now + Duration::minutes(10), ROOMY).await,
        vec![later.clone()]
    );
    let mut done = next_version(&later, MessageStatus::Sent);
    done.due_at = None;
    store.update_message(&done).await.expect("update");
    assert!(due(store, now + Duration::days(365), ROOMY).await.is_empty());
}

/// Oldest due first, whatever the creation order; equal due times by id.
pub async fn due_messages_are_listed_oldest_first(store: &dyn Store) {
    let now = epoch() + Duration::hours(1);
    let a = due_message(1, 0, Some(now - Duration::minutes(1)));
    let b = due_message(2, 1, Some(now - Duration::minutes(30)));
    let c = due_message(3, 2, Some(now - Duration::minutes(10)));
    let d = due_message(4, 3, Some(now - Duration::minutes(10)));
    for m in [&a, &b, &c, &d] {
        create(store, m).await;
    }
    assert_eq!(ids(&due(store, now, ROOMY).await), vec![b.id, c.id, d.id, a.id]);
}

/// The `n`th of a fixed series of message ids, made `n` seconds after [`epoch`] with fixed
/// random bits, so a test using them behaves the same on every run. The multiplier is chosen so
/// that the first [`SPREAD_DUE_COUNT`] ids fall into every one of `DynamoMessageStore`'s 16
/// due-index shards, at most 5 in one (a test in adapters/dynamodb/keys.rs checks it).
pub fn fixed_id(n: u32) -> MessageId {
    let at = epoch() + Duration::seconds(i64::from(n));
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let bits = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c83a);
    MessageId::parse(&format!("msg_{}", ulid::Ulid::from_parts(ms, bits))).expect("fixture id")
}

/// How many messages [`due_messages_spread_over_shards_are_all_found`] makes due.
pub const SPREAD_DUE_COUNT: u32 = 40;

/// Forty due messages with [`fixed_id`]s (which `DynamoMessageStore` spreads over all 16 of its
/// due-index shards, at most 5 in one) are all found with a limit of 100; a limit of 5 still
/// returns at least 5, each of them due and listed once.
pub async fn due_messages_spread_over_shards_are_all_found(store: &dyn Store) {
    let now = epoch() + Duration::hours(2);
    let messages: Vec<Message> = (0..SPREAD_DUE_COUNT)
        .map(|n| {
            let i = i64::from(n);
            let mut m = due_message(u16::try_from(n).unwrap_or(0), i, Some(epoch() + Duration::minutes(i)));
            m.id = fixed_id(n);
            m
        })
        .collect();
    let later = due_message(99, 50, Some(now + Duration::seconds(1)));
    for result in join_all(messages.iter().chain([&later]).map(|m| store.create_message(m))).await {
        result.expect("create_message");
    }
    let all = due(store, now, ROOMY).await;
    assert_eq!(ids(&all), ids(&messages), "every due message, oldest first");

    let some = due(store, now, 5).await;
    assert!(some.len() >= 5, "a limit of 5 gave {} messages", some.len());
    let created: HashSet<MessageId> = ids(&messages).into_iter().collect();
    let listed: HashSet<MessageId> = ids(&some).into_iter().collect();
    assert_eq!(listed.len(), some.len(), "no message twice");
    assert!(listed.is_subset(&created), "only due messages");
    assert!(some.windows(2).all(|w| w[0].due_at <= w[1].due_at), "oldest first");
}

// ---- MessageQueries: the failed list ----

/// A failed message on the failed list, last changed `changed` seconds after [`epoch`].
fn failed_message(n: u16, seconds: i64, changed: i64) -> Message {
    let mut m = message_to(&recipient(n), seconds, MessageStatus::Failed);
    m.failed_listed = true;
    m.updated_at = epoch() + Duration::seconds(changed);
    m
}

/// Read every page of the failed list with page size `limit`.
async fn all_failed_pages(store: &dyn Store, limit: usize) -> Vec<Page<Message>> {
    let mut pages: Vec<Page<Message>> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_failed(limit, cursor.as_deref()).await.expect("list_failed");
        assert!(page.items.len() <= limit, "a page holds at most `limit` items");
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() <= 50, "listing does not end");
    }
}

/// Only messages with `failed_listed` are on the list, whatever their status.
pub async fn the_failed_list_holds_exactly_the_listed_messages(store: &dyn Store) {
    let listed = failed_message(1, 0, 10);
    let mut failed_but_removed = failed_message(2, 1, 11);
    failed_but_removed.failed_listed = false;
    let delivered = message_to(&recipient(3), 2, MessageStatus::Delivered);
    for m in [&listed, &failed_but_removed, &delivered] {
        create(store, m).await;
    }
    let page = store.list_failed(10, None).await.expect("list_failed");
    assert_eq!(
        page,
        Page {
            items: vec![listed],
            next_cursor: None
        }
    );
}

/// Seven listed messages read three at a time: 3, 3 and 1, most recently changed first (not in
/// creation order), each exactly once, and only the last page lacks a cursor.
pub async fn the_failed_list_is_newest_change_first_and_pages_without_duplicates_or_gaps(store: &dyn Store) {
    let mut created = Vec::new();
    for i in 0..7 {
        // Last changed 0, 3, 6, 2, 5, 1, 4 seconds after the first change: not creation order.
        let m = failed_message(1, i, 100 + (i * 3) % 7);
        create(store, &m).await;
        created.push(m);
    }
    let pages = all_failed_pages(store, 3).await;
    assert_eq!(pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(), vec![3, 3, 1]);
    assert!(pages[..2].iter().all(|p| p.next_cursor.is_some()));
    let listed: Vec<Message> = pages.into_iter().flat_map(|p| p.items).collect();
    created.sort_by_key(|m| std::cmp::Reverse(m.updated_at));
    assert_eq!(
        listed, created,
        "every listed message once, newest change first, as stored"
    );
}

/// When the listed messages fill the last page exactly, that page says there is no next one.
pub async fn the_failed_list_has_no_next_cursor_when_the_last_page_is_full(store: &dyn Store) {
    for i in 0..6 {
        create(store, &failed_message(1, i, 100 + i)).await;
    }
    let pages = all_failed_pages(store, 3).await;
    assert_eq!(pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(), vec![3, 3]);
    let everything = store.list_failed(6, None).await.expect("list_failed");
    assert_eq!(everything.items.len(), 6);
    assert_eq!(everything.next_cursor, None);
}

/// A change moves a listed message to the front; clearing `failed_listed` takes it off.
pub async fn the_failed_list_follows_updates_and_clearing(store: &dyn Store) {
    let a = failed_message(1, 0, 10);
    let b = failed_message(2, 1, 20);
    create(store, &a).await;
    create(store, &b).await;
    let a2 = next_version(&a, MessageStatus::Failed);
    let a2 = Message {
        updated_at: epoch() + Duration::seconds(30),
        ..a2
    };
    store.update_message(&a2).await.expect("update");
    let page = store.list_failed(10, None).await.expect("list_failed");
    assert_eq!(ids(&page.items), vec![a.id.clone(), b.id.clone()]);
    assert_eq!(page.items[0], a2);

    let mut removed = next_version(&a2, MessageStatus::Queued);
    removed.failed_listed = false;
    store.update_message(&removed).await.expect("update");
    let page = store.list_failed(10, None).await.expect("list_failed");
    assert_eq!(ids(&page.items), vec![b.id]);
}

/// A failed-list cursor the store did not hand out is `Corrupt`.
pub async fn an_unreadable_failed_list_cursor_is_corrupt(store: &dyn Store) {
    create(store, &failed_message(1, 0, 10)).await;
    for cursor in ["not a cursor!", "bXNnX25vdC1hLXVsaWQ"] {
        let result = store.list_failed(5, Some(cursor)).await;
        assert!(
            matches!(result, Err(StoreError::Corrupt(_))),
            "cursor {cursor:?} gave {result:?}"
        );
    }
}

// ---- MessageQueries: by the caller's entity link ----

fn entity(kind: &str, id: &str) -> Ref {
    Ref {
        kind: kind.to_owned(),
        id: id.to_owned(),
    }
}

/// A ref's messages, whatever their status, oldest first and at most `limit`; other refs (even
/// ones that would read the same if their parts were joined with `#`) and messages without a
/// ref are not among them.
pub async fn messages_are_listed_by_ref_oldest_first(store: &dyn Store) {
    let event = entity("calendar_event", "evt_1");
    let (joined_a, joined_b) = (entity("a#b", "c"), entity("a", "b#c"));
    let refs = [
        Some(event.clone()),
        Some(entity("calendar_event", "evt_2")),
        Some(event.clone()),
        None,
        Some(event.clone()),
        Some(joined_a.clone()),
        Some(joined_b.clone()),
    ];
    let mut created = Vec::new();
    for (i, reference) in (0_i64..).zip(refs) {
        let mut m = message_to(&recipient(1), i, MessageStatus::Queued);
        m.reference = reference;
        create(store, &m).await;
        created.push(m);
    }
    let canceled = next_version(&created[2], MessageStatus::Canceled);
    store.update_message(&canceled).await.expect("update");

    let listed = store.list_by_ref(&event, 10).await.expect("list_by_ref");
    assert_eq!(listed, vec![created[0].clone(), canceled, created[4].clone()]);
    let first_two = store.list_by_ref(&event, 2).await.expect("list_by_ref");
    assert_eq!(ids(&first_two), vec![created[0].id.clone(), created[2].id.clone()]);
    assert_eq!(
        ids(&store.list_by_ref(&joined_a, 10).await.expect("list_by_ref")),
        vec![created[5].id.clone()]
    );
    assert_eq!(
        ids(&store.list_by_ref(&joined_b, 10).await.expect("list_by_ref")),
        vec![created[6].id.clone()]
    );
    let unknown = entity("calendar_event", "evt_9");
    assert!(store.list_by_ref(&unknown, 10).await.expect("list_by_ref").is_empty());
}

// ---- ConsentStore ----

/// An opt-out reads back with its reason and time; other numbers have none.
pub async fn an_opt_out_is_read_back_with_its_reason(store: &dyn Store) {
    let at = epoch() + Duration::seconds(5);
    store.opt_out(&recipient(1), "keyword_stop", at).await.expect("opt_out");
    assert_eq!(
        store.opt_out_of(&recipient(1)).await.expect("opt_out_of"),
        Some(OptOut {
            phone: recipient(1),
            reason: "keyword_stop".to_owned(),
            at
        })
    );
    assert_eq!(store.opt_out_of(&recipient(2)).await.expect("opt_out_of"), None);
}

/// Consent history: every field round-trips; oldest first whatever the write order; per phone.
pub async fn consent_evidence_is_kept_in_time_order_with_every_field(store: &dyn Store) {
    use crate::domain::{ConsentChannel, ConsentEvidence, ConsentStatus};
    let stop = ConsentEvidence {
        status: ConsentStatus::OptedOut,
        at: epoch() + Duration::seconds(5),
        keyword: Some("STOP".to_owned()),
        channel: ConsentChannel::Sms,
        message_sid: Some("SMa1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned()),
    };
    let start = ConsentEvidence {
        status: ConsentStatus::OptedIn,
        at: epoch() + Duration::seconds(60),
        keyword: Some("START".to_owned()),
        channel: ConsentChannel::Sms,
        message_sid: Some("SMb1b2c3d4e5f60718293a4b5c6d7e8f91".to_owned()),
    };
    let refused = ConsentEvidence {
        status: ConsentStatus::OptedOut,
        at: epoch() + Duration::seconds(1),
        keyword: None,
        channel: ConsentChannel::ProviderError,
        message_sid: None,
    };
    for e in [&start, &stop, &refused] {
        assert!(store.append_consent(&recipient(1), e).await.expect("append"));
    }
    assert_eq!(
        store.consent_history(&recipient(1)).await.expect("history"),
        vec![refused, stop, start]
    );
    assert_eq!(store.consent_history(&recipient(2)).await.expect("history"), Vec::new());
}

/// A redelivered STOP (same MessageSid, later arrival) adds nothing.
pub async fn the_same_consent_evidence_twice_is_recorded_once(store: &dyn Store) {
    use crate::domain::{ConsentChannel, ConsentEvidence, ConsentStatus};
    let first = ConsentEvidence {
        status: ConsentStatus::OptedOut,
        at: epoch(),
        keyword: Some("STOP".to_owned()),
        channel: ConsentChannel::Sms,
        message_sid: Some("SMa1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned()),
    };
    let again = ConsentEvidence {
        at: epoch() + Duration::seconds(30),
        ..first.clone()
    };
    let both = join_all([
        store.append_consent(&recipient(1), &first),
        store.append_consent(&recipient(1), &again),
    ])
    .await;
    let added: Vec<bool> = both.into_iter().map(|r| r.expect("append")).collect();
    assert_eq!(added.iter().filter(|a| **a).count(), 1, "{added:?}");
    assert_eq!(store.consent_history(&recipient(1)).await.expect("history").len(), 1);
}

/// Opting out again is fine and keeps the first reason and time.
pub async fn a_second_opt_out_keeps_the_first_record(store: &dyn Store) {
    let at = epoch() + Duration::seconds(5);
    store.opt_out(&recipient(1), "keyword_stop", at).await.expect("opt_out");
    store
        .opt_out(&recipient(1), "provider_21610", at + Duration::hours(1))
        .await
        .expect("second opt_out");
    let kept = store
        .opt_out_of(&recipient(1))
        .await
        .expect("opt_out_of")
        .expect("an opt-out");
    assert_eq!((kept.reason.as_str(), kept.at), ("keyword_stop", at));
}

/// Opting in removes the opt-out (and is fine when there is none); a later opt-out is new.
pub async fn opting_in_removes_the_opt_out(store: &dyn Store) {
    store.opt_in(&recipient(1)).await.expect("opt_in without an opt-out");
    store
        .opt_out(&recipient(1), "keyword_stop", epoch())
        .await
        .expect("opt_out");
    store.opt_in(&recipient(1)).await.expect("opt_in");
    assert_eq!(store.opt_out_of(&recipient(1)).await.expect("opt_out_of"), None);
    let again = epoch() + Duration::days(1);
    store
        .opt_out(&recipient(1), "provider_21610", again)
        .await
        .expect("opt_out");
    let fresh = store
        .opt_out_of(&recipient(1))
        .await
        .expect("opt_out_of")
        .expect("an opt-out");
    assert_eq!((fresh.reason.as_str(), fresh.at), ("provider_21610", again));
}

/// The send-slot window the tests use.
fn slot_window() -> Duration {
    Duration::hours(1)
}

async fn take(store: &dyn Store, n: u16, at: DateTime<Utc>, limit: u32) -> bool {
    store
        .take_send_slot(&recipient(n), at, slot_window(), limit)
        .await
        .expect("take_send_slot")
}

/// With a limit of 5, five slots are granted and the sixth is not; other numbers are unaffected.
pub async fn send_slots_run_out_at_the_limit(store: &dyn Store) {
    for i in 0..5 {
        assert!(take(store, 1, epoch() + Duration::seconds(i), 5).await, "slot {i}");
    }
    assert!(!take(store, 1, epoch() + Duration::seconds(5), 5).await);
    assert!(!take(store, 1, epoch() + Duration::seconds(6), 5).await);
    assert!(take(store, 2, epoch() + Duration::seconds(6), 5).await);
}

/// Twenty concurrent takers with a limit of 5: exactly five win.
pub async fn concurrent_send_slot_takers_never_exceed_the_limit(store: &dyn Store) {
    let (phone, at) = (recipient(1), epoch());
    let results = join_all((0..20).map(|_| store.take_send_slot(&phone, at, slot_window(), 5))).await;
    let granted = results
        .into_iter()
        .map(|r| r.expect("take_send_slot"))
        .filter(|granted| *granted)
        .count();
    assert_eq!(granted, 5);
    assert!(!take(store, 1, at + Duration::seconds(1), 5).await);
}

/// The window rolls: a send stops counting once it is a full window old.
pub async fn send_slots_free_up_as_the_window_rolls_on(store: &dyn Store) {
    let t0 = epoch();
    let t1 = t0 + Duration::minutes(30);
    for _ in 0..3 {
        assert!(take(store, 1, t0, 5).await);
    }
    for _ in 0..2 {
        assert!(take(store, 1, t1, 5).await);
    }
    assert!(!take(store, 1, t0 + slot_window() - Duration::seconds(1), 5).await);
    // The three sends at t0 have aged out; the two at t1 still count.
    let later = t0 + slot_window() + Duration::seconds(1);
    for i in 0..3 {
        assert!(take(store, 1, later, 5).await, "freed slot {i}");
    }
    assert!(!take(store, 1, later, 5).await);
}

/// `check_send` on an opted-out number answers `OptedOut` and takes no slot: after opting back
/// in, the whole limit is still there.
pub async fn check_send_suppresses_an_opted_out_recipient_without_taking_a_slot(store: &dyn Store) {
    use crate::ports::SendCheck;
    let (phone, at) = (recipient(1), epoch());
    store.opt_out(&phone, "keyword_stop", at).await.expect("opt out");
    for _ in 0..3 {
        let check = store
            .check_send(&phone, at, slot_window(), 2)
            .await
            .expect("check_send");
        assert!(
            matches!(check, SendCheck::OptedOut(ref o) if o.reason == "keyword_stop"),
            "{check:?}"
        );
    }
    store.opt_in(&phone).await.expect("opt in");
    assert!(take(store, 1, at, 2).await);
    assert!(take(store, 1, at, 2).await);
    assert!(!take(store, 1, at, 2).await);
}

/// `check_send` takes slots like `take_send_slot`: `limit` grants, then `Limited`, concurrently too.
pub async fn check_send_grants_up_to_the_limit_then_refuses(store: &dyn Store) {
    use crate::ports::SendCheck;
    let (phone, at) = (recipient(1), epoch());
    let results = join_all((0..10).map(|_| store.check_send(&phone, at, slot_window(), 4))).await;
    let checks: Vec<SendCheck> = results.into_iter().map(|r| r.expect("check_send")).collect();
    assert_eq!(checks.iter().filter(|c| **c == SendCheck::Granted).count(), 4);
    assert_eq!(checks.iter().filter(|c| **c == SendCheck::Limited).count(), 6);
    assert!(!take(store, 1, at, 4).await);
}

// ---- IdempotencyStore ----

const KEY: &str = "send:key-1";

fn response() -> SavedResponse {
    SavedResponse {
        status: 202,
        body: r#"{"id":"msg_01ARZ3NDEKTSV4RRFFQ69G5FAV","status":"queued"}"#.to_owned(),
    }
}

async fn begin(store: &dyn Store, hash: &str, at: DateTime<Utc>) -> Begin {
    store.begin(KEY, hash, at).await.expect("begin")
}

/// The first claim starts; a repeat while it runs is told it is in progress.
pub async fn a_first_begin_is_started_and_a_repeat_is_in_progress(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(1)).await,
        Begin::InProgress
    );
    assert_eq!(
        store.begin("send:key-2", "h1", epoch()).await.expect("begin"),
        Begin::Started,
        "keys are independent"
    );
}

/// After `complete`, the same request replays the saved status and body.
pub async fn a_completed_key_replays_its_response(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    store.complete(KEY, "h1", &response(), epoch()).await.expect("complete");
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(5)).await,
        Begin::Replay(response())
    );
}

/// The same key with another request body is a mismatch, running or completed.
pub async fn a_key_reused_with_another_request_is_a_mismatch(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    assert_eq!(
        begin(store, "h2", epoch() + Duration::seconds(1)).await,
        Begin::Mismatch
    );
    store.complete(KEY, "h1", &response(), epoch()).await.expect("complete");
    assert_eq!(
        begin(store, "h2", epoch() + Duration::seconds(2)).await,
        Begin::Mismatch
    );
}

/// A `complete` under another request hash saves nothing and is not an error.
pub async fn completing_with_another_request_hash_saves_nothing(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    store.complete(KEY, "h2", &response(), epoch()).await.expect("complete");
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(1)).await,
        Begin::InProgress
    );
    store
        .complete("send:never-begun", "h1", &response(), epoch())
        .await
        .expect("complete of an unknown key");
    assert_eq!(
        store.begin("send:never-begun", "h1", epoch()).await.expect("begin"),
        Begin::Started
    );
}

/// The 60-second lease holds through its last second and is free after it (a crashed request).
pub async fn an_in_progress_claim_can_be_taken_over_once_its_lease_runs_out(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(60)).await,
        Begin::InProgress
    );
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(61)).await,
        Begin::Started
    );
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(62)).await,
        Begin::InProgress
    );
}

/// A completed record replays for 24 hours after completion, then the key is free again.
pub async fn a_completed_record_expires_after_a_day(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    store.complete(KEY, "h1", &response(), epoch()).await.expect("complete");
    assert_eq!(
        begin(store, "h1", epoch() + Duration::hours(24)).await,
        Begin::Replay(response())
    );
    let expired = epoch() + Duration::hours(24) + Duration::seconds(1);
    assert_eq!(begin(store, "h2", expired).await, Begin::Started);
}

/// Releasing an in-progress claim frees the key; releasing a completed one keeps its response.
pub async fn a_released_key_can_be_started_again_but_a_completed_one_is_kept(store: &dyn Store) {
    assert_eq!(begin(store, "h1", epoch()).await, Begin::Started);
    store.release(KEY).await.expect("release");
    assert_eq!(begin(store, "h1", epoch() + Duration::seconds(1)).await, Begin::Started);
    store.complete(KEY, "h1", &response(), epoch()).await.expect("complete");
    store.release(KEY).await.expect("release of a completed key");
    assert_eq!(
        begin(store, "h1", epoch() + Duration::seconds(2)).await,
        Begin::Replay(response())
    );
    store
        .release("send:never-begun")
        .await
        .expect("release of an unknown key");
}

/// Ten concurrent claims of one key: exactly one starts, the others see it in progress.
pub async fn of_ten_concurrent_begins_exactly_one_is_started(store: &dyn Store) {
    let results = join_all((0..10).map(|_| store.begin(KEY, "h1", epoch()))).await;
    let outcomes: Vec<Begin> = results.into_iter().map(|r| r.expect("begin")).collect();
    assert_eq!(
        outcomes.iter().filter(|b| **b == Begin::Started).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|b| matches!(b, Begin::Started | Begin::InProgress)),
        "{outcomes:?}"
    );
}
