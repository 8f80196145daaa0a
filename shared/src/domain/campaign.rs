//! Drip campaigns (docs/api.md "Campaigns, leads, conversations"): a campaign's steps with their
//! delays and body templates, a lead's fields, and an enrolment's state machine.
//!
//! - A step's `delay` counts from the previous step's send (the first from enrolment).
//! - Bodies are templates over the lead's fields (`{{first_name}}`, `{{attributes.source}}`),
//!   checked when the campaign is written: an unknown variable is refused then, and a lead that
//!   lacks a field its campaign's templates use is refused at intake, so no SMS is ever sent with
//!   a blank where a name should be.
//! - An enrolment is `active` → (`paused` on a reply ⇄ `active` on resume) → `completed` after
//!   its last step (and the no-response wait) or `stopped` on STOP; `completed` and `stopped` are
//!   final. Its due time (next step, a step being sent, the no-response deadline, a silence check)
//!   is derived from the record, so the store's due index always agrees with it.
//!
//! Pure: no I/O, times are passed in.

use super::{AgentSpec, ConversationId, MessageId, PhoneNumber, QuietHours};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Most steps a campaign may have.
pub const MAX_STEPS: usize = 20;
/// Most characters of a campaign id.
pub const MAX_CAMPAIGN_ID_CHARS: usize = 64;
/// Most characters of a lead's text field (names, e-mail, one attribute value).
pub const MAX_LEAD_FIELD_CHARS: usize = 256;
/// Most attributes a lead may carry.
pub const MAX_ATTRIBUTES: usize = 50;

/// A field at fault and why (a 400 naming it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CampaignError {
    /// snake_case code.
    pub code: &'static str,
    /// The field, as a dotted path (`steps[1].body`).
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

