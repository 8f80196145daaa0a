//! Adapters: the port implementations.
//!
//! - [`dynamodb`]: `DynamoMessageStore`, the single-table DynamoDB store (Lambda).
//! - [`sqlite_store`]: `SqliteStore`, the embedded store (smsrelay-local); [`sqlite_ports`] and
//!   [`sqlite_counters`] implement its other ports.
//! - [`twilio`]: the Twilio REST client, webhook signatures, and the built-in simulator.
//! - [`retell`]: Retell webhook signatures.
//! - [`slack`], [`log_alerter`]: alert channels (`SlackAlerter`, `LogAlerter`, `FanoutAlerter`).
//! - [`eventbridge`]: `EventBridgePublisher` and `EventBridgeAlerter` (domain events on EventBridge).
//! - [`event_log`]: `LogEventPublisher`, the embedded domain-event log (the log + a SQLite table).
//! - [`secrets`]: secret values from Secrets Manager at cold start.
//! - [`system_clock`]: wall-clock time.

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod event_log;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod log_alerter;
pub mod log_only;
pub mod no_campaigns;
pub mod retell;
#[cfg(feature = "aws")]
pub mod secrets;
pub mod slack;
pub mod sqlite_conversations;
pub mod sqlite_counters;
pub mod sqlite_ports;
pub mod sqlite_queue;
pub mod sqlite_store;
#[cfg(feature = "aws")]
pub mod sqs_queue;
pub mod system_clock;
pub mod twilio;
