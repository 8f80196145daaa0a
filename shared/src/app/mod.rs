//! Use cases, one per file. They take only the ports they use and never touch AWS, HTTP or Lambda,
//! and never read the system time or sleep on a timer: time, budgets and pacing come from
//! `ctx.clock` (scripts/test.sh rejects system-time reads and tokio timers in this folder).
//!
//! Use cases: [`send`] (one message), [`agent_turn`] (the campaign's agent answers a lead; a silent
//! conversation is classified), [`send_batch`], [`record_status`] (status callbacks),
//! [`retry`] (a queued attempt), [`process_due`] (the processor tick: [`fire_scheduled`],
//! [`reconcile`], status polls), [`operations`] (failed list, cancel), [`health`],
//! [`handle_inbound`] (Twilio inbound texts: keywords, replies), [`handle_retell`] (Retell's
//! webhooks), [`conversations`] (open, reply as a person, set the outcome, read both directions).
//! Pieces they share, each imported by the use cases and importing none of them:
//! [`attempt`] (one claimed provider attempt and what follows it), [`batch_progress`] (a batch's
//! tallies and completion), [`heartbeat`] (when the processor last ran), [`alerts`] (raise once,
//! publish), [`metrics`] (hourly counters), [`quiet`] (the quiet hours of campaign traffic),
//! [`consent`] (a consent change and its evidence).

pub mod agent_turn;
pub mod alerts;
pub mod attempt;
pub mod batch_progress;
pub mod campaigns;
pub mod consent;
pub mod conversations;
pub mod fire_scheduled;
pub mod handle_inbound;
pub mod handle_retell;
pub mod health;
pub mod heartbeat;
pub mod metrics;
pub mod operations;
mod pacing;
pub mod process_due;
pub mod quiet;
pub mod reconcile;
pub mod record_status;
pub mod retry;
pub mod send;
pub mod send_batch;

#[cfg(all(test, feature = "sqlite"))]
mod tests;

use crate::config::Config;
use crate::domain::{Message, MessageId};
use crate::ports::{
    Alerter, BatchStore, Clock, ConsentStore, CounterStore, EventPublisher, JobQueue, MessageStore, SmsProvider,
    StoreError,
};

/// The ports and settings of the send pipeline (send, attempt, batch, status, retry, the
/// processor's sends), borrowed for one request or job. It holds only what an attempt and its
/// follow-ups touch; a use case that needs another port (queries, idempotency, retention, the
/// ports later issues add) takes it as its own parameter, so this does not grow with them.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// Message records, sid pointers, webhook receipts.
    pub messages: &'a dyn MessageStore,
    /// Opt-outs and send slots.
    pub consent: &'a dyn ConsentStore,
    /// Counters, claims and small documents (metrics, streaks, alert cooldowns).
    pub counters: &'a dyn CounterStore,
    /// Batch records and tallies (an attempt may finish a batch item).
    pub batches: &'a dyn BatchStore,
    /// Retry queue.
    pub queue: &'a dyn JobQueue,
    /// SMS provider.
    pub provider: &'a dyn SmsProvider,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Operator alerts.
    pub alerter: &'a dyn Alerter,
    /// Domain events.
    pub events: &'a dyn EventPublisher,
    /// Limits, retry policy, timings.
    pub config: &'a Config,
    /// Public base URL the provider calls back (no trailing slash).
    pub callback_base: &'a str,
    /// Where metric increments gather before one write (`None`: each is written at once).
    pub metrics: Option<&'a metrics::MetricBuffer>,
}

/// What a use case can fail with; `entrypoints::http` is the single mapping to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Invalid input (400), naming the field at fault.
    #[error("{message}")]
    Validation {
        /// snake_case code, e.g. `invalid_phone`.
        code: &'static str,
        /// Human-readable text; never echoes a full phone number or body.
        message: String,
        /// The field at fault: a name, or a dotted path such as `quiet_hours.timezone`.
        field: Option<std::borrow::Cow<'static, str>>,
    },
    /// Missing or wrong API key (401).
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Missing or wrong webhook signature (403).
    #[error("invalid or missing webhook signature")]
    Forbidden,
    /// Unknown resource (404).
    #[error("not found")]
    NotFound,
    /// Conflict with the resource's state (409).
    #[error("{message}")]
    Conflict {
        /// snake_case code.
        code: &'static str,
        /// Human-readable text.
        message: String,
    },
    /// Valid but refused (422).
    #[error("{message}")]
    Refused {
        /// snake_case code.
        code: &'static str,
        /// Human-readable text.
        message: String,
    },
    /// Body over the limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A dependency is temporarily unavailable; nothing was accepted (503).
    #[error("temporarily unavailable, try again")]
    Transient(#[source] StoreError),
    /// A bug or an unexpected failure (500, opaque to the caller).
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl AppError {
    /// A 400 naming `field`.
    pub fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            code,
            message: message.into(),
            field: Some(std::borrow::Cow::Borrowed(field)),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) => Self::Unexpected(anyhow::Error::new(e)),
            other => Self::Transient(other),
        }
    }
}

/// How many times a read-modify-write is re-applied after losing a version race.
const MODIFY_ATTEMPTS: usize = 8;

/// Read a message, apply `change`, and write it back if `change` returned `true`, re-reading and
/// re-applying when another writer got there first (optimistic concurrency on `version`).
/// Returns the record as stored afterwards, or `None` if there is no such message.
///
/// # Errors
/// The store's error, or `ConditionFailed` if the race was lost `MODIFY_ATTEMPTS` times.
pub async fn modify_message(
    store: &dyn MessageStore,
    id: &MessageId,
    mut change: impl FnMut(&mut Message) -> bool + Send,
) -> Result<Option<Message>, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        let Some(current) = store.get_message(id).await? else {
            return Ok(None);
        };
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(Some(current));
        }
        next.version = current.version + 1;
        match store.update_message(&next).await {
            Ok(()) => return Ok(Some(next)),
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::ConditionFailed)
}