fn fault(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> CampaignError {
    CampaignError {
        code,
        field: field.into(),
        message: message.into(),
    }
}

/// A campaign id: 1–64 of `[A-Za-z0-9_-]`, starting with a letter or digit (it is part of URLs
/// and store keys).
pub fn validate_campaign_id(raw: &str) -> Result<(), CampaignError> {
    let ok = !raw.is_empty()
        && raw.chars().count() <= MAX_CAMPAIGN_ID_CHARS
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(fault(
            "invalid_id",
            "id",
            "`id` must be 1-64 letters, digits, `-` or `_`, starting with a letter or digit",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Templates

/// A lead field a template may name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Variable {
    /// `{{first_name}}`
    FirstName,
    /// `{{last_name}}`
    LastName,
    /// `{{email}}`
    Email,
    /// `{{phone}}`
    Phone,
    /// `{{attributes.<key>}}`
    Attribute(String),
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FirstName => f.write_str("first_name"),
            Self::LastName => f.write_str("last_name"),
            Self::Email => f.write_str("email"),
            Self::Phone => f.write_str("phone"),
            Self::Attribute(k) => write!(f, "attributes.{k}"),
        }
    }
}

fn attribute_key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Variable {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "first_name" => Some(Self::FirstName),
            "last_name" => Some(Self::LastName),
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            other => other
                .strip_prefix("attributes.")
                .filter(|k| attribute_key_ok(k))
                .map(|k| Self::Attribute(k.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Variable),
}

/// A step body: text with `{{variable}}` placeholders (white space inside the braces allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{name}}` where `name` is no lead field.
    #[error("unknown variable `{0}` (use first_name, last_name, email, phone or attributes.<key>)")]
    UnknownVariable(String),
    /// `{{` without its `}}`.
    #[error("a `{{{{` has no closing `}}}}`")]
    Unclosed,
}

impl Template {
    /// Parse a body.
    ///
    /// # Errors
    /// The first unknown variable, or an unclosed placeholder.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let name = after[..close].trim();
            let var = Variable::parse(name).ok_or_else(|| TemplateError::UnknownVariable(name.to_owned()))?;
            pieces.push(Piece::Var(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    /// The variables it uses, in order of first use.
    pub fn variables(&self) -> Vec<Variable> {
        let mut out: Vec<Variable> = Vec::new();
        for p in &self.pieces {
            if let Piece::Var(v) = p {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The text for `lead`.
    ///
    /// # Errors
    /// The first variable the lead has no value for (intake checks this first, so it does not
    /// happen for an enrolled lead).
    pub fn render(&self, lead: &Lead) -> Result<String, Variable> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&lead.value_of(v).ok_or_else(|| v.clone())?),
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Leads

/// A lead's fields, as `POST /v1/leads` gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    /// E.164.
    pub phone: PhoneNumber,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The lead's IANA zone, if known (validated at intake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Anything else the form sent (strings, numbers, booleans).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Lead {
    /// The value a variable renders to, if the lead has one (an empty text counts as none).
    pub fn value_of(&self, v: &Variable) -> Option<String> {
        let s = match v {
            Variable::FirstName => self.first_name.clone(),
            Variable::LastName => self.last_name.clone(),
            Variable::Email => self.email.clone(),
            Variable::Phone => Some(self.phone.as_str().to_owned()),
            Variable::Attribute(k) => self.attributes.get(k).cloned(),
        };
        s.filter(|s| !s.trim().is_empty())
    }

    /// The lead's zone, parsed.
    pub fn zone(&self) -> Option<chrono_tz::Tz> {
        self.timezone.as_deref().and_then(|z| z.parse().ok())
    }
}

// ---------------------------------------------------------------------------------------------
// Campaigns

/// One step as stored and shown: the wire `delay` and `body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// `0s`, `30s`, `2h`, `1d`: after the previous step's send (the first: after enrolment).
    pub delay: String,
    /// The body template.
    pub body: String,
}

impl Step {
    /// The delay as a duration (validated when the campaign was written).
    pub fn delay(&self) -> Duration {
        super::parse_duration(&self.delay)
            .ok()
            .and_then(|d| Duration::from_std(d).ok())
            .unwrap_or_else(Duration::zero)
    }

    /// The body parsed (validated when the campaign was written).
    ///
    /// # Errors
    /// Only for a record that was not validated.
    pub fn template(&self) -> Result<Template, TemplateError> {
        Template::parse(&self.body)
    }
}

/// A campaign's quiet hours: `HH:MM` start and end; the zone is the recipient's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignQuietHours {
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local.
    pub end: String,
}

/// A campaign record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Caller-chosen id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Our number the steps are sent from (E.164); `None`: the configured default number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Whether a reply pauses the drip.
    pub stop_on_reply: bool,
    /// After the last step, this long without a reply ends the conversation `no_response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_response_after: Option<String>,
    /// After the lead replied, this long of silence ends the conversation (classified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_after_silence: Option<String>,
    /// Quiet hours in the recipient's zone; `None`: the configured default window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<CampaignQuietHours>,
    /// The campaign's zone (used when the lead's and its area code's are unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Most steps one lead gets per local day; `None`: no campaign limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<u32>,
    /// Who answers replies; `None`: replies wait for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSpec>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last replaced.
    pub updated_at: DateTime<Utc>,
}

fn duration_field(raw: Option<&str>, field: &str) -> Result<Option<Duration>, CampaignError> {
    raw.map(|r| {
        super::parse_duration(r)
            .ok()
            .and_then(|d| Duration::from_std(d).ok())
            .ok_or_else(|| {
                fault(
                    "invalid_duration",
                    field,
                    format!("`{field}` must look like 30s, 15m, 2h or 1d"),
                )
            })
    })
    .transpose()
}

impl Campaign {
    /// Check every field of a campaign about to be written.
    ///
    /// # Errors
    /// The first field at fault (a 400 naming it).
    pub fn validate(&self) -> Result<(), CampaignError> {
        validate_campaign_id(&self.id)?;
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(fault("invalid_name", "name", "`name` must be 1-200 characters"));
        }
        if let Some(from) = &self.from {
            PhoneNumber::parse_e164(from)
                .map_err(|e| fault("invalid_phone", "from", format!("`from` is not an E.164 number: {e}")))?;
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(fault(
                "invalid_steps",
                "steps",
                format!("`steps` must have 1 to {MAX_STEPS} steps"),
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            duration_field(Some(&step.delay), &format!("steps[{i}].delay"))?;
            let field = format!("steps[{i}].body");
            if step.body.trim().is_empty() {
                return Err(fault("invalid_body", field, "a step's `body` must not be empty"));
            }
            match Template::parse(&step.body) {
                Ok(_) => {}
                Err(TemplateError::UnknownVariable(v)) => {
                    return Err(fault(
                        "unknown_variable",
                        field,
                        format!("`steps[{i}].body` uses unknown variable `{v}` (use first_name, last_name, email, phone or attributes.<key>)"),
                    ))
                }
                Err(e) => return Err(fault("invalid_template", field, format!("`steps[{i}].body`: {e}"))),
            }
        }
        duration_field(self.no_response_after.as_deref(), "no_response_after")?;
        duration_field(self.end_after_silence.as_deref(), "end_after_silence")?;
        if let Some(tz) = &self.timezone {
            tz.parse::<chrono_tz::Tz>()
                .map_err(|_| fault("invalid_timezone", "timezone", "`timezone` must be an IANA zone name"))?;
        }
        if let Some(q) = &self.quiet_hours {
            QuietHours::parse(&q.start, &q.end, "UTC")
                .map_err(|e| fault("invalid_quiet_hours", "quiet_hours", format!("`quiet_hours`: {e}")))?;
        }
        if self.daily_limit == Some(0) {
            return Err(fault(
                "invalid_daily_limit",
                "daily_limit",
                "`daily_limit` must be at least 1",
            ));
        }
        if let Some(agent) = &self.agent {
            agent
                .validate()
                .map_err(|e| fault("invalid_agent", "agent", e.to_string()))?;
        }
        Ok(())
    }

    /// Every variable the steps use, in order of first use.
    pub fn variables(&self) -> Vec<Variable> {
        let mut out: Vec<Variable> = Vec::new();
        for t in self.steps.iter().filter_map(|s| s.template().ok()) {
            for v in t.variables() {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// Step `index`'s text for `lead`.
    ///
    /// # Errors
    /// The variable the lead lacks (or an unknown one in an unvalidated record).
    pub fn render(&self, index: usize, lead: &Lead) -> Result<String, String> {
        let step = self.steps.get(index).ok_or_else(|| format!("no step {index}"))?;
        let t = step.template().map_err(|e| e.to_string())?;
        t.render(lead).map_err(|v| v.to_string())
    }

    /// `no_response_after` as a duration.
    pub fn no_response_after(&self) -> Option<Duration> {
        duration_field(self.no_response_after.as_deref(), "").ok().flatten()
    }

    /// `end_after_silence` as a duration.
    pub fn end_after_silence(&self) -> Option<Duration> {
        duration_field(self.end_after_silence.as_deref(), "").ok().flatten()
    }

    /// The campaign's own zone.
    pub fn zone(&self) -> Option<chrono_tz::Tz> {
        self.timezone.as_deref().and_then(|z| z.parse().ok())
    }

    /// The campaign's own quiet window in `zone`, if it has one.
    pub fn quiet_hours_in(&self, zone: chrono_tz::Tz) -> Option<QuietHours> {
        let q = self.quiet_hours.as_ref()?;
        QuietHours::parse(&q.start, &q.end, zone.name()).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Enrolments

/// Our id of an enrolment: `enr_<ULID>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnrolmentId(String);

/// Not `enr_` + a ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an enrollment id")]
pub struct InvalidEnrolmentId;

impl EnrolmentId {
    /// A new id whose ULID encodes `now`.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        Self(format!(
            "enr_{}",
            ulid::Ulid::from_parts(ms, crate::domain::entropy::random::<u128>())
        ))
    }

    /// Parse a caller's id.
    ///
    /// # Errors
    /// [`InvalidEnrolmentId`].
    pub fn parse(raw: &str) -> Result<Self, InvalidEnrolmentId> {
        let u = raw.strip_prefix("enr_").ok_or(InvalidEnrolmentId)?;
        ulid::Ulid::from_string(u).map_err(|_| InvalidEnrolmentId)?;
        Ok(Self(raw.to_owned()))
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnrolmentId {
    type Error = InvalidEnrolmentId;
    fn try_from(v: String) -> Result<Self, Self::Error> {
        Self::parse(&v)
    }
}
impl From<EnrolmentId> for String {
    fn from(v: EnrolmentId) -> Self {
        v.0
    }
}
impl fmt::Display for EnrolmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an enrolment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentStatus {
    /// Steps are being sent.
    Active,
    /// The lead replied; no more steps until resumed.
    Paused,
    /// Every step sent (and the no-response wait over).
    Completed,
    /// Opted out (STOP).
    Stopped,
}

impl EnrolmentStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Active, Self::Paused, Self::Completed, Self::Stopped];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
        }
    }
}

/// A step being sent: claimed by one processor run until `until` (a crashed run's claim expires
/// and the next run finishes the step, finding the message it may have created by its ref).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepClaim {
    /// The step's index (0-based).
    pub step: u32,
    /// Until when the claim holds.
    pub until: DateTime<Utc>,
}

/// One lead in one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// Its id.
    pub id: EnrolmentId,
    /// The campaign.
    pub campaign_id: String,
    /// The lead.
    pub lead: Lead,
    /// Our number the steps go from.
    pub business_number: PhoneNumber,
    /// The (business number, phone) conversation the steps belong to.
    pub conversation_id: ConversationId,
    /// Where it stands.
    pub status: EnrolmentStatus,
    /// Steps sent so far.
    pub step: u32,
    /// When the next step is due (`None`: no step left, or not active).
    pub next_message_at: Option<DateTime<Utc>>,
    /// The messages of the steps, in order.
    pub message_ids: Vec<MessageId>,
    /// When each step was sent (for the daily limit and the next delay).
    pub sent_at: Vec<DateTime<Utc>>,
    /// A step being sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<StepClaim>,
    /// After the last step: when no reply by then ends the conversation `no_response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_response_at: Option<DateTime<Utc>>,
    /// When the lead first replied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replied_at: Option<DateTime<Utc>>,
    /// When the lead last replied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<DateTime<Utc>>,
    /// When to check whether the conversation has been silent for `end_after_silence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_check_at: Option<DateTime<Utc>>,
    /// Why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Enrolled.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version.
    pub version: u64,
}

/// What a reply did to an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    /// It went from `active` to `paused`.
    pub paused: bool,
    /// This was the lead's first reply.
    pub first_reply: bool,
}

