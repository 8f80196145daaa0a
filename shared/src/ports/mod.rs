//! The traits the use cases depend on. One port per file; adapters live in `crate::adapters`.

pub mod alerter;
pub mod clock;
pub mod consent_store;
pub mod counter_store;
pub mod event_publisher;
pub mod idempotency_store;
pub mod job_queue;
pub mod message_queries;
pub mod message_store;
pub mod sms_provider;

pub use alerter::{Alert, AlertError, AlertKind, Alerter};
pub use clock::{Clock, Moment};
pub use consent_store::{ConsentStore, OptOut};
pub use counter_store::CounterStore;
pub use event_publisher::{DomainEvent, EventPublisher, PublishError};
pub use idempotency_store::{Begin, IdempotencyStore, SavedResponse};
pub use job_queue::{JobKind, JobPayload, JobQueue, QueueError, QueueStats, ReceivedJob, MAX_DELAY};
pub use message_queries::MessageQueries;
pub use message_store::{MessageStore, StoreError, WebhookRecord};
pub use sms_provider::{OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, Sender, SmsProvider};

/// Everything the use cases keep, as one object: each store adapter implements all five ports.
pub trait Store: MessageStore + MessageQueries + ConsentStore + IdempotencyStore + CounterStore {}
impl<T: MessageStore + MessageQueries + ConsentStore + IdempotencyStore + CounterStore + ?Sized> Store for T {}
