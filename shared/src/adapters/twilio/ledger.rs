//! The Twilio simulator's record of the messages it accepted: what Twilio's side of the line
//! remembers, so status polls and reconciliation get Twilio's answers instead of "not found".
//!
//! Two places to keep it: in memory (a Lambda without Twilio credentials, where there is no file
//! to keep it in; gone with the process), or the `simulator_messages` table of smsrelay-local's
//! SQLite file ([`crate::adapters::sqlite::SimulatorLedger`], with the `sqlite` feature), which a
//! restarted process finds again. The Lambda binaries are built without SQLite.

use crate::ports::{Sender, StoreError};
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex, PoisonError};

/// One message the simulator accepted, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// Twilio-shaped `SM…` sid.
    pub sid: String,
    /// Recipient, E.164.
    pub to: String,
    /// The number it was sent from (the pool number for a Messaging Service send).
    pub from: String,
    /// The Messaging Service it was sent through, if any.
    pub messaging_service_sid: Option<String>,
    /// The text.
    pub body: String,
    /// The last status a callback job moved it to (`queued`/`accepted`, `sent`, `delivered`).
    pub status: String,
    /// When the simulator accepted it.
    pub date_created: DateTime<Utc>,
}

/// Where the simulator keeps its messages. Cheap to clone; clones share one ledger.
#[derive(Debug, Clone)]
pub struct Ledger(Inner);

#[derive(Debug, Clone)]
enum Inner {
    /// Accepted messages in acceptance order.
    Memory(Arc<Mutex<Vec<SimRecord>>>),
    #[cfg(feature = "sqlite")]
    Sqlite(crate::adapters::sqlite::SimulatorLedger),
}

#[cfg(feature = "sqlite")]
impl From<crate::adapters::sqlite::SimulatorLedger> for Ledger {
    fn from(ledger: crate::adapters::sqlite::SimulatorLedger) -> Self {
        Self(Inner::Sqlite(ledger))
    }
}

impl Ledger {
    /// A private ledger in memory, gone with the process.
    pub fn in_memory() -> Self {
        Self(Inner::Memory(Arc::default()))
    }

    /// Record an accepted message.
    ///
    /// # Errors
    /// `ConditionFailed` if the sid exists; the SQLite ledger's failures.
    pub async fn insert(&self, r: SimRecord) -> Result<(), StoreError> {
        match &self.0 {
            Inner::Memory(m) => {
                let mut all = m.lock().unwrap_or_else(PoisonError::into_inner);
                if all.iter().any(|x| x.sid == r.sid) {
                    return Err(StoreError::ConditionFailed);
                }
                all.push(r);
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(l) => l.insert(r).await,
        }
    }

    /// The message with `sid`, if the simulator ever accepted it.
    ///
    /// # Errors
    /// The SQLite ledger's failures.
    pub async fn get(&self, sid: &str) -> Result<Option<SimRecord>, StoreError> {
        match &self.0 {
            Inner::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|x| x.sid == sid)
                .cloned()),
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(l) => l.get(sid).await,
        }
    }

    /// Move `sid` to `status` if its stored status is one of `from` (a status only moves
    /// forward). Returns whether it moved.
    ///
    /// # Errors
    /// The SQLite ledger's failures.
    pub async fn advance(
        &self,
        sid: &str,
        from: &'static [&'static str],
        status: &'static str,
    ) -> Result<bool, StoreError> {
        match &self.0 {
            Inner::Memory(m) => {
                let mut all = m.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(match all.iter_mut().find(|x| x.sid == sid) {
                    Some(r) if from.contains(&r.status.as_str()) => {
                        status.clone_into(&mut r.status);
                        true
                    }
                    _ => false,
                })
            }
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(l) => l.advance(sid, from, status).await,
        }
    }

    /// Messages to `to` from `from` (a number, or a Messaging Service) created at or after
    /// `since`, newest first (acceptance order breaks ties), at most `limit`.
    ///
    /// # Errors
    /// The SQLite ledger's failures.
    pub async fn list(
        &self,
        to: &str,
        from: &Sender,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<SimRecord>, StoreError> {
        match &self.0 {
            Inner::Memory(m) => {
                let all = m.lock().unwrap_or_else(PoisonError::into_inner);
                let mut found: Vec<SimRecord> = all
                    .iter()
                    .rev()
                    .filter(|r| r.to == to && r.date_created >= since && sent_from(r, from))
                    .cloned()
                    .collect();
                // Stable: among equal times the later acceptance stays first.
                found.sort_by_key(|r| std::cmp::Reverse(r.date_created));
                found.truncate(limit);
                Ok(found)
            }
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(l) => l.list(to, from, since, limit).await,
        }
    }
}

