//! The `campaigns` group, campaign routes: campaigns (create, replace, get, list, report), lead
//! intake (enrol + step 1 at once, `Idempotency-Key`), enrolments (get, resume).

use super::{cursor_error, idempotent, parse_limit};
use crate::app::campaigns::{
    campaign_report, create_campaign, enrol_lead, get_campaign as get_campaign_use_case,
    list_campaigns as list_campaigns_use_case, replace_campaign, resume_enrolment, CampaignPorts, CampaignReport,
    LeadCommand, LeadOutcome,
};
use crate::app::AppError;
use crate::domain::campaign::{MAX_ATTRIBUTES, MAX_LEAD_FIELD_CHARS};
use crate::domain::{timestamp, AgentSpec, Campaign, CampaignQuietHours, Enrolment, EnrolmentId, Lead, Step};
use crate::entrypoints::extract::{JsonBody, PathId, QueryPairs};
use crate::entrypoints::http::{ctx, json_response, public_base, ApiError};
use crate::entrypoints::resources::ErrorBody;
use crate::wiring::Deps;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// Shapes

/// One step of a campaign.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct StepBody {
    /// `0s`, `30s`, `2h`, `1d`: after the previous step's send (the first: after enrolment).
    pub delay: Option<String>,
    /// The text, a template over the lead's fields (`{{first_name}}`, `{{attributes.source}}`).
    pub body: Option<String>,
}

/// A campaign's quiet hours (in the recipient's zone).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CampaignQuietHoursBody {
    /// `HH:MM`, local.
    pub start: String,
    /// `HH:MM`, local.
    pub end: String,
}

/// `POST /v1/campaigns`, `PUT /v1/campaigns/{id}` (unknown fields are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct CampaignBody {
    /// 1-64 of `[A-Za-z0-9_-]` (PUT: optional, must match the path).
    pub id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Our E.164 number the steps go from (default: the configured sender number).
    pub from: Option<String>,
    /// 1-20 steps.
    pub steps: Option<Vec<StepBody>>,
    /// Whether a reply pauses the drip (default true).
    pub stop_on_reply: Option<bool>,
    /// After the last step, this long without a reply ends the conversation `no_response`.
    pub no_response_after: Option<String>,
    /// After a reply, this long of silence ends the conversation with an outcome.
    pub end_after_silence: Option<String>,
    /// Quiet hours in the recipient's zone (default: `SMSRELAY_QUIET_HOURS`).
    pub quiet_hours: Option<CampaignQuietHoursBody>,
    /// The campaign's IANA zone, used when the lead's and its area code's are unknown.
    pub timezone: Option<String>,
    /// Most steps one lead gets per local day.
    pub daily_limit: Option<u32>,
    /// `{"provider": "openai" | "retell" | "scripted", ...}` (docs/api.md).
    #[schema(value_type = Option<Object>)]
    pub agent: Option<AgentSpec>,
}

