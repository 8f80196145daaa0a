//! `NoEnrolments`: the enrolment hook of a deployment without campaigns. Campaigns and their
//! enrolments are issue #11; until then no phone is enrolled, so there is nothing to stop or pause.

use crate::domain::PhoneNumber;
use crate::ports::{EnrolmentHook, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// No enrolments exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnrolments;

#[async_trait]
impl EnrolmentHook for NoEnrolments {
    async fn stop_all(&self, _phone: &PhoneNumber, _reason: &str, _at: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn pause_pair(&self, _b: &PhoneNumber, _p: &PhoneNumber, _at: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(0)
    }
}
