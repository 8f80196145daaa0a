//! The `ConversationStore` contract: behaviour every conversation adapter must show, run against
//! SQLite and DynamoDB Local by [`conversation_contract!`](crate::conversation_contract). Each test
//! builds a fresh store with the expression it is given. Test support: panics on a broken contract.

use crate::domain::{Conversation, ConversationStatus, Direction, Outcome, PhoneNumber, Turn};
use crate::ports::conversation_store::{ConversationFilter, ConversationStore};
use crate::ports::StoreError;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use std::collections::HashSet;
use std::sync::Arc;

/// Expand the conversation contract suite: one `#[tokio::test]` per behaviour. `$make` is an
/// async expression whose output implements [`ContractConversations`].
#[macro_export]
macro_rules! conversation_contract {
    ($make:expr) => {
        $crate::conversation_contract!(@tests $make;
            a_created_conversation_reads_back_whole,
            it_is_the_open_conversation_of_its_pair_only,
            a_second_open_conversation_for_the_same_pair_is_condition_failed,
            of_concurrent_creates_for_one_pair_exactly_one_wins,
            an_update_with_the_next_version_is_visible_and_a_stale_one_is_refused,
            ending_frees_the_pair_for_a_new_conversation,
            a_phone_lists_its_conversations_newest_first_across_business_numbers,
            listing_pages_without_duplicates_or_gaps,
            listing_filters_by_status_and_outcome,
            an_unreadable_conversation_cursor_is_corrupt,
            conversations_are_listed_by_status_newest_first_and_move_when_it_changes,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let fixture = $make.await;
                $crate::testing::conversation_contract::$name(
                    $crate::testing::conversation_contract::ContractConversations::conversations(&fixture),
                )
                .await;
            }
        )+
    };
}

/// What a `conversation_contract!` maker may produce: something that lends a `&dyn ConversationStore`.
pub trait ContractConversations {
    /// The store under test.
    fn conversations(&self) -> &dyn ConversationStore;
}

impl<S: ConversationStore> ContractConversations for Arc<S> {
    fn conversations(&self) -> &dyn ConversationStore {
        &**self
    }
}

impl ContractConversations for Arc<dyn ConversationStore> {
    fn conversations(&self) -> &dyn ConversationStore {
        &**self
    }
}

/// A store plus a guard that must outlive it (a temporary directory).
impl<S: ContractConversations, G> ContractConversations for (S, G) {
    fn conversations(&self) -> &dyn ConversationStore {
        self.0.conversations()
    }
}

fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_366_400, 0).unwrap_or_default()
}

fn phone(n: u16) -> PhoneNumber {
    PhoneNumber::parse_e164(&format!("+1415555{:04}", n % 10_000)).expect("fixture number is E.164")
}

fn business(n: u16) -> PhoneNumber {
    PhoneNumber::parse_e164(&format!("+1628555{:04}", n % 10_000)).expect("fixture number is E.164")
}

fn conversation(lead: u16, ours: u16, seconds: i64) -> Conversation {
    Conversation::open(
        phone(lead),
        business(ours),
        Some("roof-leads".to_owned()),
        epoch() + Duration::seconds(seconds),
    )
}

fn next(mut c: Conversation) -> Conversation {
    c.version += 1;
    c
}

/// Created, then read by id: every field as written, turns and the booked appointment included.
pub async fn a_created_conversation_reads_back_whole(store: &dyn ConversationStore) {
    let mut c = conversation(1, 1, 0);
    c.appointment = Some(crate::domain::Appointment {
        start: "2026-12-03T14:00:00-08:00".to_owned(),
        duration_minutes: 60,
        notes: Some("side gate".to_owned()),
        booked_at: epoch(),
    });
    c.append(Turn {
        direction: Direction::Outbound,
        body: "Hi Ana, thanks for your request! Reply STOP to opt out.".to_owned(),
        at: epoch(),
        message_id: Some(crate::domain::MessageId::generate(epoch())),
        provider_ref: None,
    })
    .expect("open conversation takes turns");
    store.create_conversation(&c).await.expect("create");
    assert_eq!(store.get_conversation(&c.id).await.expect("get"), Some(c));
}

