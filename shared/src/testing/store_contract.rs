//! The `MessageStore` contract: behaviour every adapter must show, run against each of them.
//!
//! [`store_contract!`](crate::store_contract) expands one `#[tokio::test]` per behaviour; each test
//! builds a fresh store with the expression it is given (a new table, a new database file), so
//! tests never share state and may run in parallel. The checks themselves are the `pub async fn`s
//! below, named after the tests. This module is test support: it panics on a broken contract.
//!
//! ```ignore
//! mod sqlite {
//!     smsrelay::store_contract!(async {
//!         smsrelay::adapters::sqlite_store::SqliteStore::open_in_memory().expect("store")
//!     });
//! }
//! ```

#[cfg(feature = "aws")]
use crate::adapters::dynamodb::DynamoMessageStore;
use crate::adapters::sqlite_store::SqliteStore;
use crate::domain::{
    Message, MessageBody, MessageError, MessageId, MessageStatus, PhoneNumber, ProviderSid, Ref, StatusEvent,
};
use crate::ports::message_store::Page;
use crate::ports::{MessageStore, StoreError, WebhookRecord};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// Expand the store contract suite: one `#[tokio::test]` per behaviour.
///
/// `$make` is an async expression (a future) evaluated afresh in every test; its output is
/// anything that implements [`ContractStore`]: a `SqliteStore` or `DynamoMessageStore`, an
/// `Arc` of a store, an `Arc<dyn MessageStore>` or `Box<dyn MessageStore>`, or a `(store, guard)`
/// pair whose guard (a `TempDir`, say) lives as long as the test. The calling crate needs `tokio` (with `macros` and `rt`) as a dependency.
#[macro_export]
macro_rules! store_contract {
    ($make:expr) => {
        $crate::store_contract!(@tests $make;
            create_then_get_returns_the_same_record,
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
            a_webhook_is_recorded_once_per_key,
            listing_is_newest_first_and_pages_without_duplicates_or_gaps,
            listing_has_no_next_cursor_when_the_last_page_is_full,
            listing_filters_by_status_across_pages,
            listing_follows_status_updates,
            listing_excludes_other_recipients,
            an_unreadable_cursor_is_corrupt,
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

/// What a `store_contract!` maker may produce: something that lends a `&dyn MessageStore`.
pub trait ContractStore {
    /// The store under test.
    fn store(&self) -> &dyn MessageStore;
}

impl<S: MessageStore> ContractStore for Arc<S> {
    fn store(&self) -> &dyn MessageStore {
        &**self
    }
}

impl ContractStore for Arc<dyn MessageStore> {
    fn store(&self) -> &dyn MessageStore {
        &**self
    }
}

impl ContractStore for Box<dyn MessageStore> {
    fn store(&self) -> &dyn MessageStore {
        &**self
    }
}

impl ContractStore for SqliteStore {
    fn store(&self) -> &dyn MessageStore {
        self
    }
}

#[cfg(feature = "aws")]
impl ContractStore for DynamoMessageStore {
    fn store(&self) -> &dyn MessageStore {
        self
    }
}

/// A store plus a guard that must outlive it (a temporary directory); the store drops first.
impl<S: ContractStore, G> ContractStore for (S, G) {
    fn store(&self) -> &dyn MessageStore {
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
    m.events.push(StatusEvent {
        status: MessageStatus::Undelivered,
        at: at + Duration::minutes(32),
        code: Some(30_005),
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

async fn create(store: &dyn MessageStore, message: &Message) {
    store.create_message(message).await.expect("create_message");
}

async fn get(store: &dyn MessageStore, id: &MessageId) -> Option<Message> {
    store.get_message(id).await.expect("get_message")
}

fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id.clone()).collect()
}

/// Read every page of a listing with page size `limit`.
async fn all_pages(
    store: &dyn MessageStore,
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
pub async fn create_then_get_returns_the_same_record(store: &dyn MessageStore) {
    let m = full_message();
    create(store, &m).await;
    assert_eq!(get(store, &m.id).await, Some(m));
}

/// Creating an id that exists loses, and keeps the first record.
pub async fn creating_the_same_message_twice_is_condition_failed(store: &dyn MessageStore) {
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
pub async fn getting_an_unknown_id_is_none(store: &dyn MessageStore) {
    create(store, &message_to(&recipient(1), 0, MessageStatus::Queued)).await;
    let unknown = MessageId::generate(epoch() + Duration::seconds(5));
    assert_eq!(get(store, &unknown).await, None);
}

/// An update carrying version + 1 wins and is read back.
pub async fn an_update_with_the_next_version_is_visible_to_the_next_get(store: &dyn MessageStore) {
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
pub async fn an_update_with_a_stale_version_is_condition_failed_and_changes_nothing(store: &dyn MessageStore) {
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
pub async fn an_update_with_version_zero_is_condition_failed(store: &dyn MessageStore) {
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
pub async fn updating_a_missing_message_is_condition_failed(store: &dyn MessageStore) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    let v1 = next_version(&m, MessageStatus::Sent);
    assert!(matches!(
        store.update_message(&v1).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(get(store, &m.id).await, None);
}

/// Two writers that read the same version race; exactly one wins and its record is stored.
pub async fn of_two_concurrent_updates_from_the_same_read_exactly_one_wins(store: &dyn MessageStore) {
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
pub async fn a_linked_sid_resolves_to_its_message(store: &dyn MessageStore) {
    let m = message_to(&recipient(1), 0, MessageStatus::Sending);
    create(store, &m).await;
    store.link_provider_sid(&sid(1), &m.id).await.expect("link");
    assert_eq!(store.message_id_for_sid(&sid(1)).await.expect("lookup"), Some(m.id));
    assert_eq!(store.message_id_for_sid(&sid(2)).await.expect("lookup"), None);
}

/// Linking is idempotent for the same pair (a retried send records the same sid again).
pub async fn linking_the_same_pair_twice_is_ok(store: &dyn MessageStore) {
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
pub async fn linking_a_sid_to_another_message_is_condition_failed(store: &dyn MessageStore) {
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

/// The first receipt of a key is new, a repeat is a duplicate, another key is new again.
pub async fn a_webhook_is_recorded_once_per_key(store: &dyn MessageStore) {
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
pub async fn listing_is_newest_first_and_pages_without_duplicates_or_gaps(store: &dyn MessageStore) {
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
pub async fn listing_has_no_next_cursor_when_the_last_page_is_full(store: &dyn MessageStore) {
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
pub async fn listing_filters_by_status_across_pages(store: &dyn MessageStore) {
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
pub async fn listing_follows_status_updates(store: &dyn MessageStore) {
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
pub async fn listing_excludes_other_recipients(store: &dyn MessageStore) {
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
pub async fn an_unreadable_cursor_is_corrupt(store: &dyn MessageStore) {
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
