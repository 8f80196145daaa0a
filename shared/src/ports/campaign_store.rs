//! The campaigns port: campaign records, and their enrolments — one per (campaign, phone), made
//! by a conditional write — with a due index of each enrolment's next piece of work
//! ([`crate::domain::Enrolment::due_at`]), sharded where the store has partitions, so the
//! processor reads only what is due (never a scan). Every adapter gives the same conditional-write
//! semantics; `crate::testing::campaign_contract` runs against each of them.

use super::message_store::Page;
use super::StoreError;
use crate::domain::{Campaign, Enrolment, EnrolmentId, PhoneNumber};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Campaigns and enrolments.
#[async_trait]
pub trait CampaignStore: Send + Sync {
    /// Write a campaign: `create` refuses an existing id (`ConditionFailed`); otherwise it
    /// replaces the record (or creates it).
    ///
    /// # Errors
    /// `ConditionFailed` when `create` and the id exists; backend failures.
    async fn put_campaign(&self, campaign: &Campaign, create: bool) -> Result<(), StoreError>;

    /// Read a campaign.
    ///
    /// # Errors
    /// Backend failures; absent is `Ok(None)`.
    async fn get_campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError>;

    /// Campaigns by id, in pages.
    ///
    /// # Errors
    /// Backend failures; an unreadable cursor is `Corrupt`.
    async fn list_campaigns(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Campaign>, StoreError>;

    /// Insert a new enrolment (`version` 0).
    ///
    /// # Errors
    /// `ConditionFailed` when its (campaign, phone) already has one, or its id exists.
    async fn create_enrolment(&self, enrolment: &Enrolment) -> Result<(), StoreError>;

    /// Read an enrolment (strongly consistent).
    ///
    /// # Errors
    /// Backend failures; absent is `Ok(None)`.
    async fn get_enrolment(&self, id: &EnrolmentId) -> Result<Option<Enrolment>, StoreError>;

    /// The enrolment of `phone` in `campaign_id`, if any.
    ///
    /// # Errors
    /// Backend failures.
    async fn enrolment_of(&self, campaign_id: &str, phone: &PhoneNumber) -> Result<Option<Enrolment>, StoreError>;

    /// Replace an enrolment if its stored version is still `enrolment.version - 1`; its place in
    /// the due index follows `due_at()` in the same write.
    ///
    /// # Errors
    /// `ConditionFailed` if someone else wrote it first, or it is gone.
    async fn update_enrolment(&self, enrolment: &Enrolment) -> Result<(), StoreError>;

    /// Every enrolment of `phone` (any campaign; a phone has few).
    ///
    /// # Errors
    /// Backend failures.
    async fn enrolments_of_phone(&self, phone: &PhoneNumber) -> Result<Vec<Enrolment>, StoreError>;

    /// Up to `limit` enrolments whose due time is at or before `now`, earliest first per shard.
    ///
    /// # Errors
    /// Backend failures.
    async fn due_enrolments(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Enrolment>, StoreError>;
}
