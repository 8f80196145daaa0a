//! Test support (feature `testing`): a clock tests control ([`ManualClock`]), a scripted provider
//! on it ([`FakeSmsProvider`]), recording alerter and publisher, the counting store wrapper, and
//! the store, counter and queue contract suites every adapter must pass.

pub mod batch_contract;
pub mod campaign_agents;
pub mod campaign_contract;
pub mod conversation_contract;
pub mod counter_contract;
pub mod counting_store;
pub mod fake_provider;
pub mod manual_clock;
pub mod queue_contract;
pub mod store_contract;

pub use campaign_agents::StaticCampaignAgents;
pub use counting_store::{CountingStore, StoreFault, StoreFaults};
pub use fake_provider::{FakeCall, FakeSmsProvider};
pub use manual_clock::ManualClock;

/// Every store port on one value: what a store adapter under the contract suites provides
/// (test support only; the application holds each port separately in `wiring::Deps`).
pub trait StoreUnderTest:
    crate::ports::MessageStore
    + crate::ports::MessageQueries
    + crate::ports::ConsentStore
    + crate::ports::IdempotencyStore
    + crate::ports::CounterStore
    + crate::ports::BatchStore
    + crate::ports::Retention
{
}
impl<T> StoreUnderTest for T where
    T: crate::ports::MessageStore
        + crate::ports::MessageQueries
        + crate::ports::ConsentStore
        + crate::ports::IdempotencyStore
        + crate::ports::CounterStore
        + crate::ports::BatchStore
        + crate::ports::Retention
        + ?Sized
{
}
use std::sync::Mutex;

/// An alerter that keeps what it was given, for assertions.
#[derive(Debug, Default)]
pub struct RecordingAlerter(Mutex<Vec<crate::ports::Alert>>);

impl RecordingAlerter {
    /// Alerts raised so far.
    pub fn alerts(&self) -> Vec<crate::ports::Alert> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait::async_trait]
impl crate::ports::Alerter for RecordingAlerter {
    async fn raise(&self, alert: &crate::ports::Alert) -> Result<(), crate::ports::AlertError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(alert.clone());
        Ok(())
    }
}

/// A publisher that keeps the events, for assertions.
#[derive(Debug, Default)]
pub struct RecordingPublisher(Mutex<Vec<crate::ports::DomainEvent>>);

impl RecordingPublisher {
    /// Events published so far.
    pub fn events(&self) -> Vec<crate::ports::DomainEvent> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait::async_trait]
impl crate::ports::EventPublisher for RecordingPublisher {
    async fn publish(&self, events: &[crate::ports::DomainEvent]) -> Result<(), crate::ports::PublishError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(events);
        Ok(())
    }
}

/// A client for the DynamoDB Local that scripts/test.sh started (`SMSRELAY_TEST_DYNAMODB_URL`).
/// Panics when it is not set: a DynamoDB test never silently skips.
#[cfg(feature = "aws")]
pub fn dynamodb_local_client() -> aws_sdk_dynamodb::Client {
    const URL_VAR: &str = "SMSRELAY_TEST_DYNAMODB_URL";
    let Ok(url) = std::env::var(URL_VAR) else {
        panic!("{URL_VAR} is not set: start DynamoDB Local with scripts/test.sh or set {URL_VAR}");
    };
    let config = aws_sdk_dynamodb::config::Builder::new()
        .http_client(crate::wiring::aws_http_client())
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "smsrelay-tests",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A store on a new, uniquely named table (created as template.yaml defines it) in DynamoDB Local.
///
/// # Panics
/// When DynamoDB Local is not configured or the table cannot be created.
#[cfg(feature = "aws")]
pub async fn dynamodb_local_store() -> crate::adapters::dynamodb::DynamoMessageStore {
    let client = dynamodb_local_client();
    let table = format!("smsrelay-{}", ulid::Ulid::new().to_string().to_lowercase());
    crate::adapters::dynamodb::DynamoMessageStore::create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("cannot create a table in DynamoDB Local: {e}"));
    crate::adapters::dynamodb::DynamoMessageStore::new(client, table)
}
