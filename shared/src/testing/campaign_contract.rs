//! The `CampaignStore` contract: behaviour every campaign adapter must show, run against SQLite
//! and DynamoDB Local by [`campaign_contract!`](crate::campaign_contract). Test support: panics on
//! a broken contract.

use crate::domain::campaign::{Campaign, Enrolment, EnrolmentStatus, Lead, Step};
use crate::domain::{ConversationId, PhoneNumber};
use crate::ports::{CampaignStore, StoreError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;
use std::sync::Arc;

/// Expand the campaign contract suite: one `#[tokio::test]` per behaviour. `$make` is an async
/// expression whose output implements [`ContractCampaigns`].
#[macro_export]
macro_rules! campaign_contract {
    ($make:expr) => {
        $crate::campaign_contract!(@tests $make;
            creating_an_existing_campaign_is_condition_failed_and_replacing_overwrites,
            campaigns_list_by_id_in_pages_without_gaps,
            of_concurrent_enrolments_of_one_lead_in_one_campaign_exactly_one_wins,
            an_enrolment_update_needs_the_next_version,
            the_due_index_returns_only_what_is_due_and_follows_updates,
            a_phone_lists_its_enrolments_across_campaigns,
        );
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let fixture = $make.await;
                $crate::testing::campaign_contract::$name(
                    $crate::testing::campaign_contract::ContractCampaigns::campaigns(&fixture),
                )
                .await;
            }
        )+
    };
}

/// What a `campaign_contract!` maker may produce.
pub trait ContractCampaigns {
    /// The store under test.
    fn campaigns(&self) -> &dyn CampaignStore;
}

impl<S: CampaignStore> ContractCampaigns for Arc<S> {
    fn campaigns(&self) -> &dyn CampaignStore {
        &**self
    }
}

impl<S: CampaignStore, T> ContractCampaigns for (Arc<S>, T) {
    fn campaigns(&self) -> &dyn CampaignStore {
        &*self.0
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).single().unwrap_or_default()
}

fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse_e164(&format!("+1415555{n:04}")).unwrap_or_else(|e| panic!("{e}"))
}

