//! Adapters: the port implementations.
//!
//! - [`dynamodb`]: `DynamoMessageStore`, the single-table DynamoDB store (Lambda).
//! - [`sqlite_store`]: `SqliteStore`, the embedded store (smsrelay-local).
//! - [`twilio`]: the Twilio REST client, webhook signatures, and the built-in simulator.
//! - [`system_clock`]: wall-clock time.

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod sqlite_ports;
pub mod sqlite_queue;
pub mod sqlite_store;
#[cfg(feature = "aws")]
pub mod sqs_queue;
pub mod system_clock;
pub mod twilio;
