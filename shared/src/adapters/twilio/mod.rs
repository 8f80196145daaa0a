//! Twilio: the REST client ([`TwilioSmsProvider`]), webhook signatures ([`compute_signature`],
//! [`validate_signature`], [`validate_signature_with_body`]), error classification
//! ([`classify_error`]) and the built-in simulator ([`TwilioSimulator`]).

pub mod client;
pub mod error;
pub mod inbound;
pub mod ledger;
pub mod signature;
pub mod simulator;
pub mod twiml;

pub use client::{TwilioCredentials, TwilioSmsProvider, DEFAULT_TIMEOUT};
pub use error::{classify_error, TwilioError};
pub use signature::{compute_signature, validate_signature, validate_signature_with_body};
pub use simulator::{TwilioSimulator, SIMULATOR_ACCOUNT_SID, SIMULATOR_POOL_NUMBER};
