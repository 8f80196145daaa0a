//! The traits the use cases depend on, one per aggregate or service, one per file; adapters live in
//! `crate::adapters`. Store adapters implement several of them on one value (one connection or
//! client); `wiring::Deps` holds each as its own `Arc<dyn Port>`, so a use case (and a test fake)
//! sees only the ports it uses.

pub mod agent;
pub mod alerter;
pub mod batch_store;
pub mod campaign_agents;
pub mod campaign_store;
pub mod clock;
pub mod consent_store;
pub mod conversation_store;
pub mod counter_store;
pub mod enrolment_hook;
pub mod event_publisher;
pub mod idempotency_store;
pub mod job_queue;
pub mod message_queries;
pub mod message_store;
pub mod retell_chats;
pub mod retention;
pub mod sms_provider;

pub use agent::{Agent, AgentError, AgentReply, AgentRequest, Classification, ToolCall, ToolHost};
pub use alerter::{Alert, AlertError, AlertKind, Alerter};
pub use batch_store::{BatchProgress, BatchRecord, BatchState, BatchStore, ItemOutcome};
pub use campaign_agents::CampaignAgents;
pub use campaign_store::CampaignStore;
pub use clock::{Clock, Moment};
pub use consent_store::{ConsentStore, OptOut, SendCheck};
pub use conversation_store::{ConversationFilter, ConversationStore};
pub use counter_store::{epoch_nanos, CounterOp, CounterStore};
pub use enrolment_hook::EnrolmentHook;
pub use event_publisher::{DomainEvent, EventPublisher, PublishError};
pub use idempotency_store::{Begin, IdempotencyStore, SavedResponse};
pub use job_queue::{JobKind, JobPayload, JobQueue, QueueError, QueueStats, ReceivedJob, MAX_DELAY};
pub use message_queries::MessageQueries;
pub use message_store::{MessageStore, StoreError, WebhookRecord};
pub use retell_chats::{RetellChats, SmsChat, SmsChatError, SmsChatRequest};
pub use retention::Retention;
pub use sms_provider::{OutboundSms, ProviderAccepted, ProviderError, ProviderMessage, Sender, SmsProvider};
