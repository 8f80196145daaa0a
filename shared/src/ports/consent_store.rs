//! Consent and limits: the opt-out registry and per-recipient send slots.

use super::StoreError;
use crate::domain::{ConsentEvidence, PhoneNumber};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One opt-out: when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    /// The number.
    pub phone: PhoneNumber,
    /// Why (`provider_21610`, `keyword_stop`, …).
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What [`ConsentStore::check_send`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendCheck {
    /// The recipient opted out (no slot was taken).
    OptedOut(OptOut),
    /// The recipient's rate limit is reached (no slot was taken).
    Limited,
    /// A send slot was taken: the message may go.
    Granted,
}

/// Opt-outs and send slots.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Record that `phone` opted out (idempotent: a later call keeps the first record).
    ///
    /// # Errors
    /// Backend failures.
    async fn opt_out(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Remove an opt-out (the recipient texted START).
    ///
    /// # Errors
    /// Backend failures.
    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError>;

    /// The opt-out of `phone`, if any (strongly consistent).
    ///
    /// # Errors
    /// Backend failures.
    async fn opt_out_of(&self, phone: &PhoneNumber) -> Result<Option<OptOut>, StoreError>;

    /// Append `evidence` to the phone's consent history, unless the same entry is there already:
    /// the same `message_sid`, or, for an entry without one, the same time, channel and status (a
    /// redelivered webhook adds nothing). Returns whether it was added. This records proof only;
    /// `app::consent::record_consent` applies the status too.
    ///
    /// # Errors
    /// Backend failures.
    async fn append_consent(&self, phone: &PhoneNumber, evidence: &ConsentEvidence) -> Result<bool, StoreError>;

    /// The phone's consent history, oldest first (empty when it never changed).
    ///
    /// # Errors
    /// Backend failures; an unreadable entry is `Corrupt`.
    async fn consent_history(&self, phone: &PhoneNumber) -> Result<Vec<ConsentEvidence>, StoreError>;

    /// Atomically take one send slot for `phone` if fewer than `limit` were taken in the
    /// `window` ending at `now` (a rolling window). Returns whether a slot was taken.
    /// Concurrent callers can never take more than `limit` between them.
    ///
    /// # Errors
    /// Backend failures.
    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError>;

    /// Before a send: the opt-out check, then (if not opted out) [`ConsentStore::take_send_slot`],
    /// as one call (one transaction where the backend has them).
    ///
    /// # Errors
    /// Backend failures.
    async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<SendCheck, StoreError> {
        if let Some(o) = self.opt_out_of(phone).await? {
            return Ok(SendCheck::OptedOut(o));
        }
        Ok(if self.take_send_slot(phone, now, window, limit).await? {
            SendCheck::Granted
        } else {
            SendCheck::Limited
        })
    }
}
