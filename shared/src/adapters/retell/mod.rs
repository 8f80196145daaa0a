//! Retell AI: webhook signatures (`signature`) and the REST client for outbound SMS chats
//! (`client`: `create-sms-chat`, never retried blindly, and its reconciliation). The webhook bodies are parsed by
//! `domain::retell_webhook` (pure); on Retell numbers Retell's own agent writes the replies and
//! smsrelay records the turns and the outcome.

pub mod client;
pub mod signature;

pub use client::RetellClient;

pub use signature::{sign as sign_retell, verify as verify_retell, RetellSignatureError};