impl CampaignBody {
    fn into_campaign(self, path_id: Option<&str>) -> Result<Campaign, AppError> {
        let missing = |field: &'static str| AppError::invalid("missing_field", field, format!("`{field}` is required"));
        let id = match (self.id, path_id) {
            (Some(id), _) => id,
            (None, Some(p)) => p.to_owned(),
            (None, None) => return Err(missing("id")),
        };
        let mut steps = Vec::new();
        for (i, s) in self.steps.ok_or_else(|| missing("steps"))?.into_iter().enumerate() {
            let field = |f: &str| std::borrow::Cow::Owned(format!("steps[{i}].{f}"));
            steps.push(Step {
                delay: s.delay.ok_or_else(|| AppError::Validation {
                    code: "missing_field",
                    message: format!("`steps[{i}].delay` is required"),
                    field: Some(field("delay")),
                })?,
                body: s.body.ok_or_else(|| AppError::Validation {
                    code: "missing_field",
                    message: format!("`steps[{i}].body` is required"),
                    field: Some(field("body")),
                })?,
            });
        }
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        Ok(Campaign {
            id,
            name: self.name.ok_or_else(|| missing("name"))?,
            from: self.from,
            steps,
            stop_on_reply: self.stop_on_reply.unwrap_or(true),
            no_response_after: self.no_response_after,
            end_after_silence: self.end_after_silence,
            quiet_hours: self.quiet_hours.map(|q| CampaignQuietHours {
                start: q.start,
                end: q.end,
            }),
            timezone: self.timezone,
            daily_limit: self.daily_limit,
            agent: self.agent,
            created_at: epoch,
            updated_at: epoch,
        })
    }
}

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignResource {
    /// Its id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Our number the steps go from (`null`: the configured sender).
    pub from: Option<String>,
    /// The steps.
    pub steps: Vec<StepBody>,
    /// Whether a reply pauses the drip.
    pub stop_on_reply: bool,
    /// See the request.
    pub no_response_after: Option<String>,
    /// See the request.
    pub end_after_silence: Option<String>,
    /// See the request.
    pub quiet_hours: Option<CampaignQuietHoursBody>,
    /// See the request.
    pub timezone: Option<String>,
    /// See the request.
    pub daily_limit: Option<u32>,
    /// See the request.
    #[schema(value_type = Option<Object>)]
    pub agent: Option<AgentSpec>,
    /// Created.
    pub created_at: String,
    /// Last replaced.
    pub updated_at: String,
}

impl From<&Campaign> for CampaignResource {
    fn from(c: &Campaign) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            from: c.from.clone(),
            steps: c
                .steps
                .iter()
                .map(|s| StepBody {
                    delay: Some(s.delay.clone()),
                    body: Some(s.body.clone()),
                })
                .collect(),
            stop_on_reply: c.stop_on_reply,
            no_response_after: c.no_response_after.clone(),
            end_after_silence: c.end_after_silence.clone(),
            quiet_hours: c.quiet_hours.as_ref().map(|q| CampaignQuietHoursBody {
                start: q.start.clone(),
                end: q.end.clone(),
            }),
            timezone: c.timezone.clone(),
            daily_limit: c.daily_limit,
            agent: c.agent.clone(),
            created_at: timestamp(&c.created_at),
            updated_at: timestamp(&c.updated_at),
        }
    }
}

/// A page of campaigns, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    /// The campaigns.
    pub data: Vec<CampaignResource>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
    /// Whether there is one.
    pub has_more: bool,
}

/// `POST /v1/leads` (unknown fields are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LeadBody {
    /// The lead's phone (E.164 or national format in the default region).
    pub phone: Option<String>,
    /// The campaign to enrol in.
    pub campaign_id: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// The lead's IANA zone (quiet hours use it first).
    pub timezone: Option<String>,
    /// Other fields (strings, numbers, booleans), for `{{attributes.<key>}}`.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

fn text_field(v: Option<String>, field: &'static str) -> Result<Option<String>, AppError> {
    match v {
        Some(s) if s.chars().count() > MAX_LEAD_FIELD_CHARS || s.chars().any(char::is_control) => {
            Err(AppError::invalid(
                "invalid_field",
                field,
                format!("`{field}` must be at most {MAX_LEAD_FIELD_CHARS} characters without control characters"),
            ))
        }
        other => Ok(other),
    }
}