/// Whether `r` went out from `from`: the number itself (not through a service), or the service.
fn sent_from(r: &SimRecord, from: &Sender) -> bool {
    match from {
        Sender::Number(n) => r.messaging_service_sid.is_none() && r.from == n.as_str(),
        Sender::MessagingService(ms) => r.messaging_service_sid.as_deref() == Some(ms.as_str()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::PhoneNumber;

    /// A `queued` record from the magic sender to `+14155550100`.
    pub(crate) fn rec(sid: &str, at: DateTime<Utc>) -> SimRecord {
        SimRecord {
            sid: sid.to_owned(),
            to: "+14155550100".to_owned(),
            from: "+15005550006".to_owned(),
            messaging_service_sid: None,
            body: "hello".to_owned(),
            status: "queued".to_owned(),
            date_created: at,
        }
    }

    async fn lists_by_recipient_sender_and_time_newest_first_and_moves_only_forward(ledger: Ledger) {
        let t0 = DateTime::parse_from_rfc3339("2026-11-21T19:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        ledger.insert(rec("SMa", t0)).await.expect("a");
        ledger.insert(rec("SMb", t0)).await.expect("b");
        ledger
            .insert(rec("SMc", t0 + chrono::TimeDelta::seconds(1)))
            .await
            .expect("c");
        let mut via_service = rec("SMd", t0);
        via_service.messaging_service_sid = Some("MG1".to_owned());
        ledger.insert(via_service).await.expect("d");
        assert!(matches!(
            ledger.insert(rec("SMa", t0)).await,
            Err(StoreError::ConditionFailed)
        ));
        let from = Sender::Number(PhoneNumber::parse_e164("+15005550006").expect("from"));
        let sids = |v: Vec<SimRecord>| v.into_iter().map(|r| r.sid).collect::<Vec<_>>();
        assert_eq!(
            sids(ledger.list("+14155550100", &from, t0, 10).await.expect("list")),
            ["SMc", "SMb", "SMa"]
        );
        assert_eq!(
            sids(ledger.list("+14155550100", &from, t0, 1).await.expect("list")),
            ["SMc"]
        );
        let later = t0 + chrono::TimeDelta::milliseconds(500);
        assert_eq!(
            sids(ledger.list("+14155550100", &from, later, 10).await.expect("list")),
            ["SMc"]
        );
        let service = Sender::MessagingService("MG1".to_owned());
        assert_eq!(
            sids(ledger.list("+14155550100", &service, t0, 10).await.expect("list")),
            ["SMd"]
        );
        assert!(ledger
            .list("+14155550199", &from, t0, 10)
            .await
            .expect("list")
            .is_empty());
        assert!(ledger.advance("SMa", &["queued"], "sent").await.expect("advance"));
        assert!(
            !ledger.advance("SMa", &["queued"], "sent").await.expect("advance"),
            "only forward"
        );
        assert!(
            !ledger.advance("SMz", &["queued"], "sent").await.expect("advance"),
            "unknown sid"
        );
        assert_eq!(
            ledger.get("SMa").await.expect("get").map(|r| r.status),
            Some("sent".to_owned())
        );
        assert_eq!(ledger.get("SMz").await.expect("get"), None);
    }

    #[tokio::test]
    async fn the_memory_ledger_answers_like_twilio() {
        lists_by_recipient_sender_and_time_newest_first_and_moves_only_forward(Ledger::in_memory()).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn the_sqlite_ledger_answers_like_twilio() {
        let ledger = crate::adapters::sqlite::SimulatorLedger::open_in_memory().expect("open");
        lists_by_recipient_sender_and_time_newest_first_and_moves_only_forward(ledger.into()).await;
    }
}