/// The open conversation of a pair is found by the pair, not by either number alone.
pub async fn it_is_the_open_conversation_of_its_pair_only(store: &dyn ConversationStore) {
    let c = conversation(1, 1, 0);
    store.create_conversation(&c).await.expect("create");
    let found = store.open_conversation(&business(1), &phone(1)).await.expect("read");
    assert_eq!(found.map(|f| f.id), Some(c.id));
    assert_eq!(
        store.open_conversation(&business(2), &phone(1)).await.expect("read"),
        None
    );
    assert_eq!(
        store.open_conversation(&business(1), &phone(2)).await.expect("read"),
        None
    );
}

/// A pair has at most one open conversation.
pub async fn a_second_open_conversation_for_the_same_pair_is_condition_failed(store: &dyn ConversationStore) {
    store.create_conversation(&conversation(1, 1, 0)).await.expect("create");
    let second = conversation(1, 1, 5);
    assert!(matches!(
        store.create_conversation(&second).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(store.get_conversation(&second.id).await.expect("get"), None);
}

/// Ten webhooks at once for one new pair: exactly one conversation is created.
pub async fn of_concurrent_creates_for_one_pair_exactly_one_wins(store: &dyn ConversationStore) {
    let attempts: Vec<Conversation> = (0..10).map(|i| conversation(3, 3, i)).collect();
    let results = join_all(attempts.iter().map(|c| store.create_conversation(c))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(StoreError::ConditionFailed))));
    let page = store
        .list_conversations(&phone(3), ConversationFilter::default(), 50, None)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
}

