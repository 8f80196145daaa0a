//! Accept one message and make its first provider attempt (`POST /v1/messages`).
//!
//! Order matters (docs/design.md invariant 2): the record is written as `sending` BEFORE the provider
//! is called, and the StatusCallback URL carries our message id. So a crash between the
//! provider's answer and our write leaves a `sending` record that the first callback links (by
//! id) or reconciliation resolves; it is never sent twice by this code path.

use super::attempt::{begin_attempt, run_attempt, status_callback_url};
use super::{AppError, Ctx};
use crate::domain::{
    parse_instant, Message, MessageBody, MessageId, MessageStatus, PhoneNumber, QuietHours, Ref, Region,
    RescheduleReason,
};
use crate::ports::{SendCheck, Sender};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The JSON body of `POST /v1/messages` (docs/api.md). Unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct SendRequest {
    /// Recipient, E.164 or national format in the default region.
    pub to: Option<String>,
    /// Text.
    pub body: Option<String>,
    /// Sender override.
    pub from: Option<String>,
    /// When to send (RFC 3339).
    pub send_at: Option<String>,
    /// Local-time window in which it must not be sent.
    pub quiet_hours: Option<crate::domain::schedule::QuietHoursWire>,
    /// Link to the caller's entity.
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    /// Returned as given.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A validated send.
#[derive(Debug, Clone)]
pub struct SendCommand {
    /// Recipient.
    pub to: PhoneNumber,
    /// Text.
    pub body: MessageBody,
    /// Sender.
    pub from: Sender,
    /// Caller's entity link.
    pub reference: Option<Ref>,
    /// Caller's metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The caller's `send_at`, as given: a time in the past or now means send now, and it is
    /// still the caller's time that `original_send_at` keeps if quiet hours move the message.
    /// `None` sends now.
    pub send_at: Option<DateTime<Utc>>,
    /// Quiet hours given with the message.
    pub quiet_hours: Option<QuietHours>,
}

/// How far ahead a message may be scheduled.
const MAX_SCHEDULE_AHEAD_DAYS: i64 = 366;

impl SendRequest {
    /// Validate into a command; the error names the first field at fault.
    ///
    /// # Errors
    /// `AppError::Validation` (400) naming the field.
    pub fn validate(
        self,
        region: Region,
        default_sender: &Sender,
        now: DateTime<Utc>,
    ) -> Result<SendCommand, AppError> {
        let to_raw = self
            .to
            .ok_or_else(|| AppError::invalid("missing_field", "to", "`to` is required"))?;
        let to = PhoneNumber::parse(&to_raw, region)
            .map_err(|e| AppError::invalid("invalid_phone", "to", format!("`to` is not a valid phone number: {e}")))?;
        let body_raw = self
            .body
            .ok_or_else(|| AppError::invalid("missing_field", "body", "`body` is required"))?;
        let body =
            MessageBody::parse(body_raw).map_err(|e| AppError::invalid("invalid_body", "body", e.to_string()))?;
        let from = match self.from {
            Some(f) => Sender::parse(&f).map_err(|e| {
                AppError::invalid("invalid_phone", "from", format!("`from` is not a valid sender: {e}"))
            })?,
            None => default_sender.clone(),
        };
        let send_at = match self.send_at {
            None => None,
            Some(raw) => {
                let at = parse_instant(&raw).map_err(|_| {
                    AppError::invalid(
                        "invalid_send_at",
                        "send_at",
                        "`send_at` must be an RFC 3339 time such as 2026-11-22T15:00:00Z",
                    )
                })?;
                if at > now + chrono::Duration::days(MAX_SCHEDULE_AHEAD_DAYS) {
                    return Err(AppError::invalid(
                        "invalid_send_at",
                        "send_at",
                        "`send_at` is more than a year ahead",
                    ));
                }
                Some(at)
            }
        };
        let quiet_hours = self
            .quiet_hours
            .map(QuietHours::try_from)
            .transpose()
            .map_err(|e| AppError::invalid("invalid_quiet_hours", "quiet_hours", format!("`quiet_hours`: {e}")))?;
        if let Some(r) = &self.reference {
            r.validate()
                .map_err(|e| AppError::invalid("invalid_ref", "ref", e.to_string()))?;
        }
        Ok(SendCommand {
            to,
            body,
            from,
            reference: self.reference,
            metadata: self.metadata.unwrap_or_default(),
            send_at,
            quiet_hours,
        })
    }
}

/// The accepted message and, if our last write failed, a warning (the message is not lost:
/// its record says `sending` and the first callback or reconciliation completes it).
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// The record as we know it.
    pub message: Message,
    /// Set when the outcome could not be recorded yet.
    pub warning: Option<String>,
}

/// How [`send_message_with`] differs from an API send.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Use this id instead of a new one: a message that must exist at most once (an agent's reply
    /// to one inbound turn, `MessageId::derived`). If a message with this id exists already,
    /// nothing is sent and that message is returned.
    pub id: Option<MessageId>,
    /// A reply to a lead's own message (the agent answering): exempt from quiet hours and the
    /// hourly cap (docs/api.md, issue 11 item 4; the agent's own daily cap bounds it instead),
    /// but never from consent: an opted-out lead's reply is `suppressed`.
    pub reply_to_lead: bool,
}

