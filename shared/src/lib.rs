//! smsrelay's common crate: everything the Lambda functions and `smsrelay-local` share.
//!
//! Layout (dependencies point inward; `domain` and `app` never touch AWS, HTTP clients or Lambda):
//! - [`domain`]: pure types and rules (phone numbers, bodies and segments, message status ranks).
//! - [`ports`]: the traits the use cases need (store, SMS provider, clock).
//! - [`app`]: the use cases (send a message, record a status callback).
//! - [`adapters`]: DynamoDB and SQLite stores, the Twilio client and simulator, the system clock.
//! - [`entrypoints`]: HTTP routing and the single error → response mapping, shared by Lambda and local.
//! - [`config`], [`wiring`], [`telemetry`]: configuration, building dependencies once, logging.
//! - `testing` (feature `testing`): manual clock, fault-injecting wrappers, the store contract suite.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod entrypoints;
pub mod ports;
pub mod telemetry;
pub mod wiring;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
