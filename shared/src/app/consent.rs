//! record_consent: apply a consent change and keep its proof (docs/api.md
//! `GET /v1/consent/{phone}`). Every path that changes consent comes here: a STOP or START texted
//! to us, Twilio's 21610 on a send, an operator.
//!
//! An opt-out is applied before its evidence is appended: a crash between the two leaves the
//! phone opted out without its proof (the redelivered webhook adds it), never proof without the
//! opt-out. Then the registry is set from the history's latest entry, whatever order the
//! evidence arrived in: a late or redelivered START (a Retell chat's, a retried webhook's) never
//! undoes a newer STOP, and an opt-in appended before a crash is applied by its repeat. Every
//! step is idempotent, so a repeat changes nothing.

use crate::domain::{current_status, ConsentChannel, ConsentEvidence, ConsentStatus, PhoneNumber};
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
    if evidence.status == ConsentStatus::OptedOut {
        consent.opt_out(phone, &reason(evidence), evidence.at).await?;
    }
    let new = consent.append_consent(phone, evidence).await?;
    // The registry follows the latest evidence, not the last to arrive (found by tests/sim: a
    // redelivered older START deleted the opt-out of a newer STOP).
    let history = consent.consent_history(phone).await?;
    let latest = history
        .iter()
        .max_by_key(|e| (e.at, e.status == ConsentStatus::OptedOut));
    match (current_status(&history), latest) {
        (ConsentStatus::OptedIn, _) => consent.opt_in(phone).await?,
        (ConsentStatus::OptedOut, Some(stop)) if evidence.status == ConsentStatus::OptedIn => {
            consent.opt_out(phone, &reason(stop), stop.at).await?;
        }
        (ConsentStatus::OptedOut, _) => {}
    }
    Ok(new)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use chrono::TimeZone as _;

    fn keyword(status: ConsentStatus, sid: &str, minute: u32) -> ConsentEvidence {
        ConsentEvidence {
            status,
            at: chrono::Utc
                .with_ymd_and_hms(2031, 3, 3, 15, minute, 0)
                .single()
                .unwrap_or_else(|| unreachable!("a valid time")),
            keyword: Some(
                if status == ConsentStatus::OptedOut {
                    "STOP"
                } else {
                    "START"
                }
                .to_owned(),
            ),
            channel: ConsentChannel::Retell,
            message_sid: Some(sid.to_owned()),
        }
    }

    /// A START at 15:01, a STOP at 15:02, then the START's webhook again (Retell retried it, or
    /// its chat's second event carries it): the phone stays opted out. And a START newer than
    /// the STOP, however late it arrives, opts it in.
    #[tokio::test]
    async fn the_registry_follows_the_latest_evidence_not_the_last_to_arrive() {
        let store = SqliteStore::open_in_memory().unwrap_or_else(|e| panic!("sqlite: {e}"));
        let phone = PhoneNumber::parse_e164("+14155550142").unwrap_or_else(|e| panic!("{e}"));
        let start = keyword(ConsentStatus::OptedIn, "retell:chat_1:m0", 1);
        let stop = keyword(ConsentStatus::OptedOut, "retell:chat_2:m0", 2);
        let opted_out = || async {
            store
                .opt_out_of(&phone)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some()
        };
        for (evidence, new) in [(&start, true), (&stop, true), (&start, false)] {
            let added = record_consent(&store, &phone, evidence)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(added, new);
        }
        assert!(opted_out().await, "a redelivered older START undid the newer STOP");

        // An older START arriving for the first time after the STOP changes nothing either.
        let older = keyword(ConsentStatus::OptedIn, "retell:chat_0:m0", 0);
        assert!(record_consent(&store, &phone, &older)
            .await
            .unwrap_or_else(|e| panic!("{e}")));
        assert!(opted_out().await);

        // A newer START opts the phone in, even after an older STOP is delivered again.
        let newer = keyword(ConsentStatus::OptedIn, "retell:chat_3:m0", 3);
        record_consent(&store, &phone, &newer)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        record_consent(&store, &phone, &stop)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!opted_out().await, "a redelivered older STOP undid the newer START");
    }
}