/// Accept a message: consent and the hourly limit first, then record it `sending`, call the
/// provider once, record the outcome (a temporary failure goes to the retry queue).
///
/// # Errors
/// `AppError::Transient` when the record cannot be written (nothing was sent);
/// a failure *after* the provider answered is reported as a warning, never as an error.
pub async fn send_message(ctx: Ctx<'_>, cmd: SendCommand) -> Result<SendOutcome, AppError> {
    send_message_with(ctx, cmd, SendOptions::default()).await
}

/// Write the new record; with a caller-chosen id, an existing record means it was sent already
/// (`Some`: that record, and nothing more is done).
async fn create(ctx: Ctx<'_>, message: &Message, chosen_id: bool) -> Result<Option<Message>, AppError> {
    match ctx.messages.create_message(message).await {
        Ok(()) => Ok(None),
        Err(crate::ports::StoreError::ConditionFailed) if chosen_id => {
            let existing = ctx.messages.get_message(&message.id).await?;
            tracing::info!(message_id = %message.id, "a message with this id exists already: not sent again");
            existing
                .map(Some)
                .ok_or(AppError::Transient(crate::ports::StoreError::ConditionFailed))
        }
        Err(e) => Err(e.into()),
    }
}

/// [`send_message`] with [`SendOptions`].
///
/// # Errors
/// As [`send_message`].
pub async fn send_message_with(ctx: Ctx<'_>, mut cmd: SendCommand, opts: SendOptions) -> Result<SendOutcome, AppError> {
    let now = ctx.clock.now();
    let chosen_id = opts.id.is_some();
    let id = opts.id.unwrap_or_else(|| MessageId::generate(now));
    if opts.reply_to_lead {
        // A reply goes now: no quiet hours, no schedule.
        cmd.quiet_hours = None;
        cmd.send_at = None;
    }
    // A future `send_at` schedules it; a past one (or none) means now. Only the message's own
    // quiet hours can move that time (no default window for API messages: docs/api.md "Quiet
    // hours"), and they apply to a past, a future and no `send_at` alike.
    let wanted = cmd.send_at.filter(|at| *at > now);
    let earliest = wanted.unwrap_or(now);
    let held = cmd
        .quiet_hours
        .as_ref()
        .map(|q| q.next_allowed(earliest))
        .filter(|allowed| *allowed > earliest);
    let fire_at = held.or(wanted);
    let initial = if fire_at.is_some() {
        MessageStatus::Scheduled
    } else {
        MessageStatus::Queued
    };
    let mut message = Message::new(
        id.clone(),
        cmd.to,
        cmd.from.as_str().to_owned(),
        cmd.body,
        initial,
        cmd.reference,
        cmd.metadata,
        now,
    );
    message.status_callback = Some(status_callback_url(ctx.callback_base, &id));
    message.quiet_hours = cmd.quiet_hours;
    if let Some(at) = fire_at {
        if held.is_some() {
            // Visible from the first answer: the 202 shows the new `send_at`, the caller's time
            // (its `send_at`, past or future, or now) as `original_send_at`, and a `rescheduled`
            // entry.
            message.send_at = cmd.send_at;
            message.reschedule(at, RescheduleReason::QuietHours, now);
        } else {
            message.send_at = Some(at);
            message.due_at = Some(at);
        }
        if let Some(existing) = create(ctx, &message, chosen_id).await? {
            return Ok(SendOutcome {
                message: existing,
                warning: None,
            });
        }
        tracing::info!(message_id = %id, to = %message.to.masked(), send_at = %at, deferred = held.is_some(), "message scheduled");
        return Ok(SendOutcome { message, warning: None });
    }
    if chosen_id {
        if let Some(existing) = ctx.messages.get_message(&id).await? {
            tracing::info!(message_id = %id, "a message with this id exists already: not sent again");
            return Ok(SendOutcome {
                message: existing,
                warning: None,
            });
        }
    }
    let limit = ctx.config.rate_limit_per_hour;
    let check = if opts.reply_to_lead {
        // Exempt from the hourly cap, never from consent.
        match ctx.consent.opt_out_of(&message.to).await? {
            Some(o) => SendCheck::OptedOut(o),
            None => SendCheck::Granted,
        }
    } else {
        ctx.consent
            .check_send(&message.to, now, chrono::Duration::hours(1), limit)
            .await?
    };
    match check {
        SendCheck::Granted => {}
        SendCheck::OptedOut(_) => {
            message.advance(MessageStatus::Suppressed, None, now);
            if let Some(existing) = create(ctx, &message, chosen_id).await? {
                return Ok(SendOutcome {
                    message: existing,
                    warning: None,
                });
            }
            tracing::info!(message_id = %id, to = %message.to.masked(), "recipient opted out: suppressed");
            return Ok(SendOutcome { message, warning: None });
        }
        SendCheck::Limited => {
            message.reset_to(MessageStatus::RateLimited, now);
            message.failed_listed = true;
            if let Some(existing) = create(ctx, &message, chosen_id).await? {
                return Ok(SendOutcome {
                    message: existing,
                    warning: None,
                });
            }
            tracing::warn!(message_id = %id, to = %message.to.masked(), limit, "hourly limit reached: held as rate_limited");
            return Ok(SendOutcome { message, warning: None });
        }
    }
    begin_attempt(&mut message, now, ctx.config.reconcile_after);
    if let Some(existing) = create(ctx, &message, chosen_id).await? {
        return Ok(SendOutcome {
            message: existing,
            warning: None,
        });
    }
    tracing::info!(message_id = %id, to = %message.to.masked(), "message accepted");
    let (message, _outcome, warning) = run_attempt(ctx, message).await?;
    Ok(SendOutcome { message, warning })
}
