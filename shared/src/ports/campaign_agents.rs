//! What the agent side asks of campaigns: the agent of a conversation's campaign. Campaigns are
//! stored by the campaign store (issue #11); `adapters::no_campaigns::NoCampaigns` has none.

use super::StoreError;
use crate::domain::AgentSpec;
use async_trait::async_trait;

/// Look up a campaign's agent.
#[async_trait]
pub trait CampaignAgents: Send + Sync {
    /// The `agent` of campaign `campaign_id`; `None` when the campaign has none or does not exist.
    ///
    /// # Errors
    /// Backend failures.
    async fn agent_of(&self, campaign_id: &str) -> Result<Option<AgentSpec>, StoreError>;
}