/// Optimistic concurrency on `version`.
pub async fn an_update_with_the_next_version_is_visible_and_a_stale_one_is_refused(store: &dyn ConversationStore) {
    let c = conversation(1, 1, 0);
    store.create_conversation(&c).await.expect("create");
    let mut v1 = next(c.clone());
    v1.append(Turn {
        direction: Direction::Inbound,
        body: "yes thursday".to_owned(),
        at: epoch() + Duration::seconds(30),
        message_id: None,
        provider_ref: Some("SM00000000000000000000000000000001".to_owned()),
    })
    .expect("open");
    store.update_conversation(&v1).await.expect("update");
    assert_eq!(store.get_conversation(&c.id).await.expect("get"), Some(v1.clone()));
    let mut stale = next(c.clone());
    stale.hand_to_human(epoch()).expect("open");
    assert!(matches!(
        store.update_conversation(&stale).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(store.get_conversation(&c.id).await.expect("get"), Some(v1));
}

/// An ended conversation is no longer the pair's open one, and a new one may start.
pub async fn ending_frees_the_pair_for_a_new_conversation(store: &dyn ConversationStore) {
    let c = conversation(1, 1, 0);
    store.create_conversation(&c).await.expect("create");
    let mut ended = next(c.clone());
    ended
        .end(Outcome::Discarded, "opted out (STOP)", epoch() + Duration::minutes(1))
        .expect("open");
    store.update_conversation(&ended).await.expect("end");
    assert_eq!(
        store.open_conversation(&business(1), &phone(1)).await.expect("read"),
        None
    );
    let again = conversation(1, 1, 120);
    store
        .create_conversation(&again)
        .await
        .expect("a new conversation after the end");
    let found = store.open_conversation(&business(1), &phone(1)).await.expect("read");
    assert_eq!(found.map(|f| f.id), Some(again.id));
}

/// Listing by phone spans business numbers and is newest first.
pub async fn a_phone_lists_its_conversations_newest_first_across_business_numbers(store: &dyn ConversationStore) {
    let a = conversation(1, 1, 0);
    let b = conversation(1, 2, 10);
    let other = conversation(2, 1, 20);
    for c in [&a, &b, &other] {
        store.create_conversation(c).await.expect("create");
    }
    let page = store
        .list_conversations(&phone(1), ConversationFilter::default(), 50, None)
        .await
        .expect("list");
    let ids: Vec<_> = page.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, [b.id, a.id]);
    assert_eq!(page.next_cursor, None);
}

/// Pages of 2 over 5 conversations: every one once, in order, no cursor after the last.
pub async fn listing_pages_without_duplicates_or_gaps(store: &dyn ConversationStore) {
    let mut made = Vec::new();
    for i in 0..5u16 {
        let mut c = conversation(4, 10 + i, i64::from(i) * 60);
        if i < 4 {
            // End all but the newest, so the pair index holds one at most per business number.
            c.end(
                Outcome::NoResponse,
                "silent",
                epoch() + Duration::seconds(i64::from(i) * 60 + 1),
            )
            .expect("open");
        }
        store.create_conversation(&c).await.expect("create");
        made.push(c.id);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = store
            .list_conversations(&phone(4), ConversationFilter::default(), 2, cursor.as_deref())
            .await
            .expect("list");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|c| c.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, made);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
}

/// `status` and `outcome` filters, also across pages.
pub async fn listing_filters_by_status_and_outcome(store: &dyn ConversationStore) {
    let mut want_ended = Vec::new();
    for i in 0..6u16 {
        let mut c = conversation(5, 20 + i, i64::from(i) * 60);
        let outcome = if i % 2 == 0 {
            Outcome::Qualified
        } else {
            Outcome::Discarded
        };
        if i < 5 {
            c.end(outcome, "test", epoch() + Duration::seconds(i64::from(i) * 60 + 1))
                .expect("open");
            if outcome == Outcome::Qualified {
                want_ended.push(c.id.clone());
            }
        }
        store.create_conversation(&c).await.expect("create");
    }
    want_ended.reverse();
    let filter = ConversationFilter {
        status: Some(ConversationStatus::Ended),
        outcome: Some(Outcome::Qualified),
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = store
            .list_conversations(&phone(5), filter, 1, cursor.as_deref())
            .await
            .expect("list");
        assert!(page.items.iter().all(|c| filter.keeps(c)));
        seen.extend(page.items.into_iter().map(|c| c.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, want_ended);
    let open = store
        .list_conversations(
            &phone(5),
            ConversationFilter {
                status: Some(ConversationStatus::Open),
                outcome: None,
            },
            50,
            None,
        )
        .await
        .expect("list");
    assert_eq!(open.items.len(), 1);
}

/// A cursor the store did not make is `Corrupt` (a 400 at the API), never a panic.
pub async fn an_unreadable_conversation_cursor_is_corrupt(store: &dyn ConversationStore) {
    let result = store
        .list_conversations(&phone(1), ConversationFilter::default(), 10, Some("not a cursor!"))
        .await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

/// Every phone's conversations by status, newest first, in pages without duplicates or gaps; a
/// conversation moves to its new status's list when it is written; a foreign cursor is `Corrupt`.
pub async fn conversations_are_listed_by_status_newest_first_and_move_when_it_changes(store: &dyn ConversationStore) {
    let mut open = Vec::new();
    for i in 0..4u16 {
        let c = conversation(30 + i, 40, i64::from(i) * 60);
        store.create_conversation(&c).await.expect("create");
        open.push(c);
    }
    // The second needs a person now; the first ends.
    let mut needs = next(open[1].clone());
    needs.status = ConversationStatus::NeedsHuman;
    store.update_conversation(&needs).await.expect("update");
    let mut ended = next(open[0].clone());
    ended
        .end(Outcome::Qualified, "test", epoch() + Duration::seconds(300))
        .expect("open");
    store.update_conversation(&ended).await.expect("end");
    let ids = |page: &crate::ports::message_store::Page<Conversation>| -> Vec<_> {
        page.items.iter().map(|c| c.id.clone()).collect()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let page = store
            .list_conversations_by_status(ConversationStatus::Open, 1, cursor.as_deref())
            .await
            .expect("list");
        assert!(page.items.len() <= 1);
        assert!(page.items.iter().all(|c| c.status == ConversationStatus::Open));
        seen.extend(ids(&page));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, [open[3].id.clone(), open[2].id.clone()], "open, newest first");
    let page = store
        .list_conversations_by_status(ConversationStatus::NeedsHuman, 50, None)
        .await
        .expect("list");
    assert_eq!(ids(&page), [needs.id.clone()]);
    assert_eq!(page.items[0].version, needs.version, "the record as last written");
    let page = store
        .list_conversations_by_status(ConversationStatus::Ended, 50, None)
        .await
        .expect("list");
    assert_eq!(ids(&page), [ended.id.clone()]);
    assert_eq!(page.next_cursor, None);
    let bad = store
        .list_conversations_by_status(ConversationStatus::Open, 10, Some("not a cursor!"))
        .await;
    assert!(matches!(bad, Err(StoreError::Corrupt(_))), "{bad:?}");
}
