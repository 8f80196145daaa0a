//! smsrelay's common crate: everything the Lambda functions and `smsrelay-local` share.
//!
//! Layout (dependencies point inward; `domain` and `app` never touch AWS, HTTP clients or Lambda):
//! - [`domain`]: pure types and rules (phone numbers, bodies and segments, message status ranks,
//!   keywords, conversations and outcomes, consent evidence, Retell webhook bodies, agent specs).
//! - [`ports`]: the traits the use cases need (store, SMS provider, queue, clock: wall time, monotonic
//!   time and waiting, so no use case reads the system time or sleeps on a timer).
//! - [`app`]: the use cases (send, batches, status callbacks, retries, the processor tick, operations,
//!   health, inbound texts and Retell webhooks, conversations, consent) and the pieces they share; its
//!   module doc maps them.
//! - [`adapters`]: DynamoDB and SQLite stores, the Twilio client, simulator and TwiML, Retell
//!   signatures, SQS, EventBridge, Slack, the system clock.
//! - [`entrypoints`]: HTTP routing and the single error → response mapping, shared by Lambda and local.
//! - [`config`], [`wiring`], [`telemetry`]: configuration, building dependencies once, logging.
//! - `testing` (feature `testing`): manual clock, scripted provider, recording alerter and publisher,
//!   the counting and fault-injecting store wrapper, the store, counter and queue contract suites.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod entrypoints;
pub mod ports;
pub mod telemetry;
pub mod wiring;

#[cfg(all(any(test, feature = "testing"), feature = "sqlite"))]
pub mod testing;
