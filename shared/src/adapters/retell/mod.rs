//! Retell AI: webhook signatures (`signature`) and webhook bodies (`webhook`). On Retell numbers
//! Retell's own agent writes the replies; smsrelay records the turns and the outcome.

pub mod signature;
pub mod webhook;

pub use signature::{sign as sign_retell, verify as verify_retell, RetellSignatureError};
pub use webhook::{RetellChat, RetellEvent, RetellTurn, RetellWebhookError};
