//! The DynamoDB single-table store (`DynamoMessageStore`), used by the Lambda functions.
//!
//! - [`keys`]: attribute names and the only code that builds key strings (layout table there).
//! - `items`: item shapes and the item ↔ domain mapping (failures become `StoreError::Corrupt`).
//! - `store`: the `MessageStore` implementation, and `DynamoMessageStore::create_table` for tests.
//!
//! Key schema and every access pattern are described in docs/dynamodb.md. This module must not
//! Scan, and must not build key strings anywhere but `keys`.

mod items;
pub mod keys;
mod store;

pub use store::DynamoMessageStore;
