//! Conversation plumbing the use cases share: find-or-open the pair's conversation, and
//! read-modify-write with optimistic concurrency (like `modify_message`).

use super::MODIFY_ATTEMPTS;
use crate::domain::{Conversation, ConversationId, PhoneNumber};
use crate::ports::{ConversationStore, StoreError};
use chrono::{DateTime, Utc};

/// The open conversation of (`business_number`, `phone`), opened (with `campaign_id`) when there
/// is none. Two webhooks at once open one: the loser of the create reads the winner's.
///
/// # Errors
/// The store's error, or `ConditionFailed` if the pair kept changing under us.
pub async fn open_or_create(
    store: &dyn ConversationStore,
    business_number: &PhoneNumber,
    phone: &PhoneNumber,
    campaign_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Conversation, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        if let Some(open) = store.open_conversation(business_number, phone).await? {
            return Ok(open);
        }
        let fresh = Conversation::open(phone.clone(), business_number.clone(), campaign_id.clone(), now);
        match store.create_conversation(&fresh).await {
            Ok(()) => return Ok(fresh),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::ConditionFailed)
}

/// Read a conversation, apply `change`, and write it back if `change` returned `true`, re-reading
/// after a lost version race. Returns the record as stored afterwards (`None`: no such id).
///
/// # Errors
/// The store's error, or `ConditionFailed` after `MODIFY_ATTEMPTS` lost races.
pub async fn modify_conversation(
    store: &dyn ConversationStore,
    id: &ConversationId,
    mut change: impl FnMut(&mut Conversation) -> bool + Send,
) -> Result<Option<Conversation>, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        let Some(current) = store.get_conversation(id).await? else {
            return Ok(None);
        };
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(Some(current));
        }
        next.version = current.version + 1;
        match store.update_conversation(&next).await {
            Ok(()) => return Ok(Some(next)),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::ConditionFailed)
}
