//! The log-only domain-event publisher: the default of every `Deps` until the wiring puts
//! EventBridge (Lambda) or the embedded event table (smsrelay-local) in its place.

use crate::ports::{DomainEvent, EventPublisher, PublishError};
use async_trait::async_trait;

/// Domain events to the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOnlyPublisher;

#[async_trait]
impl EventPublisher for LogOnlyPublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), PublishError> {
        for e in events {
            tracing::info!(detail_type = %e.detail_type, detail = %e.detail, "domain event");
        }
        Ok(())
    }
}
