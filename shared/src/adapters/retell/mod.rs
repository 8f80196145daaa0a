//! Retell AI: webhook signatures (`signature`). The webhook bodies are parsed by
//! `domain::retell_webhook` (pure); on Retell numbers Retell's own agent writes the replies and
//! smsrelay records the turns and the outcome.

pub mod signature;

pub use signature::{sign as sign_retell, verify as verify_retell, RetellSignatureError};
