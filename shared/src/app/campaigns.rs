//! Campaigns, leads and the drip (docs/api.md "Campaigns, leads, conversations"):
//!
//! - [`create_campaign`], [`replace_campaign`]: validated records (an unknown template variable,
//!   a bad delay or agent is a 400 naming the field).
//! - [`enrol_lead`]: one enrolment per (campaign, phone) by the store's conditional create; the
//!   winner sends step 1 at once through the send pipeline; a repeat is `duplicate`.
//! - [`process_enrolments`]: the processor's campaign half. Each due enrolment is re-read and
//!   checked at fire time (still active, not opted out, outside quiet hours in the lead's zone,
//!   under the campaign's daily limit; a held step is moved, never dropped), then its step is
//!   claimed by a conditional write (overlapping ticks send it once). The step's message carries
//!   the ref `enrollment` / `<id>:<step>`, so a run that crashed after sending is finished by the
//!   next one without a second send. After the last step, no reply within `no_response_after`
//!   ends the conversation `no_response`; silence `end_after_silence` after a reply queues a
//!   `conversation_silent` job.
//! - [`EnrolmentsHook`]: STOP stops the phone's enrolments, a reply pauses the pair's.
//! - [`CountedConversations`]: the report's outcome counters, kept when a campaign's
//!   conversation ends (whoever ends it).
//! - [`campaign_report`]: the report, read from counters only.

