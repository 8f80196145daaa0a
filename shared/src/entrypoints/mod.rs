//! Entrypoints: HTTP routing shared by every Lambda function and `smsrelay-local`, and the
//! Lambda adapters around it. Handlers live here (not in the binaries) so tests can call them.

pub mod http;
pub mod jobs;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod resources;

pub use http::{handle, HttpRequest, HttpResponse, Routes};
