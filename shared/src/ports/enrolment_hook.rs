//! What inbound handling asks of campaign enrolments: stop every active one of a phone (STOP),
//! pause those of a (business number, phone) pair (a reply came). Enrolments themselves arrive
//! with campaigns (issue #11); until then `adapters::no_campaigns::NoEnrolments` has none.

use super::StoreError;
use crate::domain::PhoneNumber;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Stop and pause campaign enrolments.
#[async_trait]
pub trait EnrolmentHook: Send + Sync {
    /// Stop every active or paused enrolment of `phone` (it opted out); returns how many.
    ///
    /// # Errors
    /// Backend failures.
    async fn stop_all(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Pause the active enrolments of `phone` with `business_number` (the lead replied); returns how many.
    ///
    /// # Errors
    /// Backend failures.
    async fn pause_pair(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError>;
}