use super::conversations::{modify_conversation, open_or_create};
use super::send::{send_message, SendCommand};
use super::{AppError, Ctx, MODIFY_ATTEMPTS};
use crate::domain::campaign::{next_local_midnight, CampaignError};
use crate::domain::{
    Campaign, ConversationId, Enrolment, EnrolmentId, EnrolmentStatus, Lead, MessageBody, MessageId, Outcome,
    PhoneNumber, Ref,
};
use crate::ports::message_store::Page;
use crate::ports::{
    CampaignAgents, CampaignStore, ConversationFilter, ConversationStore, CounterOp, CounterStore, EnrolmentHook,
    JobPayload, MessageQueries, Sender, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// How long a claimed step is held by the run that claimed it before another run may finish it.
const STEP_CLAIM: chrono::Duration = chrono::Duration::minutes(10);
/// Enrolments read per page of the due index.
const PAGE: usize = 100;
/// The ref kind of a step's message.
pub const STEP_REF_KIND: &str = "enrollment";

fn campaign_error(e: CampaignError) -> AppError {
    AppError::Validation {
        code: e.code,
        message: e.message,
        field: Some(std::borrow::Cow::Owned(e.field)),
    }
}

// ---------------------------------------------------------------------------------------------
// Report counters

/// The counter key of `field` of campaign `id`.
fn counter_key(id: &str, field: &str) -> String {
    format!("campaign\u{1f}{id}\u{1f}{field}")
}

fn add(id: &str, field: &str, by: i64) -> CounterOp {
    CounterOp::Add {
        key: counter_key(id, field),
        by,
        expires_at: None,
    }
}

fn status_ops(id: &str, before: Option<EnrolmentStatus>, after: EnrolmentStatus) -> Vec<CounterOp> {
    if before == Some(after) {
        return Vec::new();
    }
    let mut ops = vec![add(id, after.as_str(), 1)];
    if let Some(b) = before {
        ops.push(add(id, b.as_str(), -1));
    }
    ops
}

async fn count(counters: &dyn CounterStore, ops: Vec<CounterOp>, now: DateTime<Utc>) {
    if ops.is_empty() {
        return;
    }
    if let Err(e) = counters.add_many(&ops, now).await {
        tracing::warn!(error.message = %e, "campaign report counters not updated");
    }
}

/// Read an enrolment, apply `change`, write it back if it returned `true` (re-reading after a
/// lost race), and keep the status counters. Returns the record as stored afterwards.
async fn modify_enrolment(
    store: &dyn CampaignStore,
    counters: &dyn CounterStore,
    id: &EnrolmentId,
    now: DateTime<Utc>,
    mut change: impl FnMut(&mut Enrolment) -> bool + Send,
) -> Result<Option<Enrolment>, StoreError> {
    for _ in 0..MODIFY_ATTEMPTS {
        let Some(current) = store.get_enrolment(id).await? else {
            return Ok(None);
        };
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(Some(current));
        }
        next.version = current.version + 1;
        match store.update_enrolment(&next).await {
            Ok(()) => {
                count(
                    counters,
                    status_ops(&next.campaign_id, Some(current.status), next.status),
                    now,
                )
                .await;
                return Ok(Some(next));
            }
            Err(StoreError::ConditionFailed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::ConditionFailed)
}

// ---------------------------------------------------------------------------------------------
// Campaigns

/// `POST /v1/campaigns` / `PUT /v1/campaigns/{id}` body, as given.
pub type CampaignInput = Campaign;

/// Create a campaign.
///
/// # Errors
/// 400 naming the field; 409 `campaign_exists`.
pub async fn create_campaign(
    store: &dyn CampaignStore,
    mut c: CampaignInput,
    now: DateTime<Utc>,
) -> Result<Campaign, AppError> {
    c.created_at = now;
    c.updated_at = now;
    c.validate().map_err(campaign_error)?;
    match store.put_campaign(&c, true).await {
        Ok(()) => Ok(c),
        Err(StoreError::ConditionFailed) => Err(AppError::Conflict {
            code: "campaign_exists",
            message: format!("campaign `{}` exists; PUT /v1/campaigns/{} replaces it", c.id, c.id),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Replace (or create) campaign `id`. Enrolments keep their progress; later steps use the new
/// record.
///
/// # Errors
/// 400 naming the field (the body's `id`, when given, must be `id`).
pub async fn replace_campaign(
    store: &dyn CampaignStore,
    id: &str,
    mut c: CampaignInput,
    now: DateTime<Utc>,
) -> Result<Campaign, AppError> {
    if c.id.is_empty() {
        id.clone_into(&mut c.id);
    }
    if c.id != id {
        return Err(AppError::invalid(
            "id_mismatch",
            "id",
            "the body's `id` differs from the one in the path",
        ));
    }
    c.validate().map_err(campaign_error)?;
    let existing = store.get_campaign(id).await?;
    c.created_at = existing.map_or(now, |e| e.created_at);
    c.updated_at = now;
    store.put_campaign(&c, false).await?;
    Ok(c)
}

/// One campaign.
///
/// # Errors
/// 404; store failures.
pub async fn get_campaign(store: &dyn CampaignStore, id: &str) -> Result<Campaign, AppError> {
    store.get_campaign(id).await?.ok_or(AppError::NotFound)
}

/// Campaigns by id.
///
/// # Errors
/// Store failures; an unreadable cursor is `Corrupt`.
pub async fn list_campaigns(
    store: &dyn CampaignStore,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<Campaign>, StoreError> {
    store.list_campaigns(limit, cursor).await
}

// ---------------------------------------------------------------------------------------------
// Ports

/// The ports the drip uses: the send pipeline's, and campaigns, conversations, the ref lookup.
#[derive(Clone, Copy)]
pub struct CampaignPorts<'a> {
    /// The send pipeline (counters, consent, clock and configuration are taken from it).
    pub ctx: Ctx<'a>,
    /// Campaigns and enrolments.
    pub campaigns: &'a dyn CampaignStore,
    /// Conversations.
    pub conversations: &'a dyn ConversationStore,
    /// Messages of a ref (a step sent by a run that crashed before recording it).
    pub queries: &'a dyn MessageQueries,
    /// Retell's `create-sms-chat`, for the steps of Retell campaigns (none: they go by Twilio).
    pub retell: Option<&'a dyn crate::ports::RetellChats>,
}

// ---------------------------------------------------------------------------------------------
// Lead intake

/// A validated `POST /v1/leads`.
#[derive(Debug, Clone)]
pub struct LeadCommand {
    /// The campaign.
    pub campaign_id: String,
    /// The lead.
    pub lead: Lead,
}

/// What intake did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeadOutcome {
    /// The enrolment.
    pub enrollment_id: EnrolmentId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Step 1's message, once sent (`None` while held by quiet hours or the daily limit).
    pub first_message_id: Option<MessageId>,
    /// The enrolment's status.
    pub status: EnrolmentStatus,
    /// When its next step is due.
    pub next_message_at: Option<DateTime<Utc>>,
    /// The phone was enrolled in this campaign already.
    pub duplicate: bool,
}

fn outcome_of(e: &Enrolment, duplicate: bool) -> LeadOutcome {
    LeadOutcome {
        enrollment_id: e.id.clone(),
        conversation_id: e.conversation_id.clone(),
        first_message_id: e.message_ids.first().cloned(),
        status: e.status,
        next_message_at: e.next_message_at,
        duplicate,
    }
}

/// Enrol a lead and send step 1 now (through the send pipeline, linked to the enrolment and the
/// conversation). A phone already enrolled in the campaign answers `duplicate` with its
/// enrolment; ten concurrent identical requests make one enrolment and one first SMS.
///
/// # Errors
/// 404 unknown campaign; 400 `missing_lead_field` when a step uses a field the lead lacks;
/// 422 `opted_out`; store failures.
pub async fn enrol_lead(p: CampaignPorts<'_>, cmd: LeadCommand) -> Result<LeadOutcome, AppError> {
    let now = p.ctx.clock.now();
    let campaign = p
        .campaigns
        .get_campaign(&cmd.campaign_id)
        .await?
        .ok_or(AppError::NotFound)?;
    for v in campaign.variables() {
        if cmd.lead.value_of(&v).is_none() {
            return Err(AppError::Validation {
                code: "missing_lead_field",
                message: format!("the campaign's steps use `{v}`, which this lead does not have"),
                field: Some(std::borrow::Cow::Owned(v.to_string())),
            });
        }
    }
    if p.ctx.consent.opt_out_of(&cmd.lead.phone).await?.is_some() {
        return Err(AppError::Refused {
            code: "opted_out",
            message: "this phone has opted out (STOP); nothing was enrolled".to_owned(),
        });
    }
    if let Some(existing) = p.campaigns.enrolment_of(&campaign.id, &cmd.lead.phone).await? {
        return Ok(outcome_of(&existing, true));
    }
    let business = business_number(p.ctx, &campaign)?;
    let conversation = open_or_create(
        p.conversations,
        &business,
        &cmd.lead.phone,
        Some(campaign.id.clone()),
        now,
    )
    .await?;
    if conversation.campaign_id.is_none() {
        // A conversation the lead opened before enrolling now belongs to the campaign.
        modify_conversation(p.conversations, &conversation.id, |c| {
            let set = c.campaign_id.is_none();
            if set {
                c.campaign_id = Some(campaign.id.clone());
            }
            set
        })
        .await?;
    }
    let enrolment = Enrolment::new(campaign.id.clone(), cmd.lead, business, conversation.id, now);
    match p.campaigns.create_enrolment(&enrolment).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            let winner = p
                .campaigns
                .enrolment_of(&campaign.id, &enrolment.lead.phone)
                .await?
                .ok_or(AppError::Transient(StoreError::ConditionFailed))?;
            return Ok(outcome_of(&winner, true));
        }
        Err(e) => return Err(e.into()),
    }
    let mut ops = status_ops(&campaign.id, None, EnrolmentStatus::Active);
    ops.push(add(&campaign.id, "enrolled", 1));
    count(p.ctx.counters, ops, now).await;
    tracing::info!(enrollment_id = %enrolment.id, campaign_id = %campaign.id, phone = %enrolment.lead.phone.masked(), "lead enrolled");
    let (after, _) = fire_step(p, &campaign, enrolment).await?;
    Ok(outcome_of(&after, false))
}

fn business_number(ctx: Ctx<'_>, campaign: &Campaign) -> Result<PhoneNumber, AppError> {
    match &campaign.from {
        Some(from) => PhoneNumber::parse_e164(from)
            .map_err(|_| AppError::Unexpected(anyhow::anyhow!("a stored campaign's `from` is not E.164"))),
        None => match &ctx.config.default_sender {
            Sender::Number(n) => Ok(n.clone()),
            Sender::MessagingService(_) => Err(AppError::invalid(
                "missing_field",
                "from",
                "the default sender is a Messaging Service: give the campaign a `from` number",
            )),
        },
    }
}

/// Resume a paused enrolment (`POST /v1/enrollments/{id}/resume`): its next step is due its delay
/// after the previous send, and goes at once if that has passed.
///
/// # Errors
/// 404; 409 `not_paused`; store failures.
pub async fn resume_enrolment(p: CampaignPorts<'_>, id: &EnrolmentId) -> Result<Enrolment, AppError> {
    let now = p.ctx.clock.now();
    let current = p.campaigns.get_enrolment(id).await?.ok_or(AppError::NotFound)?;
    let campaign = p
        .campaigns
        .get_campaign(&current.campaign_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if current.status != EnrolmentStatus::Paused {
        return Err(AppError::Conflict {
            code: "not_paused",
            message: format!("the enrollment is {}, not paused", current.status.as_str()),
        });
    }
    let resumed = modify_enrolment(p.campaigns, p.ctx.counters, id, now, |e| e.resume(&campaign, now))
        .await?
        .ok_or(AppError::NotFound)?;
    if resumed.next_message_at.is_some_and(|t| t <= now) {
        let (after, _) = fire_step(p, &campaign, resumed).await?;
        return Ok(after);
    }
    Ok(resumed)
}

// ---------------------------------------------------------------------------------------------
// Firing a step

/// What one look at a due step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Sent (or found sent by an earlier run) as this message.
    Sent(MessageId),
    /// Held until this time (quiet hours, the daily limit): moved, not dropped.
    Deferred(DateTime<Utc>),
    /// Stopped instead (opted out, or the lead lacks a field a step needs).
    Stopped,
    /// Nothing to do: not due, not active, or another run has it.
    Skipped,
}

/// Step `step`'s text for the enrolment's lead, or why it cannot be sent.
fn step_body(campaign: &Campaign, e: &Enrolment, step: u32) -> Result<MessageBody, String> {
    match campaign.render(step as usize, &e.lead) {
        Ok(text) => MessageBody::parse(text).map_err(|err| err.to_string()),
        Err(v) => Err(format!("step {} needs `{v}`, which the lead does not have", step + 1)),
    }
}

/// How a step's send went (by Twilio through the send pipeline, or by Retell).
enum StepSend {
    /// Sent now, or found sent by an earlier run: the step's id.
    Sent(MessageId),
    /// Not known to be sent: try again later (a Retell step reconciling first).
    Later,
    /// It can never go: the step cannot be rendered, or Retell refused it.
    Refused(String),
}

/// A step of a Retell campaign goes out as Retell's `create-sms-chat` (conversation-facts §1.6):
/// the campaign's Retell agent sends the step's text (`message_body`) and answers the replies
/// itself, its turns arriving through the chat events (our ids ride in `metadata.smsrelay`).
/// The call has no idempotency key, so every try first looks for a chat of this step created
/// since the enrolment (an earlier run may have sent it and died, or got an ambiguous answer); an
/// ambiguous create is never retried blindly. The step's id is derived from (enrolment, step), so
/// every run records the same one.
async fn retell_step(
    campaign: &Campaign,
    e: &Enrolment,
    step: u32,
    agent_id: &str,
    chats: &dyn crate::ports::RetellChats,
) -> Result<StepSend, AppError> {
    use crate::ports::{SmsChatError, SmsChatRequest};
    let step_ref = format!("{}:{step}", e.id);
    let message_id = MessageId::derived(e.created_at, &step_ref);
    let body = match step_body(campaign, e, step) {
        Ok(b) => b,
        Err(reason) => return Ok(StepSend::Refused(reason)),
    };
    match chats
        .find_sms_chat(agent_id, e.created_at.timestamp_millis(), "step", &step_ref)
        .await
    {
        Ok(Some(_)) => return Ok(StepSend::Sent(message_id)),
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(enrollment_id = %e.id, error.message = %err, "Retell chats could not be read: step waits");
            return Ok(StepSend::Later);
        }
    }
    let request = SmsChatRequest {
        from_number: e.business_number.as_str().to_owned(),
        to_number: e.lead.phone.as_str().to_owned(),
        agent_id: agent_id.to_owned(),
        dynamic_variables: [("message_body".to_owned(), body.as_str().to_owned())].into(),
        smsrelay_metadata: [
            ("step".to_owned(), step_ref),
            ("campaign_id".to_owned(), campaign.id.clone()),
            ("enrollment_id".to_owned(), e.id.as_str().to_owned()),
            ("conversation_id".to_owned(), e.conversation_id.as_str().to_owned()),
        ]
        .into(),
    };
    match chats.create_sms_chat(&request).await {
        Ok(_) => Ok(StepSend::Sent(message_id)),
        Err(SmsChatError::Rejected { status, message }) => Ok(StepSend::Refused(format!(
            "Retell refused the step: HTTP {status}: {message}"
        ))),
        Err(err) => {
            tracing::warn!(enrollment_id = %e.id, error.message = %err, "Retell step not confirmed: reconciled next time");
            Ok(StepSend::Later)
        }
    }
}

/// Send `e`'s due step if it may go now (see the module doc for the checks and the claim).
async fn fire_step(p: CampaignPorts<'_>, campaign: &Campaign, e: Enrolment) -> Result<(Enrolment, Fired), AppError> {
    let ctx = p.ctx;
    let now = ctx.clock.now();
    let steps = campaign.steps.len();
    let due = e
        .claim
        .map_or(e.next_message_at.is_some_and(|t| t <= now), |c| c.until <= now);
    if e.status != EnrolmentStatus::Active || e.step as usize >= steps || !due {
        return Ok((e, Fired::Skipped));
    }
    if ctx.consent.opt_out_of(&e.lead.phone).await?.is_some() {
        let stopped = stop_one(p.campaigns, ctx.counters, &e.id, "opted out", now).await?;
        return Ok((stopped.unwrap_or(e), Fired::Stopped));
    }
    let zone = super::quiet::recipient_zone(
        e.lead.zone(),
        &e.lead.phone,
        campaign.zone(),
        ctx.config.default_timezone,
    );
    let quiet = campaign
        .quiet_hours_in(zone)
        .or_else(|| super::quiet::campaign_quiet_hours(ctx.config, e.lead.zone(), &e.lead.phone, campaign.zone()));
    let mut hold = quiet.as_ref().map(|q| q.next_allowed(now)).filter(|t| *t > now);
    if hold.is_none() {
        if let Some(limit) = campaign.daily_limit {
            if e.sent_on_day_of(now, zone) >= limit as usize {
                let midnight = next_local_midnight(now, zone);
                hold = Some(quiet.as_ref().map_or(midnight, |q| q.next_allowed(midnight)));
            }
        }
    }
    if let Some(until) = hold {
        let version = e.version;
        let moved = modify_enrolment(p.campaigns, ctx.counters, &e.id, now, |x| {
            if x.version != version {
                return false;
            }
            x.defer(until, now);
            true
        })
        .await?;
        let moved = moved.unwrap_or(e);
        let fired = if moved.next_message_at == Some(until) {
            tracing::info!(enrollment_id = %moved.id, step = moved.step + 1, until = %until, "campaign step held (quiet hours or daily limit)");
            Fired::Deferred(until)
        } else {
            Fired::Skipped
        };
        return Ok((moved, fired));
    }
    // Claim: one conditional write; a concurrent run's claim makes ours fail.
    let mut claimed = e.clone();
    let Some(step) = claimed.claim_step(now, now + STEP_CLAIM, steps) else {
        return Ok((e, Fired::Skipped));
    };
    claimed.version = e.version + 1;
    match p.campaigns.update_enrolment(&claimed).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Ok((e, Fired::Skipped)),
        Err(err) => return Err(err.into()),
    }
    let reference = Ref {
        kind: STEP_REF_KIND.to_owned(),
        id: format!("{}:{step}", claimed.id),
    };
    let retell = match (&campaign.agent, p.retell) {
        (Some(crate::domain::AgentSpec::Retell { retell_agent_id }), Some(chats)) => {
            Some((retell_agent_id.as_str(), chats))
        }
        _ => None,
    };
    let sent = match retell {
        Some((agent_id, chats)) => retell_step(campaign, &claimed, step, agent_id, chats).await?,
        None => match p.queries.list_by_ref(&reference, 1).await?.into_iter().next() {
            Some(m) => StepSend::Sent(m.id),
            None => match step_body(campaign, &claimed, step) {
                Err(reason) => StepSend::Refused(reason),
                Ok(body) => {
                    let mut metadata = serde_json::Map::new();
                    metadata.insert("campaign_id".to_owned(), serde_json::json!(campaign.id));
                    metadata.insert("enrollment_id".to_owned(), serde_json::json!(claimed.id.as_str()));
                    metadata.insert(
                        "conversation_id".to_owned(),
                        serde_json::json!(claimed.conversation_id.as_str()),
                    );
                    metadata.insert("step".to_owned(), serde_json::json!(step + 1));
                    let cmd = SendCommand {
                        to: claimed.lead.phone.clone(),
                        body,
                        from: Sender::Number(claimed.business_number.clone()),
                        reference: Some(reference),
                        metadata,
                        send_at: None,
                        // Kept on the message, so a retry that comes due inside the window
                        // waits for its end (app/attempt.rs, the claim).
                        quiet_hours: quiet.clone(),
                    };
                    StepSend::Sent(send_message(ctx, cmd).await?.message.id)
                }
            },
        },
    };
    let message_id = match sent {
        StepSend::Sent(id) => id,
        // The claim runs out and a later tick tries again (a Retell step reconciling first).
        StepSend::Later => return Ok((claimed, Fired::Skipped)),
        StepSend::Refused(reason) => {
            tracing::warn!(enrollment_id = %claimed.id, reason = %reason, "campaign step cannot be sent: enrollment stopped");
            let stopped = stop_one(p.campaigns, ctx.counters, &claimed.id, &reason, now).await?;
            return Ok((stopped.unwrap_or(claimed), Fired::Stopped));
        }
    };
    let recorded = modify_enrolment(p.campaigns, ctx.counters, &claimed.id, now, |x| {
        x.record_step(step, message_id.clone(), campaign, now)
    })
    .await?
    .unwrap_or(claimed);
    count(ctx.counters, vec![add(&campaign.id, "sent", 1)], now).await;
    tracing::info!(enrollment_id = %recorded.id, step = step + 1, message_id = %message_id, "campaign step sent");
    Ok((recorded, Fired::Sent(message_id)))
}

async fn stop_one(
    store: &dyn CampaignStore,
    counters: &dyn CounterStore,
    id: &EnrolmentId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<Enrolment>, StoreError> {
    let mut changed = false;
    let after = modify_enrolment(store, counters, id, now, |e| {
        changed = e.stop(reason, now);
        changed
    })
    .await?;
    if changed {
        if let Some(e) = &after {
            count(counters, vec![add(&e.campaign_id, "opted_out", 1)], now).await;
        }
    }
    Ok(after)
}

// ---------------------------------------------------------------------------------------------
// The processor's campaign half

/// What the campaign half of a tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignTick {
    /// Steps sent.
    pub sent: u32,
    /// Steps held for later (quiet hours, the daily limit).
    pub rescheduled: u32,
    /// Conversations ended `no_response`.
    pub ended_no_response: u32,
    /// `conversation_silent` jobs queued.
    pub silent_queued: u32,
    /// Due enrolments read.
    pub items_read: u32,
    /// Work was left for the next tick (budget spent).
    pub remaining: bool,
}

/// Work through the enrolments due now, within `budget` (on the clock's monotonic time).
///
/// # Errors
/// The due index could not be read (a failure on one enrolment is logged and left due).
pub async fn process_enrolments(p: CampaignPorts<'_>, budget: std::time::Duration) -> Result<CampaignTick, AppError> {
    let started = p.ctx.clock.monotonic();
    let mut tick = CampaignTick::default();
    let mut seen = HashSet::new();
    loop {
        let now = p.ctx.clock.now();
        let fresh: Vec<Enrolment> = p
            .campaigns
            .due_enrolments(now, PAGE)
            .await?
            .into_iter()
            .filter(|e| seen.insert(e.id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for listed in fresh {
            if p.ctx.clock.elapsed_since(started) >= budget {
                tick.remaining = true;
                return Ok(tick);
            }
            tick.items_read += 1;
            if let Err(e) = process_one(p, &listed.id, &mut tick).await {
                tracing::warn!(enrollment_id = %listed.id, error.message = %e, "due enrollment failed; stays due");
            }
        }
    }
    Ok(tick)
}

async fn process_one(p: CampaignPorts<'_>, id: &EnrolmentId, tick: &mut CampaignTick) -> Result<(), AppError> {
    let now = p.ctx.clock.now();
    // The index may lag (DynamoDB GSIs are eventually consistent): act on a consistent read.
    let Some(e) = p.campaigns.get_enrolment(id).await? else {
        return Ok(());
    };
    let Some(campaign) = p.campaigns.get_campaign(&e.campaign_id).await? else {
        tracing::warn!(enrollment_id = %e.id, "enrollment of a missing campaign: stopped");
        stop_one(p.campaigns, p.ctx.counters, &e.id, "the campaign no longer exists", now).await?;
        return Ok(());
    };
    if e.silence_check_at.is_some_and(|t| t <= now) {
        check_silence(p, &campaign, &e, tick).await?;
    }
    let Some(e) = p.campaigns.get_enrolment(id).await? else {
        return Ok(());
    };
    if e.status != EnrolmentStatus::Active {
        return Ok(());
    }
    if (e.step as usize) < campaign.steps.len() {
        match fire_step(p, &campaign, e).await?.1 {
            Fired::Sent(_) => tick.sent += 1,
            Fired::Deferred(_) => tick.rescheduled += 1,
            Fired::Stopped | Fired::Skipped => {}
        }
        return Ok(());
    }
    if e.no_response_at.is_some_and(|t| t <= now) {
        let replied = e.replied_at.is_some();
        let version = e.version;
        let completed = modify_enrolment(p.campaigns, p.ctx.counters, &e.id, now, |x| {
            x.version == version && x.complete(now)
        })
        .await?;
        if completed.is_some_and(|c| c.version == version + 1) && !replied {
            let wait = campaign.no_response_after.clone().unwrap_or_default();
            let ended = modify_conversation(p.conversations, &e.conversation_id, |c| {
                c.last_inbound_at().is_none()
                    && c.end(
                        Outcome::NoResponse,
                        format!("no reply within {wait} after the last step"),
                        now,
                    )
                    .is_ok()
            })
            .await?;
            if ended.is_some_and(|c| c.outcome == Some(Outcome::NoResponse) && c.ended_at == Some(now)) {
                tick.ended_no_response += 1;
            }
        }
    }
    Ok(())
}

/// The silence check came due: if the lead's last reply is `end_after_silence` old and the
/// conversation is still open, queue `conversation_silent` (its handler ends it with an outcome);
/// a newer reply moves the check.
async fn check_silence(
    p: CampaignPorts<'_>,
    campaign: &Campaign,
    e: &Enrolment,
    tick: &mut CampaignTick,
) -> Result<(), AppError> {
    let now = p.ctx.clock.now();
    let Some(wait) = campaign.end_after_silence() else {
        modify_enrolment(p.campaigns, p.ctx.counters, &e.id, now, |x| {
            x.silence_check_at.take().is_some()
        })
        .await?;
        return Ok(());
    };
    let conversation = p.conversations.get_conversation(&e.conversation_id).await?;
    let last = conversation
        .as_ref()
        .filter(|c| c.is_open())
        .and_then(|c| c.last_inbound_at())
        .or(e.last_reply_at);
    let open = conversation.as_ref().is_some_and(crate::domain::Conversation::is_open);
    let next_check = last.map(|l| l + wait).filter(|t| *t > now && open);
    if open && next_check.is_none() {
        let job = JobPayload::conversation_silent(e.conversation_id.clone(), now);
        p.ctx
            .queue
            .enqueue(&job, std::time::Duration::ZERO)
            .await
            .map_err(|err| AppError::Transient(StoreError::Unexpected(anyhow::Error::new(err))))?;
        tick.silent_queued += 1;
    }
    modify_enrolment(p.campaigns, p.ctx.counters, &e.id, now, |x| {
        let changed = x.silence_check_at != next_check;
        x.silence_check_at = next_check;
        changed
    })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inbound hooks, the agent lookup, outcome counting

/// The [`EnrolmentHook`] on the campaign store: STOP stops, a reply pauses (with
/// `stop_on_reply`) and schedules the silence check; both keep the report's counters.
pub struct EnrolmentsHook {
    campaigns: Arc<dyn CampaignStore>,
    counters: Arc<dyn CounterStore>,
}

impl EnrolmentsHook {
    /// On these ports.
    pub fn new(campaigns: Arc<dyn CampaignStore>, counters: Arc<dyn CounterStore>) -> Self {
        Self { campaigns, counters }
    }
}

#[async_trait]
impl EnrolmentHook for EnrolmentsHook {
    async fn stop_all(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut n = 0;
        for e in self.campaigns.enrolments_of_phone(phone).await? {
            if !e.is_live() {
                continue;
            }
            let after = stop_one(self.campaigns.as_ref(), self.counters.as_ref(), &e.id, reason, at).await?;
            if after.is_some_and(|a| a.status == EnrolmentStatus::Stopped && a.updated_at == at) {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn pause_pair(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for e in self.campaigns.enrolments_of_phone(phone).await? {
            if !e.is_live() || &e.business_number != business_number {
                continue;
            }
            let Some(campaign) = self.campaigns.get_campaign(&e.campaign_id).await? else {
                continue;
            };
            let mut outcome = None;
            modify_enrolment(self.campaigns.as_ref(), self.counters.as_ref(), &e.id, at, |x| {
                let before = x.clone();
                let p = x.reply(at, campaign.stop_on_reply, campaign.end_after_silence());
                outcome = Some(p);
                *x != before
            })
            .await?;
            if let Some(p) = outcome {
                if p.first_reply {
                    count(self.counters.as_ref(), vec![add(&campaign.id, "replied", 1)], at).await;
                }
                if p.paused {
                    n += 1;
                    tracing::info!(enrollment_id = %e.id, "the lead replied: drip paused");
                }
            }
        }
        Ok(n)
    }
}

/// The [`CampaignAgents`] lookup on the campaign store: a campaign's stored `agent`.
pub struct StoredCampaignAgents(pub Arc<dyn CampaignStore>);

#[async_trait]
impl CampaignAgents for StoredCampaignAgents {
    async fn agent_of(&self, campaign_id: &str) -> Result<Option<crate::domain::AgentSpec>, StoreError> {
        Ok(self.0.get_campaign(campaign_id).await?.and_then(|c| c.agent))
    }
}

/// A [`ConversationStore`] that keeps the campaign report's outcome counters: when a campaign's
/// conversation is written with a new outcome (ended, or a person's correction), the old
/// outcome's counter goes down and the new one's up. Every path that ends a conversation writes
/// through this port, so every ended conversation counts once.
pub struct CountedConversations {
    inner: Arc<dyn ConversationStore>,
    counters: Arc<dyn CounterStore>,
}

impl CountedConversations {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn ConversationStore>, counters: Arc<dyn CounterStore>) -> Self {
        Self { inner, counters }
    }
}

#[async_trait]
impl ConversationStore for CountedConversations {
    async fn create_conversation(&self, c: &crate::domain::Conversation) -> Result<(), StoreError> {
        self.inner.create_conversation(c).await
    }

    async fn get_conversation(&self, id: &ConversationId) -> Result<Option<crate::domain::Conversation>, StoreError> {
        self.inner.get_conversation(id).await
    }

    async fn open_conversation(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
    ) -> Result<Option<crate::domain::Conversation>, StoreError> {
        self.inner.open_conversation(business_number, phone).await
    }

    async fn update_conversation(&self, c: &crate::domain::Conversation) -> Result<(), StoreError> {
        let (Some(campaign), Some(outcome)) = (&c.campaign_id, c.outcome) else {
            return self.inner.update_conversation(c).await;
        };
        let before = self.inner.get_conversation(&c.id).await?;
        self.inner.update_conversation(c).await?;
        // The write succeeded on version - 1, so `before` (read at that version) is what it replaced.
        let previous = before.filter(|b| b.version + 1 == c.version).and_then(|b| b.outcome);
        if previous != Some(outcome) {
            let mut ops = vec![add(campaign, &format!("outcome:{}", outcome.as_str()), 1)];
            if let Some(p) = previous {
                ops.push(add(campaign, &format!("outcome:{}", p.as_str()), -1));
            }
            count(self.counters.as_ref(), ops, c.updated_at).await;
        }
        Ok(())
    }

    async fn list_conversations(
        &self,
        phone: &PhoneNumber,
        filter: ConversationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<crate::domain::Conversation>, StoreError> {
        self.inner.list_conversations(phone, filter, limit, cursor).await
    }

    async fn list_conversations_by_status(
        &self,
        status: crate::domain::ConversationStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<crate::domain::Conversation>, StoreError> {
        self.inner.list_conversations_by_status(status, limit, cursor).await
    }
}

/// Count a campaign step's delivery (called by the status callback when a message carrying
/// `campaign_id` metadata is delivered).
pub async fn count_delivered(counters: &dyn CounterStore, m: &crate::domain::Message, now: DateTime<Utc>) {
    if let Some(id) = m.metadata.get("campaign_id").and_then(|v| v.as_str()) {
        if m.reference.as_ref().is_some_and(|r| r.kind == STEP_REF_KIND) {
            count(counters, vec![add(id, "delivered", 1)], now).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report

/// `GET /v1/campaigns/{id}/report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    /// Leads enrolled.
    pub enrolled: i64,
    /// Enrolments active now.
    pub active: i64,
    /// Paused now.
    pub paused: i64,
    /// Completed.
    pub completed: i64,
    /// Stopped.
    pub stopped: i64,
    /// Leads that replied at least once.
    pub replied: i64,
    /// `replied / enrolled` (0 when none enrolled).
    pub reply_rate: f64,
    /// Steps sent.
    pub sent: i64,
    /// Steps delivered to the handset.
    pub delivered: i64,
    /// `delivered / sent` (0 when none sent).
    pub delivered_rate: f64,
    /// Enrolments stopped by an opt-out.
    pub opted_out: i64,
    /// Ended conversations by outcome (all six, zeros included).
    pub outcomes: std::collections::BTreeMap<&'static str, i64>,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = a as f64 / b as f64;
    (r * 10_000.0).round() / 10_000.0
}

/// The report of campaign `id`, from its counters (one read of a fixed set of keys).
///
/// # Errors
/// 404 unknown campaign; store failures.
pub async fn campaign_report(
    campaigns: &dyn CampaignStore,
    counters: &dyn CounterStore,
    id: &str,
    now: DateTime<Utc>,
) -> Result<CampaignReport, AppError> {
    campaigns.get_campaign(id).await?.ok_or(AppError::NotFound)?;
    let fields = [
        "enrolled",
        "active",
        "paused",
        "completed",
        "stopped",
        "replied",
        "sent",
        "delivered",
        "opted_out",
    ];
    let mut keys: Vec<String> = fields.iter().map(|f| counter_key(id, f)).collect();
    keys.extend(
        Outcome::ALL
            .iter()
            .map(|o| counter_key(id, &format!("outcome:{}", o.as_str()))),
    );
    let v = counters.values(&keys, now).await?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0).max(0);
    let outcomes = Outcome::ALL
        .iter()
        .enumerate()
        .map(|(i, o)| (o.as_str(), get(fields.len() + i)))
        .collect();
    Ok(CampaignReport {
        enrolled: get(0),
        active: get(1),
        paused: get(2),
        completed: get(3),
        stopped: get(4),
        replied: get(5),
        reply_rate: ratio(get(5), get(0)),
        sent: get(6),
        delivered: get(7),
        delivered_rate: ratio(get(7), get(6)),
        opted_out: get(8),
        outcomes,
    })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::campaign::Step;
    use crate::domain::{AgentSpec, Conversation};
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).single().unwrap_or_default()
    }

    fn campaign(agent: Option<AgentSpec>) -> Campaign {
        Campaign {
            id: "roof-leads".to_owned(),
            name: "Roof leads".to_owned(),
            from: Some("+15005550006".to_owned()),
            steps: vec![Step {
                delay: "0s".to_owned(),
                body: "Hi".to_owned(),
            }],
            stop_on_reply: true,
            no_response_after: None,
            end_after_silence: None,
            quiet_hours: None,
            timezone: None,
            daily_limit: None,
            agent,
            created_at: t0(),
            updated_at: t0(),
        }
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse_e164(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn the_agent_lookup_reads_the_campaigns_stored_agent() {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap_or_else(|e| panic!("{e}")));
        let spec = AgentSpec::Scripted {
            rules: Vec::new(),
            fallback: Some("Thanks!".to_owned()),
        };
        let created = create_campaign(store.as_ref(), campaign(Some(spec.clone())), t0()).await;
        assert!(created.is_ok());
        let agents = StoredCampaignAgents(store.clone());
        assert_eq!(agents.agent_of("roof-leads").await.ok().flatten(), Some(spec));
        assert_eq!(agents.agent_of("unknown").await.ok().flatten(), None);
        let bad = AgentSpec::Openai {
            prompt: String::new(),
            model: None,
        };
        let mut refused = campaign(Some(bad));
        refused.id = "other".to_owned();
        assert!(matches!(
            create_campaign(store.as_ref(), refused, t0()).await,
            Err(AppError::Validation { field: Some(f), .. }) if f == "agent"
        ));
    }

    #[tokio::test]
    async fn an_outcome_counts_once_and_a_persons_correction_moves_the_count() {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap_or_else(|e| panic!("{e}")));
        let counted = CountedConversations::new(store.clone(), store.clone());
        let c = Conversation::open(
            phone("+14155550100"),
            phone("+15005550006"),
            Some("roof-leads".to_owned()),
            t0(),
        );
        assert!(counted.create_conversation(&c).await.is_ok());
        let ended = modify_conversation(&counted, &c.id, |c| c.end(Outcome::NoResponse, "silent", t0()).is_ok()).await;
        assert!(ended.is_ok());
        // Writing it again without a new outcome counts nothing more.
        let touched = modify_conversation(&counted, &c.id, |c| {
            c.updated_at = t0();
            true
        })
        .await;
        assert!(touched.is_ok());
        let corrected = super::super::conversations::set_outcome(
            &counted,
            &c.id,
            Outcome::Qualified,
            "called back".to_owned(),
            t0(),
        )
        .await;
        assert!(corrected.is_ok());
        let counters: &dyn CounterStore = store.as_ref();
        let keys = [
            counter_key("roof-leads", "outcome:no_response"),
            counter_key("roof-leads", "outcome:qualified"),
        ];
        assert_eq!(counters.values(&keys, t0()).await.ok(), Some(vec![0, 1]));
    }
}
