//! The DynamoDB single-table store (`DynamoMessageStore`), used by the Lambda functions. It
//! implements every store port on one client; `wiring::Deps` holds it once per port.
//!
//! - [`keys`]: attribute names and the only code that builds key strings (layout table there).
//! - `items`: the message, sid-pointer and webhook item shapes and the item ↔ domain mapping
//!   (failures become `StoreError::Corrupt`).
//! - `store`: the `MessageStore` implementation, the shared request helpers and error mapping,
//!   and `DynamoMessageStore::create_table` for tests.
//! - `queries`: `MessageQueries`, the due index (`gsi2`), the failed list (`gsi3`) and the
//!   messages of a ref (ref pointer items).
//! - `consent`: `ConsentStore`, opt-outs and per-recipient send slots, with their item shapes.
//! - `idempotency`: `IdempotencyStore`, idempotency records, with their item shape.
//! - `conversations`: `ConversationStore`, conversations and the pair pointer that keeps one open
//!   per (business number, phone).
//! - `campaigns`: `CampaignStore`, campaigns, enrolments with the pair pointer that keeps one per
//!   (campaign, phone), and the sharded enrolment due index (`gsi2` `EDUE#<shard>`).
//! - `counters`: `CounterStore`, counters, one-time claims and small documents.
//! - `batches`: `BatchStore` (batch records, tallies, items counted once) and `Retention`
//!   (nothing to do: TTL).
//!
//! Key schema and every access pattern are described in docs/dynamodb.md. This module must not
//! Scan, and must not build key strings anywhere but `keys`.

mod batches;
mod campaigns;
mod consent;
mod conversations;
mod counters;
mod idempotency;
mod items;
pub mod keys;
mod queries;
mod store;

pub use store::DynamoMessageStore;
