//! `StaticCampaignAgents`: a [`CampaignAgents`] over an in-memory map of campaign id → agent, for
//! tests of the agent's side before (and independently of) the campaign store.

use crate::domain::AgentSpec;
use crate::ports::{CampaignAgents, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Campaign agents a test sets.
#[derive(Debug, Default)]
pub struct StaticCampaignAgents(Mutex<HashMap<String, AgentSpec>>);

impl StaticCampaignAgents {
    /// Campaign `campaign_id` is answered by `spec` from now on.
    pub fn set(&self, campaign_id: &str, spec: AgentSpec) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(campaign_id.to_owned(), spec);
    }
}

#[async_trait]
impl CampaignAgents for StaticCampaignAgents {
    async fn agent_of(&self, campaign_id: &str) -> Result<Option<AgentSpec>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(campaign_id)
            .cloned())
    }
}
