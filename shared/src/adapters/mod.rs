//! Adapters: the port implementations.
//!
//! - [`dynamodb`]: `DynamoMessageStore`, the single-table DynamoDB store (Lambda).
//! - [`sqlite`]: `SqliteStore`, `SqliteJobQueue` and `LogEventPublisher`, the embedded adapters
//!   (smsrelay-local), one file per aggregate.
//! - [`twilio`]: the Twilio REST client, webhook signatures, and the built-in simulator.
//! - [`retell`]: Retell webhook signatures.
//! - [`agents`]: `AgentRouter`, the agent port over [`openai`] (Chat Completions) and [`scripted`]
//!   (built-in rules); a Retell agent writes its own replies.
//! - [`no_campaigns`]: `NoEnrolments` and `NoCampaigns`, for a deployment without campaigns.
//! - [`slack`], [`log_alerter`]: alert channels (`SlackAlerter`, `LogAlerter`, `FanoutAlerter`).
//! - [`eventbridge`]: `EventBridgePublisher` and `EventBridgeAlerter` (domain events on EventBridge).
//! - [`log_only`]: `LogOnlyPublisher`, domain events in the log only.
//! - [`sqs_queue`]: `SqsJobQueue`, the retry queue on SQS (Lambda).
//! - [`secrets`]: secret values from Secrets Manager at cold start.
//! - [`system_clock`]: wall-clock time.

pub mod agents;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod log_alerter;
pub mod log_only;
pub mod no_campaigns;
pub mod openai;
pub mod retell;
pub mod scripted;
#[cfg(feature = "aws")]
pub mod secrets;
pub mod slack;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs_queue;
pub mod system_clock;
pub mod twilio;