impl Enrolment {
    /// A new active enrolment whose first step is due at `now`.
    pub fn new(
        campaign_id: String,
        lead: Lead,
        business_number: PhoneNumber,
        conversation_id: ConversationId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: EnrolmentId::generate(now),
            campaign_id,
            lead,
            business_number,
            conversation_id,
            status: EnrolmentStatus::Active,
            step: 0,
            next_message_at: Some(now),
            message_ids: Vec::new(),
            sent_at: Vec::new(),
            claim: None,
            no_response_at: None,
            replied_at: None,
            last_reply_at: None,
            silence_check_at: None,
            stop_reason: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// When the processor must look at it next: a claim's expiry, the next step, the no-response
    /// deadline (active); the silence check (paused or active after a reply); else never.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            EnrolmentStatus::Active => {
                let work = self
                    .claim
                    .map(|c| c.until)
                    .or(self.next_message_at)
                    .or(self.no_response_at);
                [work, self.silence_check_at].into_iter().flatten().min()
            }
            EnrolmentStatus::Paused => self.silence_check_at,
            EnrolmentStatus::Completed | EnrolmentStatus::Stopped => None,
        }
    }

    /// Whether it can still send or be paused.
    pub fn is_live(&self) -> bool {
        matches!(self.status, EnrolmentStatus::Active | EnrolmentStatus::Paused)
    }

    /// The lead replied at `at`: with `stop_on_reply`, an active enrolment pauses; the first
    /// reply is remembered; with `end_after_silence`, a silence check is due that long after the
    /// latest reply.
    pub fn reply(&mut self, at: DateTime<Utc>, stop_on_reply: bool, end_after_silence: Option<Duration>) -> Paused {
        if !self.is_live() {
            return Paused {
                paused: false,
                first_reply: false,
            };
        }
        let first_reply = self.replied_at.is_none();
        self.replied_at.get_or_insert(at);
        self.last_reply_at = Some(self.last_reply_at.map_or(at, |l| l.max(at)));
        self.no_response_at = None;
        if let (Some(wait), Some(last)) = (end_after_silence, self.last_reply_at) {
            self.silence_check_at = Some(last + wait);
        }
        let paused = stop_on_reply && self.status == EnrolmentStatus::Active;
        if paused {
            self.status = EnrolmentStatus::Paused;
            self.next_message_at = None;
            self.claim = None;
        }
        self.updated_at = self.updated_at.max(at);
        Paused { paused, first_reply }
    }

    /// Opted out: stop for good. Returns whether it changed.
    pub fn stop(&mut self, reason: &str, at: DateTime<Utc>) -> bool {
        if !self.is_live() {
            return false;
        }
        self.status = EnrolmentStatus::Stopped;
        self.stop_reason = Some(reason.to_owned());
        self.next_message_at = None;
        self.no_response_at = None;
        self.silence_check_at = None;
        self.claim = None;
        self.updated_at = at;
        true
    }

    /// A paused enrolment continues: its next step is due its delay after the previous send
    /// (not before `now`); with no step left, the no-response wait starts now (or it completes).
    /// Returns whether it changed.
    pub fn resume(&mut self, campaign: &Campaign, now: DateTime<Utc>) -> bool {
        if self.status != EnrolmentStatus::Paused {
            return false;
        }
        self.status = EnrolmentStatus::Active;
        self.schedule_next(campaign, now);
        self.updated_at = now;
        true
    }

    /// Take the due step for sending until `until`. `None` when no step is due at `now` (or
    /// another run holds it).
    pub fn claim_step(&mut self, now: DateTime<Utc>, until: DateTime<Utc>, steps: usize) -> Option<u32> {
        if self.status != EnrolmentStatus::Active || (self.step as usize) >= steps {
            return None;
        }
        match self.claim {
            Some(c) if c.until > now => return None,
            Some(_) => {}
            None => {
                if self.next_message_at.is_none_or(|t| t > now) {
                    return None;
                }
            }
        }
        self.claim = Some(StepClaim { step: self.step, until });
        self.updated_at = now;
        Some(self.step)
    }

    /// Step `step` went out as `message_id` at `now`: the next one is due its delay later, or,
    /// after the last, the no-response wait starts (or it completes when there is none).
    /// Returns whether it changed (a second record of the same step changes nothing).
    pub fn record_step(&mut self, step: u32, message_id: MessageId, campaign: &Campaign, now: DateTime<Utc>) -> bool {
        if self.step != step || step as usize >= campaign.steps.len() || self.message_ids.contains(&message_id) {
            return false;
        }
        self.step += 1;
        self.message_ids.push(message_id);
        self.sent_at.push(now);
        self.claim = None;
        if self.status == EnrolmentStatus::Active {
            self.schedule_next(campaign, now);
        }
        self.updated_at = now;
        true
    }

    fn schedule_next(&mut self, campaign: &Campaign, now: DateTime<Utc>) {
        self.claim = None;
        match campaign.steps.get(self.step as usize) {
            Some(next) => {
                let base = self.sent_at.last().copied().unwrap_or(self.created_at);
                self.next_message_at = Some((base + next.delay()).max(now));
                self.no_response_at = None;
            }
            None => {
                self.next_message_at = None;
                match campaign.no_response_after() {
                    Some(wait) if self.replied_at.is_none() => self.no_response_at = Some(now + wait),
                    _ => {
                        self.no_response_at = None;
                        self.status = EnrolmentStatus::Completed;
                    }
                }
            }
        }
    }

    /// The step due now is held until `until` (quiet hours, the daily limit): moved, not dropped.
    pub fn defer(&mut self, until: DateTime<Utc>, now: DateTime<Utc>) {
        self.next_message_at = Some(until);
        self.claim = None;
        self.updated_at = now;
    }

    /// The no-response wait is over (or no step is left to wait for): completed.
    pub fn complete(&mut self, now: DateTime<Utc>) -> bool {
        if self.status != EnrolmentStatus::Active {
            return false;
        }
        self.status = EnrolmentStatus::Completed;
        self.next_message_at = None;
        self.no_response_at = None;
        self.claim = None;
        self.updated_at = now;
        true
    }

    /// Steps sent on the local day of `now` in `zone`.
    pub fn sent_on_day_of(&self, now: DateTime<Utc>, zone: chrono_tz::Tz) -> usize {
        let day = super::schedule::local_day(now, zone);
        self.sent_at
            .iter()
            .filter(|t| super::schedule::local_day(**t, zone) == day)
            .count()
    }
}