impl LeadBody {
    fn into_command(self, deps: &Deps) -> Result<LeadCommand, AppError> {
        let raw = self
            .phone
            .ok_or_else(|| AppError::invalid("missing_field", "phone", "`phone` is required"))?;
        let phone = crate::domain::PhoneNumber::parse(&raw, deps.config.default_region).map_err(|e| {
            AppError::invalid(
                "invalid_phone",
                "phone",
                format!("`phone` is not a valid phone number: {e}"),
            )
        })?;
        let campaign_id = self
            .campaign_id
            .ok_or_else(|| AppError::invalid("missing_field", "campaign_id", "`campaign_id` is required"))?;
        if let Some(tz) = &self.timezone {
            tz.parse::<chrono_tz::Tz>().map_err(|_| {
                AppError::invalid(
                    "invalid_timezone",
                    "timezone",
                    "`timezone` must be an IANA zone name such as America/Chicago",
                )
            })?;
        }
        let mut attributes = BTreeMap::new();
        let given = self.attributes.unwrap_or_default();
        if given.len() > MAX_ATTRIBUTES {
            return Err(AppError::invalid(
                "invalid_attributes",
                "attributes",
                format!("at most {MAX_ATTRIBUTES} attributes"),
            ));
        }
        for (k, v) in given {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    return Err(AppError::invalid(
                        "invalid_attributes",
                        "attributes",
                        "attribute values must be strings, numbers or booleans",
                    ))
                }
            };
            if k.chars().count() > 64 || text.chars().count() > MAX_LEAD_FIELD_CHARS {
                return Err(AppError::invalid(
                    "invalid_attributes",
                    "attributes",
                    format!("attribute keys are at most 64 characters, values at most {MAX_LEAD_FIELD_CHARS}"),
                ));
            }
            attributes.insert(k, text);
        }
        Ok(LeadCommand {
            campaign_id,
            lead: Lead {
                phone,
                first_name: text_field(self.first_name, "first_name")?,
                last_name: text_field(self.last_name, "last_name")?,
                email: text_field(self.email, "email")?,
                timezone: self.timezone,
                attributes,
            },
        })
    }
}

/// The answer of `POST /v1/leads`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadResource {
    /// `enr_` + ULID.
    pub enrollment_id: String,
    /// `conv_` + ULID.
    pub conversation_id: String,
    /// Step 1's message (`null` while quiet hours or the daily limit hold it).
    pub first_message_id: Option<String>,
    /// `active`, `paused`, `completed` or `stopped`.
    pub status: &'static str,
    /// When the next step is due.
    pub next_message_at: Option<String>,
    /// The phone was enrolled in this campaign already.
    pub duplicate: bool,
}

impl From<&LeadOutcome> for LeadResource {
    fn from(o: &LeadOutcome) -> Self {
        Self {
            enrollment_id: o.enrollment_id.as_str().to_owned(),
            conversation_id: o.conversation_id.as_str().to_owned(),
            first_message_id: o.first_message_id.as_ref().map(|m| m.as_str().to_owned()),
            status: o.status.as_str(),
            next_message_at: o.next_message_at.as_ref().map(timestamp),
            duplicate: o.duplicate,
        }
    }
}

/// An enrolment.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentResource {
    /// `enr_` + ULID.
    pub id: String,
    /// The campaign.
    pub campaign_id: String,
    /// The lead's phone.
    pub phone: String,
    /// Its conversation.
    pub conversation_id: String,
    /// `active`, `paused`, `completed` or `stopped`.
    pub status: &'static str,
    /// Steps sent so far.
    pub step: u32,
    /// When the next step is due (`null`: none).
    pub next_message_at: Option<String>,
    /// The steps' messages, in order.
    pub message_ids: Vec<String>,
    /// When the lead first replied.
    pub replied_at: Option<String>,
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// Enrolled.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&Enrolment> for EnrollmentResource {
    fn from(e: &Enrolment) -> Self {
        Self {
            id: e.id.as_str().to_owned(),
            campaign_id: e.campaign_id.clone(),
            phone: e.lead.phone.as_str().to_owned(),
            conversation_id: e.conversation_id.as_str().to_owned(),
            status: e.status.as_str(),
            step: e.step,
            next_message_at: e.next_message_at.as_ref().map(timestamp),
            message_ids: e.message_ids.iter().map(|m| m.as_str().to_owned()).collect(),
            replied_at: e.replied_at.as_ref().map(timestamp),
            stop_reason: e.stop_reason.clone(),
            created_at: timestamp(&e.created_at),
            updated_at: timestamp(&e.updated_at),
        }
    }
}