fn campaign(id: &str, name: &str) -> Campaign {
    Campaign {
        id: id.to_owned(),
        name: name.to_owned(),
        from: Some("+14155550199".to_owned()),
        steps: vec![Step {
            delay: "0s".to_owned(),
            body: "Hi {{first_name}}".to_owned(),
        }],
        stop_on_reply: true,
        no_response_after: None,
        end_after_silence: None,
        quiet_hours: None,
        timezone: None,
        daily_limit: None,
        agent: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn enrolment(campaign_id: &str, p: PhoneNumber, at: DateTime<Utc>) -> Enrolment {
    Enrolment::new(
        campaign_id.to_owned(),
        Lead {
            phone: p,
            first_name: Some("Ana".to_owned()),
            last_name: None,
            email: None,
            timezone: None,
            attributes: Default::default(),
        },
        phone(199),
        ConversationId::generate(at),
        at,
    )
}

fn ok<T>(r: Result<T, StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("store call failed: {e}"))
}

/// A create is refused for an existing id; a replace overwrites.
pub async fn creating_an_existing_campaign_is_condition_failed_and_replacing_overwrites(store: &dyn CampaignStore) {
    let c = campaign("roof-leads", "Roof leads");
    ok(store.put_campaign(&c, true).await);
    assert!(matches!(
        store.put_campaign(&campaign("roof-leads", "Other"), true).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(ok(store.get_campaign("roof-leads").await), Some(c));
    ok(store.put_campaign(&campaign("roof-leads", "Renamed"), false).await);
    assert_eq!(
        ok(store.get_campaign("roof-leads").await).map(|c| c.name),
        Some("Renamed".to_owned())
    );
    assert_eq!(ok(store.get_campaign("nope").await), None);
}

/// Pages in id order, no duplicates, no gaps.
pub async fn campaigns_list_by_id_in_pages_without_gaps(store: &dyn CampaignStore) {
    for i in [3, 1, 4, 0, 2] {
        ok(store.put_campaign(&campaign(&format!("c{i}"), "x"), true).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = ok(store.list_campaigns(2, cursor.as_deref()).await);
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|c| c.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
}

/// Ten concurrent creates for one (campaign, phone): one wins, nine are `ConditionFailed`.
pub async fn of_concurrent_enrolments_of_one_lead_in_one_campaign_exactly_one_wins(store: &dyn CampaignStore) {
    let attempts: Vec<Enrolment> = (0..10).map(|_| enrolment("roof", phone(100), t0())).collect();
    let results = join_all(attempts.iter().map(|e| store.create_enrolment(e))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::ConditionFailed)))
        .count();
    assert_eq!((won, lost), (1, 9), "{results:?}");
    let stored = ok(store.enrolment_of("roof", &phone(100)).await).unwrap_or_else(|| panic!("one enrolment"));
    assert!(attempts.iter().any(|e| e.id == stored.id));
    assert_eq!(ok(store.get_enrolment(&stored.id).await), Some(stored));
    // Another campaign, or another phone, is another enrolment.
    ok(store.create_enrolment(&enrolment("other", phone(100), t0())).await);
    ok(store.create_enrolment(&enrolment("roof", phone(101), t0())).await);
    assert_eq!(ok(store.enrolment_of("roof", &phone(102)).await), None);
}

/// `version + 1` is accepted; a stale write is refused.
pub async fn an_enrolment_update_needs_the_next_version(store: &dyn CampaignStore) {
    let e = enrolment("roof", phone(110), t0());
    ok(store.create_enrolment(&e).await);
    let mut next = e.clone();
    next.version = 1;
    next.status = EnrolmentStatus::Paused;
    ok(store.update_enrolment(&next).await);
    let mut stale = e.clone();
    stale.version = 1;
    assert!(matches!(
        store.update_enrolment(&stale).await,
        Err(StoreError::ConditionFailed)
    ));
    assert_eq!(
        ok(store.get_enrolment(&e.id).await).map(|e| e.status),
        Some(EnrolmentStatus::Paused)
    );
    let mut ghost = enrolment("roof", phone(111), t0());
    ghost.version = 1;
    assert!(matches!(
        store.update_enrolment(&ghost).await,
        Err(StoreError::ConditionFailed)
    ));
}

/// Only enrolments due at or before `now`; an update that moves or clears the due time moves or
/// removes it from the index.
pub async fn the_due_index_returns_only_what_is_due_and_follows_updates(store: &dyn CampaignStore) {
    let now = t0();
    let mut made = Vec::new();
    for (i, offset) in [-30i64, -10, 0, 10, 60].iter().enumerate() {
        let e = enrolment(
            "roof",
            phone(120 + u32::try_from(i).unwrap_or(0)),
            now + Duration::minutes(*offset),
        );
        ok(store.create_enrolment(&e).await);
        made.push(e);
    }
    let due = ok(store.due_enrolments(now, 100).await);
    let ids: Vec<_> = due.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, vec![made[0].id.clone(), made[1].id.clone(), made[2].id.clone()]);
    assert_eq!(ok(store.due_enrolments(now, 2).await).len(), 2, "the limit holds");
    // Moved later: no longer due. Stopped: out of the index for good.
    let mut moved = made[0].clone();
    moved.version = 1;
    moved.next_message_at = Some(now + Duration::hours(1));
    ok(store.update_enrolment(&moved).await);
    let mut stopped = made[1].clone();
    stopped.version = 1;
    assert!(stopped.stop("opted out", now));
    ok(store.update_enrolment(&stopped).await);
    let due = ok(store.due_enrolments(now, 100).await);
    assert_eq!(
        due.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![made[2].id.clone()]
    );
    let later = ok(store.due_enrolments(now + Duration::hours(2), 100).await);
    assert_eq!(later.len(), 4, "all but the stopped one: {later:?}");
}

/// A phone's enrolments in every campaign, nobody else's.
pub async fn a_phone_lists_its_enrolments_across_campaigns(store: &dyn CampaignStore) {
    for c in ["a", "b", "c"] {
        ok(store.create_enrolment(&enrolment(c, phone(130), t0())).await);
    }
    ok(store.create_enrolment(&enrolment("a", phone(131), t0())).await);
    let mine = ok(store.enrolments_of_phone(&phone(130)).await);
    let mut campaigns: Vec<_> = mine.iter().map(|e| e.campaign_id.clone()).collect();
    campaigns.sort();
    assert_eq!(campaigns, ["a", "b", "c"]);
    assert!(ok(store.enrolments_of_phone(&phone(132)).await).is_empty());
}
