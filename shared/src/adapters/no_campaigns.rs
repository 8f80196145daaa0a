//! `NoEnrolments` and `NoCampaigns`: the enrolment hook and campaign lookup of a deployment without
//! campaigns. Campaigns and their enrolments are issue #11; until then no phone is enrolled, so
//! there is nothing to stop or pause, and no conversation has an agent.

use crate::domain::{AgentSpec, PhoneNumber};
use crate::ports::{CampaignAgents, EnrolmentHook, StoreError};
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

/// No campaigns exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCampaigns;

#[async_trait]
impl CampaignAgents for NoCampaigns {
    async fn agent_of(&self, _campaign_id: &str) -> Result<Option<AgentSpec>, StoreError> {
        Ok(None)
    }
}