/// `GET /v1/campaigns/{id}/report`, from counters kept on write.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignReportResource {
    /// Leads enrolled.
    pub enrolled: i64,
    /// Active now.
    pub active: i64,
    /// Paused now.
    pub paused: i64,
    /// Completed.
    pub completed: i64,
    /// Stopped.
    pub stopped: i64,
    /// Leads that replied.
    pub replied: i64,
    /// `replied / enrolled`.
    pub reply_rate: f64,
    /// Steps sent.
    pub sent: i64,
    /// Steps delivered.
    pub delivered: i64,
    /// `delivered / sent`.
    pub delivered_rate: f64,
    /// Enrolments stopped by an opt-out.
    pub opted_out: i64,
    /// Ended conversations by outcome.
    #[schema(value_type = Object)]
    pub outcomes: BTreeMap<&'static str, i64>,
}

impl From<CampaignReport> for CampaignReportResource {
    fn from(r: CampaignReport) -> Self {
        Self {
            enrolled: r.enrolled,
            active: r.active,
            paused: r.paused,
            completed: r.completed,
            stopped: r.stopped,
            replied: r.replied,
            reply_rate: r.reply_rate,
            sent: r.sent,
            delivered: r.delivered,
            delivered_rate: r.delivered_rate,
            opted_out: r.opted_out,
            outcomes: r.outcomes,
        }
    }
}

fn ports<'a>(deps: &'a Deps, base: &'a str) -> CampaignPorts<'a> {
    CampaignPorts {
        ctx: ctx(deps, base),
        campaigns: deps.campaigns.as_ref(),
        conversations: deps.conversations.as_ref(),
        queries: deps.queries.as_ref(),
        retell: deps.retell_chats.as_deref(),
    }
}

fn enrolment_id(raw: &str) -> Result<EnrolmentId, AppError> {
    EnrolmentId::parse(raw).map_err(|_| AppError::NotFound)
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Create a campaign.
#[utoipa::path(post, path = "/v1/campaigns", request_body = CampaignBody,
    responses(
        (status = 201, description = "Created", body = CampaignResource),
        (status = 400, description = "Invalid field (an unknown template variable names the step)", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "`campaign_exists`", body = ErrorBody)))]
pub async fn post_campaign(State(deps): State<Deps>, body: JsonBody<CampaignBody>) -> Result<Response, ApiError> {
    let c = body.value.into_campaign(None)?;
    let c = create_campaign(deps.campaigns.as_ref(), c, deps.clock.now()).await?;
    Ok(json_response(StatusCode::CREATED, &CampaignResource::from(&c)))
}

/// Campaigns, by id.
#[utoipa::path(get, path = "/v1/campaigns",
    params(
        ("limit" = Option<u32>, Query, description = "1-200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses(
        (status = 200, description = "A page", body = CampaignPage),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn list_campaigns(State(deps): State<Deps>, query: QueryPairs) -> Result<Response, ApiError> {
    let limit = parse_limit(query.get("limit"))?;
    let page = list_campaigns_use_case(deps.campaigns.as_ref(), limit, query.get("cursor"))
        .await
        .map_err(cursor_error)?;
    Ok(json_response(
        StatusCode::OK,
        &CampaignPage {
            data: page.items.iter().map(CampaignResource::from).collect(),
            has_more: page.next_cursor.is_some(),
            next_cursor: page.next_cursor,
        },
    ))
}

/// One campaign.
#[utoipa::path(get, path = "/v1/campaigns/{id}",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown campaign", body = ErrorBody)))]
pub async fn get_campaign(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let c = get_campaign_use_case(deps.campaigns.as_ref(), &id).await?;
    Ok(json_response(StatusCode::OK, &CampaignResource::from(&c)))
}

/// Replace (or create) a campaign; enrolments keep their progress.
#[utoipa::path(put, path = "/v1/campaigns/{id}", request_body = CampaignBody,
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "Replaced", body = CampaignResource),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody)))]
pub async fn put_campaign(
    State(deps): State<Deps>,
    PathId(id): PathId,
    body: JsonBody<CampaignBody>,
) -> Result<Response, ApiError> {
    let c = body.value.into_campaign(Some(&id))?;
    let c = replace_campaign(deps.campaigns.as_ref(), &id, c, deps.clock.now()).await?;
    Ok(json_response(StatusCode::OK, &CampaignResource::from(&c)))
}