/// The start of the local day after `now`'s in `zone` (a step over the daily limit waits for it).
pub fn next_local_midnight(now: DateTime<Utc>, zone: chrono_tz::Tz) -> DateTime<Utc> {
    use chrono::TimeZone;
    let day = super::schedule::local_day(now, zone);
    let next = day.succ_opt().unwrap_or(day);
    for hour in 0..4 {
        if let Some(naive) = next.and_hms_opt(hour, 0, 0) {
            if let Some(t) = zone.from_local_datetime(&naive).earliest() {
                return t.with_timezone(&Utc);
            }
        }
    }
    now + Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 17, 0, 0).single().unwrap_or_default()
    }

    fn lead() -> Lead {
        Lead {
            phone: PhoneNumber::parse_e164("+14155550100").unwrap_or_else(|e| panic!("{e}")),
            first_name: Some("Ana".to_owned()),
            last_name: None,
            email: None,
            timezone: None,
            attributes: BTreeMap::from([("source".to_owned(), "web-form".to_owned())]),
        }
    }

    pub(crate) fn campaign(delays: &[&str]) -> Campaign {
        Campaign {
            id: "roof-leads".to_owned(),
            name: "Roof leads".to_owned(),
            from: Some("+14155550199".to_owned()),
            steps: delays
                .iter()
                .enumerate()
                .map(|(i, d)| Step {
                    delay: (*d).to_owned(),
                    body: format!("Hi {{{{first_name}}}}, step {}", i + 1),
                })
                .collect(),
            stop_on_reply: true,
            no_response_after: Some("3d".to_owned()),
            end_after_silence: Some("1d".to_owned()),
            quiet_hours: None,
            timezone: None,
            daily_limit: None,
            agent: None,
            created_at: t0(),
            updated_at: t0(),
        }
    }

    fn enrolment() -> Enrolment {
        Enrolment::new(
            "roof-leads".to_owned(),
            lead(),
            PhoneNumber::parse_e164("+14155550199").unwrap_or_else(|e| panic!("{e}")),
            ConversationId::generate(t0()),
            t0(),
        )
    }

    #[test]
    fn templates_render_lead_fields_and_attributes() {
        let t = Template::parse("Hi {{ first_name }}, via {{attributes.source}} ({{phone}})").expect("parses");
        assert_eq!(
            t.variables(),
            vec![
                Variable::FirstName,
                Variable::Attribute("source".to_owned()),
                Variable::Phone
            ]
        );
        assert_eq!(t.render(&lead()).as_deref(), Ok("Hi Ana, via web-form (+14155550100)"));
        let mut no_name = lead();
        no_name.first_name = Some("  ".to_owned());
        assert_eq!(
            t.render(&no_name),
            Err(Variable::FirstName),
            "never a blank where a name goes"
        );
    }

    #[test]
    fn unknown_variables_and_unclosed_braces_are_refused() {
        assert_eq!(
            Template::parse("Hi {{fist_name}}"),
            Err(TemplateError::UnknownVariable("fist_name".to_owned()))
        );
        assert_eq!(Template::parse("Hi {{first_name"), Err(TemplateError::Unclosed));
        assert!(Template::parse("Hi {{attributes.}}").is_err());
        let mut c = campaign(&["0s", "2h"]);
        c.steps[1].body = "Still there {{nickname}}?".to_owned();
        let e = c.validate().expect_err("refused");
        assert_eq!((e.code, e.field.as_str()), ("unknown_variable", "steps[1].body"));
        assert!(e.message.contains("nickname"), "{e}");
    }

    #[test]
    fn campaigns_refuse_bad_delays_ids_agents_and_limits() {
        assert!(campaign(&["0s", "2h", "1d"]).validate().is_ok());
        let mut c = campaign(&["0s", "soon"]);
        assert_eq!(c.validate().map_err(|e| e.field), Err("steps[1].delay".to_owned()));
        c = campaign(&["0s"]);
        c.id = "bad id".to_owned();
        assert_eq!(c.validate().map_err(|e| e.field), Err("id".to_owned()));
        c = campaign(&["0s"]);
        c.daily_limit = Some(0);
        assert_eq!(c.validate().map_err(|e| e.code), Err("invalid_daily_limit"));
        c = campaign(&["0s"]);
        c.agent = Some(AgentSpec::Openai {
            prompt: " ".to_owned(),
            model: None,
        });
        assert_eq!(c.validate().map_err(|e| e.field), Err("agent".to_owned()));
        c = campaign(&[]);
        assert_eq!(c.validate().map_err(|e| e.field), Err("steps".to_owned()));
        c = campaign(&["0s"]);
        c.quiet_hours = Some(CampaignQuietHours {
            start: "9pm".to_owned(),
            end: "08:00".to_owned(),
        });
        assert_eq!(c.validate().map_err(|e| e.field), Err("quiet_hours".to_owned()));
    }

    #[test]
    fn each_delay_counts_from_the_previous_send() {
        let c = campaign(&["0s", "2h", "1d"]);
        let mut e = enrolment();
        assert_eq!(e.due_at(), Some(t0()));
        let until = t0() + Duration::minutes(5);
        assert_eq!(e.claim_step(t0(), until, 3), Some(0));
        assert_eq!(e.claim_step(t0(), until, 3), None, "claimed once");
        let sent = t0() + Duration::minutes(1);
        assert!(e.record_step(0, MessageId::generate(sent), &c, sent));
        assert_eq!(e.next_message_at, Some(sent + Duration::hours(2)));
        assert_eq!(
            e.claim_step(sent + Duration::minutes(119), until, 3),
            None,
            "not before it is due"
        );
        let second = sent + Duration::hours(3);
        assert_eq!(e.claim_step(second, second + Duration::minutes(5), 3), Some(1));
        assert!(e.record_step(1, MessageId::generate(second), &c, second));
        assert_eq!(e.next_message_at, Some(second + Duration::days(1)));
        let third = second + Duration::days(1);
        assert_eq!(e.claim_step(third, third + Duration::minutes(5), 3), Some(2));
        assert!(e.record_step(2, MessageId::generate(third), &c, third));
        assert_eq!((e.status, e.next_message_at), (EnrolmentStatus::Active, None));
        assert_eq!(e.no_response_at, Some(third + Duration::days(3)));
        assert_eq!(e.due_at(), e.no_response_at);
        assert!(e.complete(third + Duration::days(3)));
        assert_eq!(e.due_at(), None);
    }

    #[test]
    fn a_reply_pauses_and_resume_continues_with_the_next_step() {
        let c = campaign(&["0s", "2h", "1d"]);
        let mut e = enrolment();
        e.claim_step(t0(), t0(), 3);
        e.record_step(0, MessageId::generate(t0()), &c, t0());
        let at = t0() + Duration::minutes(30);
        let p = e.reply(at, true, c.end_after_silence());
        assert_eq!(
            p,
            Paused {
                paused: true,
                first_reply: true
            }
        );
        assert_eq!(e.status, EnrolmentStatus::Paused);
        assert_eq!(
            e.claim_step(t0() + Duration::hours(5), t0(), 3),
            None,
            "a paused drip sends nothing"
        );
        assert_eq!(e.due_at(), Some(at + Duration::days(1)), "only the silence check");
        let again = e.reply(at + Duration::minutes(5), true, c.end_after_silence());
        assert!(!again.paused && !again.first_reply);
        assert_eq!(e.silence_check_at, Some(at + Duration::minutes(5) + Duration::days(1)));
        let later = t0() + Duration::hours(4);
        assert!(e.resume(&c, later));
        assert_eq!(e.next_message_at, Some(later), "overdue: the next step goes now");
        assert!(!e.resume(&c, later), "only a paused one resumes");
    }

    #[test]
    fn stop_is_final() {
        let c = campaign(&["0s", "2h"]);
        let mut e = enrolment();
        assert!(e.stop("opted out (STOP)", t0()));
        assert!(!e.stop("again", t0()));
        assert_eq!(e.due_at(), None);
        assert!(!e.resume(&c, t0()));
        assert!(!e.reply(t0(), true, None).paused);
        assert_eq!(e.claim_step(t0(), t0(), 2), None);
    }

    #[test]
    fn an_expired_claim_can_be_taken_again_but_a_live_one_cannot() {
        let mut e = enrolment();
        let lease = Duration::minutes(5);
        assert_eq!(e.claim_step(t0(), t0() + lease, 2), Some(0));
        assert_eq!(
            e.due_at(),
            Some(t0() + lease),
            "a crashed run's step comes back when its claim expires"
        );
        assert_eq!(e.claim_step(t0() + Duration::minutes(4), t0() + lease, 2), None);
        let later = t0() + Duration::minutes(6);
        assert_eq!(e.claim_step(later, later + lease, 2), Some(0));
    }

    #[test]
    fn the_daily_limit_waits_for_the_next_local_day() {
        let zone = chrono_tz::America::Chicago;
        // 17:00Z is 11:00 in Chicago; the next local midnight is 06:00Z the next day.
        assert_eq!(
            next_local_midnight(t0(), zone),
            Utc.with_ymd_and_hms(2026, 12, 2, 6, 0, 0).single().unwrap_or_default()
        );
        let mut e = enrolment();
        e.sent_at = vec![t0() - Duration::hours(12), t0() - Duration::hours(1)];
        assert_eq!(e.sent_on_day_of(t0(), zone), 1);
    }

    proptest! {
        #[test]
        fn a_template_of_plain_text_renders_to_itself(text in "[^{}]{0,200}") {
            let t = Template::parse(&text).expect("plain text parses");
            prop_assert_eq!(t.render(&lead()), Ok(text));
        }

        #[test]
        fn steps_are_recorded_once_and_in_order(sends in proptest::collection::vec(0u32..4, 1..12)) {
            let c = campaign(&["0s", "1h", "2h", "1d"]);
            let mut e = enrolment();
            let mut now = t0();
            for s in sends {
                now += Duration::minutes(1);
                let before = e.step;
                let changed = e.record_step(s, MessageId::generate(now), &c, now);
                prop_assert_eq!(changed, s == before && before < 4);
                prop_assert_eq!(e.message_ids.len(), e.step as usize);
                prop_assert!(e.step <= 4);
            }
        }
    }
}
