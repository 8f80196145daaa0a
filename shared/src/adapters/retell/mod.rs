//! Retell AI: webhook signatures (`signature`). The chat webhooks themselves are parsed in
//! `entrypoints`; Retell's own agent writes the replies on Retell numbers.

pub mod signature;

pub use signature::{sign as sign_retell, verify as verify_retell, RetellSignatureError};
