//! record_consent: apply a consent change and keep its proof (docs/api.md
//! `GET /v1/consent/{phone}`). Every path that changes consent comes here: a STOP or START texted
//! to us, Twilio's 21610 on a send, an operator.
//!
//! The status is applied before the evidence is appended: a crash between the two leaves the
//! phone opted out without its proof (the redelivered webhook adds it), never proof without the
//! opt-out. Both steps are idempotent, so a repeat changes nothing.

use crate::domain::{ConsentChannel, ConsentEvidence, ConsentStatus, PhoneNumber};
use crate::ports::{ConsentStore, StoreError};

/// The opt-out registry's reason for an entry (`keyword_stop`, `provider_21610`, …).
fn reason(evidence: &ConsentEvidence) -> String {
    match (evidence.channel, &evidence.keyword) {
        (ConsentChannel::ProviderError, _) => "provider_21610".to_owned(),
        (_, Some(k)) => format!("keyword_{}", k.to_lowercase()),
        (ConsentChannel::Api, None) => "api".to_owned(),
        (_, None) => "keyword".to_owned(),
    }
}

/// Apply `evidence` to `phone` and append it to the phone's history. Returns whether the entry
/// was new (a redelivered webhook returns `false` and changes nothing).
///
/// # Errors
/// The store's error; nothing is half-applied that a repeat would not finish.
pub async fn record_consent(
    consent: &dyn ConsentStore,
    phone: &PhoneNumber,
    evidence: &ConsentEvidence,
) -> Result<bool, StoreError> {
    match evidence.status {
        ConsentStatus::OptedOut => consent.opt_out(phone, &reason(evidence), evidence.at).await?,
        ConsentStatus::OptedIn => consent.opt_in(phone).await?,
    }
    consent.append_consent(phone, evidence).await
}