/// A campaign's report, read from counters kept on write (never a scan).
#[utoipa::path(get, path = "/v1/campaigns/{id}/report",
    params(("id" = String, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "The figures", body = CampaignReportResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown campaign", body = ErrorBody)))]
pub async fn get_campaign_report(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let r = campaign_report(deps.campaigns.as_ref(), deps.counters.as_ref(), &id, deps.clock.now()).await?;
    Ok(json_response(StatusCode::OK, &CampaignReportResource::from(r)))
}

/// Enrol a lead: step 1 goes at once through the send pipeline.
#[utoipa::path(post, path = "/v1/leads", request_body = LeadBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a repeat with the same body")),
    responses(
        (status = 201, description = "Enrolled; step 1 sent (or held by quiet hours)", body = LeadResource),
        (status = 200, description = "Already enrolled in this campaign (`duplicate: true`)", body = LeadResource),
        (status = 400, description = "Invalid field, or a field the campaign's steps use is missing", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown campaign", body = ErrorBody),
        (status = 409, description = "The same Idempotency-Key is still in progress", body = ErrorBody),
        (status = 422, description = "`opted_out`, or Idempotency-Key reused with another body", body = ErrorBody)))]
pub async fn post_lead(
    State(deps): State<Deps>,
    headers: HeaderMap,
    body: JsonBody<LeadBody>,
) -> Result<Response, ApiError> {
    let cmd = body.value.into_command(&deps)?;
    let base = public_base(&deps, &headers);
    let deps_ref = &deps;
    idempotent(&deps, &headers, &body.raw, "leads", || async move {
        let outcome = enrol_lead(ports(deps_ref, &base), cmd).await?;
        let status = if outcome.duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok((
            status,
            serde_json::to_value(LeadResource::from(&outcome)).unwrap_or_default(),
        ))
    })
    .await
}

/// One enrolment.
#[utoipa::path(get, path = "/v1/enrollments/{id}",
    params(("id" = String, Path, description = "`enr_` + ULID")),
    responses(
        (status = 200, description = "The enrolment", body = EnrollmentResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown enrolment", body = ErrorBody)))]
pub async fn get_enrollment(State(deps): State<Deps>, PathId(id): PathId) -> Result<Response, ApiError> {
    let id = enrolment_id(&id)?;
    let e = deps
        .campaigns
        .get_enrolment(&id)
        .await
        .map_err(AppError::from)?
        .ok_or(AppError::NotFound)?;
    Ok(json_response(StatusCode::OK, &EnrollmentResource::from(&e)))
}

/// A paused enrolment continues with its next step.
#[utoipa::path(post, path = "/v1/enrollments/{id}/resume",
    params(("id" = String, Path, description = "`enr_` + ULID")),
    responses(
        (status = 200, description = "Active again", body = EnrollmentResource),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 404, description = "Unknown enrolment", body = ErrorBody),
        (status = 409, description = "`not_paused`", body = ErrorBody)))]
pub async fn resume_enrollment(
    State(deps): State<Deps>,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let id = enrolment_id(&id)?;
    let base = public_base(&deps, &headers);
    let e = resume_enrolment(ports(&deps, &base), &id).await?;
    Ok(json_response(StatusCode::OK, &EnrollmentResource::from(&e)))
}
