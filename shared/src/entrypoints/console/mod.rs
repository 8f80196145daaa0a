//! The operator console at `/console`: server-rendered pages (`maud`) over the same use cases and
//! ports the JSON routes call, served by the admin group (the admin Lambda and smsrelay-local).
//! Not part of the OpenAPI document: these are HTML pages, not API.
//!
//! Access: sign in with an `admin` API key ([`session`]); a signed, expiring `HttpOnly`,
//! `SameSite=Strict` cookie; every form that changes something carries the session's CSRF token
//! (403 and nothing done without it); wrong keys are throttled. Every response carries the
//! security headers of [`security_headers`]. No JavaScript; the stylesheet and the charts (SVG)
//! are in the binary and the page.

pub mod chart;
pub mod session;
pub mod views;

use crate::app::campaigns::{campaign_report, get_campaign, list_campaigns};
use crate::app::conversations::{conversation_turns, reply_as_person, set_outcome};
use crate::app::health::health as health_use_case;
use crate::app::metrics::{per_hour, Metric};
use crate::app::operations::{remove_failed, retry_failed};
use crate::app::AppError;
use crate::config::Scope;
use crate::domain::{ConversationId, ConversationStatus, MessageBody, MessageId, Outcome, PhoneNumber};
use crate::entrypoints::extract::{key_scope, QueryPairs};
use crate::entrypoints::http::{ctx, error_response, public_base};
use crate::ports::ConversationFilter;
use crate::wiring::Deps;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::middleware::{from_fn, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::Markup;
use session::{Session, LOGIN_COOKIE, SESSION_COOKIE};
use views::{FailedFilter, HourRow};

/// The console's stylesheet.
const CSS: &str = include_str!("console.css");

/// Items per list page.
const PAGE: usize = 50;

/// The HTTP API routes (method, path) that send every console request to the admin function
/// (template.yaml; the template test checks them along with the route table).
pub const DEPLOYED_ROUTES: [(&str, &str); 2] = [("ANY", "/console"), ("ANY", "/console/{proxy+}")];

/// The console's routes (merged into the admin group's router).
pub fn router() -> axum::Router<Deps> {
    axum::Router::new()
        .route("/console", get(overview))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/processor/run", post(run_processor))
        .route("/console/failed", get(failed))
        .route("/console/failed/{id}/retry", post(retry))
        .route("/console/failed/{id}/delete", post(delete))
        .route("/console/messages", get(messages))
        .route("/console/messages/{id}", get(message))
        .route("/console/conversations", get(conversations))
        .route("/console/conversations/{id}", get(conversation))
        .route("/console/conversations/{id}/reply", post(reply))
        .route("/console/conversations/{id}/outcome", post(outcome))
        .route("/console/campaigns", get(campaigns))
        .route("/console/campaigns/{id}", get(campaign))
        .route("/console/assets/console.css", get(css))
        .layer(from_fn(security_headers))
}

/// The policy of every console response: no script at all, styles and images from the console
/// only, forms post only to it, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Add the security headers (and `Cache-Control: no-store` on pages) to a console response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // (search URLs carry a phone number: never send them on)
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn see_other(location: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A use-case error as a console page, with the status the JSON API would answer.
fn fail(session: Option<&Session>, e: &AppError) -> Response {
    let status = error_response(e).status();
    if status.is_server_error() {
        tracing::error!(error.message = %e, "console page failed");
    }
    page(
        status,
        views::problem(session, status.canonical_reason().unwrap_or("Error"), &e.to_string()),
    )
}

/// Whether the console is reached over HTTPS (then cookies are `Secure`): the proxy in front
/// says so (`X-Forwarded-Proto`, as API Gateway sends), or the public URL is HTTPS.
fn secure(deps: &Deps, headers: &HeaderMap) -> bool {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    forwarded || public_base(deps, headers).starts_with("https://")
}

/// A signed-in request; without a valid session a page answers 303 to the sign-in page.
pub struct Console(pub Session);

impl FromRequestParts<Deps> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, deps: &Deps) -> Result<Self, Self::Rejection> {
        session::cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|v| session::verify(&deps.config, v, deps.clock.now()))
            .map(Console)
            .ok_or_else(|| see_other("/console/login"))
    }
}

/// The fields of a form body (`application/x-www-form-urlencoded`).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &Bytes) -> Self {
        Self(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The form of a signed-in POST if its CSRF token is the session's (else answer [`csrf_refused`]).
fn checked_form(session: &Session, body: &Bytes) -> Option<Form> {
    let form = Form::parse(body);
    session::csrf_ok(session, form.get("csrf")).then_some(form)
}

/// 403 for a form without a valid CSRF token; nothing was done.
fn csrf_refused(session: &Session) -> Response {
    tracing::info!("console form refused: missing or wrong CSRF token");
    page(
        StatusCode::FORBIDDEN,
        views::problem(
            Some(session),
            "Forbidden",
            "This form has no valid CSRF token (it may be from an old page): reload the page and try again.",
        ),
    )
}

async fn css() -> Response {
    let mut resp = Response::new(Body::from(CSS));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}

async fn login_form(State(deps): State<Deps>, headers: HeaderMap) -> Response {
    login_page(&deps, &headers, StatusCode::OK, None)
}

/// The sign-in page with a fresh double-submit token (the cookie and the form's hidden field).
fn login_page(deps: &Deps, headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let token = session::random_token();
    let mut resp = page(status, views::login(&token, problem));
    let cookie = session::set_cookie(
        LOGIN_COOKIE,
        &token,
        chrono::Duration::minutes(30),
        secure(deps, headers),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn login(State(deps): State<Deps>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let token_ok = matches!(
        (session::cookie(&headers, LOGIN_COOKIE), form.get("csrf")),
        (Some(c), Some(f)) if !c.is_empty() && c.len() == f.len() && bool::from(subtle::ConstantTimeEq::ct_eq(c.as_bytes(), f.as_bytes()))
    );
    if !token_ok {
        return login_page(
            &deps,
            &headers,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired: try again."),
        );
    }
    let now = deps.clock.now();
    let client = session::client_of(&headers);
    match session::throttled(deps.counters.as_ref(), &client, now).await {
        Ok(false) => {}
        Ok(true) => {
            tracing::warn!("console sign-in throttled after repeated wrong keys");
            let mut resp = login_page(
                &deps,
                &headers,
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many wrong keys: wait a minute and try again."),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return resp;
        }
        Err(e) => return fail(None, &e),
    }
    let key = form.get("key").unwrap_or("").trim();
    match key_scope(&deps.config, key) {
        Some(Scope::Admin) => {
            let (value, s) = session::issue(key, now);
            let mut resp = see_other("/console");
            let secure = secure(&deps, &headers);
            let h = resp.headers_mut();
            for c in [
                session::set_cookie(SESSION_COOKIE, &value, s.expires_at - now, secure),
                session::set_cookie(LOGIN_COOKIE, "", chrono::Duration::zero(), secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            tracing::info!("console sign-in");
            resp
        }
        found => {
            if let Err(e) = session::count_failure(deps.counters.as_ref(), &client, now).await {
                return fail(None, &e);
            }
            let (status, text) = if found == Some(Scope::Send) {
                (
                    StatusCode::FORBIDDEN,
                    "This key has the send scope: the console needs an admin key.",
                )
            } else {
                (StatusCode::UNAUTHORIZED, "That is not an API key of this smsrelay.")
            };
            tracing::info!(status = status.as_u16(), "console sign-in refused");
            login_page(&deps, &headers, status, Some(text))
        }
    }
}

async fn logout(State(deps): State<Deps>, Console(s): Console, headers: HeaderMap, body: Bytes) -> Response {
    if checked_form(&s, &body).is_none() {
        return csrf_refused(&s);
    }
    let mut resp = see_other("/console/login");
    let c = session::set_cookie(SESSION_COOKIE, "", chrono::Duration::zero(), secure(&deps, &headers));
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The `?done=` notices that a redirect after a form carries.
fn notice(q: &QueryPairs) -> Option<&'static str> {
    match q.get("done")? {
        "retried" => Some("Retried: the message is queued again with a fresh attempt budget."),
        "removed" => Some("Removed from the failed list (the record stays for audit)."),
        "replied" => Some("Reply sent."),
        "outcome" => Some("Outcome set; the conversation has ended."),
        "ran" => Some("The processor ran."),
        _ => None,
    }
}

async fn overview(State(deps): State<Deps>, Console(s): Console, q: QueryPairs) -> Response {
    let h = match health_use_case(ctx(&deps, ""), deps.queries.as_ref()).await {
        Ok(h) => h,
        Err(e) => return fail(Some(&s), &e),
    };
    let (starts, values) = match per_hour(ctx(&deps, ""), &[Metric::Sent, Metric::Delivered], 24).await {
        Ok(v) => v,
        Err(e) => return fail(Some(&s), &AppError::from(e)),
    };
    let value = |m: usize, i: usize| values.get(m).and_then(|v| v.get(i)).copied().unwrap_or(0);
    let hours: Vec<HourRow> = starts
        .iter()
        .enumerate()
        .map(|(i, hour)| HourRow {
            hour: *hour,
            sent: value(0, i),
            delivered: value(1, i),
        })
        .collect();
    page(StatusCode::OK, views::overview(&s, &h, &hours, notice(&q)))
}

async fn run_processor(State(deps): State<Deps>, Console(s): Console, headers: HeaderMap, body: Bytes) -> Response {
    if checked_form(&s, &body).is_none() {
        return csrf_refused(&s);
    }
    let base = public_base(&deps, &headers);
    match crate::entrypoints::jobs::tick(&deps, &base, std::time::Duration::from_secs(20)).await {
        Ok(_) => see_other("/console?done=ran"),
        Err(e) => fail(Some(&s), &e),
    }
}

async fn failed(State(deps): State<Deps>, Console(s): Console, q: QueryPairs) -> Response {
    let page_read = match deps.queries.list_failed(PAGE, q.get("cursor")).await {
        Ok(p) => p,
        Err(e) => return fail(Some(&s), &AppError::from(e)),
    };
    let filter = FailedFilter {
        status: q
            .get("status")
            .filter(|v| matches!(*v, "failed" | "rate_limited"))
            .map(str::to_owned),
        code: q.get("code").and_then(|c| c.trim().parse().ok()),
    };
    let read = page_read.items.len();
    let kept: Vec<_> = page_read.items.into_iter().filter(|m| filter.keeps(m)).collect();
    page(
        StatusCode::OK,
        views::failed(&s, &kept, &filter, read, page_read.next_cursor.as_deref(), notice(&q)),
    )
}

/// A malformed id in a path is an unknown one (404), as on the JSON routes.
fn known<T, E>(parsed: Result<T, E>) -> Result<T, AppError> {
    parsed.map_err(|_| AppError::NotFound)
}

async fn retry(
    State(deps): State<Deps>,
    Console(s): Console,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if checked_form(&s, &body).is_none() {
        return csrf_refused(&s);
    }
    let base = public_base(&deps, &headers);
    let done = async {
        let id = known(MessageId::parse(&id))?;
        retry_failed(ctx(&deps, &base), &id).await?;
        Ok::<_, AppError>(id)
    };
    match done.await {
        Ok(id) => see_other(&format!("/console/messages/{}?done=retried", id.as_str())),
        Err(e) => fail(Some(&s), &e),
    }
}

async fn delete(State(deps): State<Deps>, Console(s): Console, Path(id): Path<String>, body: Bytes) -> Response {
    if checked_form(&s, &body).is_none() {
        return csrf_refused(&s);
    }
    let done = async {
        let id = known(MessageId::parse(&id))?;
        remove_failed(ctx(&deps, ""), &id).await
    };
    match done.await {
        Ok(_) => see_other("/console/failed?done=removed"),
        Err(e) => fail(Some(&s), &e),
    }
}

/// The phone of a search box (`None`: nothing searched yet).
fn searched_phone(deps: &Deps, q: &QueryPairs) -> Result<Option<PhoneNumber>, AppError> {
    match q.get("phone").map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(raw) => PhoneNumber::parse(raw, deps.config.default_region)
            .map(Some)
            .map_err(|e| AppError::invalid("invalid_phone", "phone", format!("not a valid phone number: {e}"))),
    }
}

async fn messages(State(deps): State<Deps>, Console(s): Console, q: QueryPairs) -> Response {
    let phone = match searched_phone(&deps, &q) {
        Ok(p) => p,
        Err(e) => return fail(Some(&s), &e),
    };
    let Some(phone) = phone else {
        return page(StatusCode::OK, views::messages(&s, None, &[], None, ""));
    };
    match deps
        .messages
        .list_messages_to(&phone, None, PAGE, q.get("cursor"))
        .await
    {
        Ok(p) => page(
            StatusCode::OK,
            views::messages(
                &s,
                Some(&phone.masked()),
                &p.items,
                p.next_cursor.as_deref(),
                phone.as_str(),
            ),
        ),
        Err(e) => fail(Some(&s), &AppError::from(e)),
    }
}

async fn message(State(deps): State<Deps>, Console(s): Console, Path(id): Path<String>, q: QueryPairs) -> Response {
    let found = async {
        let id = known(MessageId::parse(&id))?;
        deps.messages.get_message(&id).await?.ok_or(AppError::NotFound)
    };
    match found.await {
        Ok(m) => page(StatusCode::OK, views::message(&s, &m, notice(&q))),
        Err(e) => fail(Some(&s), &e),
    }
}

async fn conversations(State(deps): State<Deps>, Console(s): Console, q: QueryPairs) -> Response {
    let status = q
        .get("status")
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<ConversationStatus>().ok());
    let phone = match searched_phone(&deps, &q) {
        Ok(p) => p,
        Err(e) => return fail(Some(&s), &e),
    };
    let listed = match &phone {
        // A lead's conversations (the phone index), or every lead's in one status (the status index).
        Some(phone) => {
            let filter = ConversationFilter { status, outcome: None };
            deps.conversations
                .list_conversations(phone, filter, PAGE, q.get("cursor"))
                .await
        }
        None => {
            deps.conversations
                .list_conversations_by_status(status.unwrap_or(ConversationStatus::Open), PAGE, q.get("cursor"))
                .await
        }
    };
    match listed {
        Ok(p) => page(
            StatusCode::OK,
            views::conversations(
                &s,
                phone.as_ref(),
                status.unwrap_or(ConversationStatus::Open),
                &p.items,
                p.next_cursor.as_deref(),
            ),
        ),
        Err(e) => fail(Some(&s), &AppError::from(e)),
    }
}

async fn conversation(
    State(deps): State<Deps>,
    Console(s): Console,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Response {
    let found = async {
        let id = known(ConversationId::parse(&id))?;
        let c = deps
            .conversations
            .get_conversation(&id)
            .await?
            .ok_or(AppError::NotFound)?;
        let turns = conversation_turns(deps.messages.as_ref(), &c).await?;
        Ok::<_, AppError>((c, turns))
    };
    match found.await {
        Ok((c, turns)) => page(StatusCode::OK, views::conversation(&s, &c, &turns, notice(&q))),
        Err(e) => fail(Some(&s), &e),
    }
}

async fn reply(
    State(deps): State<Deps>,
    Console(s): Console,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(form) = checked_form(&s, &body) else {
        return csrf_refused(&s);
    };
    let base = public_base(&deps, &headers);
    let done = async {
        let id = known(ConversationId::parse(&id))?;
        let text = MessageBody::parse(form.get("body").unwrap_or("").to_owned())
            .map_err(|e| AppError::invalid("invalid_body", "body", e.to_string()))?;
        reply_as_person(ctx(&deps, &base), deps.conversations.as_ref(), &id, text).await?;
        Ok::<_, AppError>(id)
    };
    match done.await {
        Ok(id) => see_other(&format!("/console/conversations/{}?done=replied", id.as_str())),
        Err(e) => fail(Some(&s), &e),
    }
}

async fn outcome(State(deps): State<Deps>, Console(s): Console, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(form) = checked_form(&s, &body) else {
        return csrf_refused(&s);
    };
    let done = async {
        let id = known(ConversationId::parse(&id))?;
        let outcome = form
            .get("outcome")
            .unwrap_or("")
            .parse::<Outcome>()
            .map_err(|e| AppError::invalid("invalid_outcome", "outcome", e.to_string()))?;
        let reason = form
            .get("reason")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("set by a person in the console");
        if reason.chars().count() > 1000 || reason.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "invalid_reason",
                "reason",
                "the reason must be at most 1000 characters without control characters",
            ));
        }
        set_outcome(
            deps.conversations.as_ref(),
            &id,
            outcome,
            reason.to_owned(),
            deps.clock.now(),
        )
        .await?;
        Ok(id)
    };
    match done.await {
        Ok(id) => see_other(&format!("/console/conversations/{}?done=outcome", id.as_str())),
        Err(e) => fail(Some(&s), &e),
    }
}

async fn campaigns(State(deps): State<Deps>, Console(s): Console, q: QueryPairs) -> Response {
    match list_campaigns(deps.campaigns.as_ref(), PAGE, q.get("cursor")).await {
        Ok(p) => page(StatusCode::OK, views::campaigns(&s, &p.items, p.next_cursor.as_deref())),
        Err(e) => fail(Some(&s), &AppError::from(e)),
    }
}

async fn campaign(State(deps): State<Deps>, Console(s): Console, Path(id): Path<String>) -> Response {
    let found = async {
        let c = get_campaign(deps.campaigns.as_ref(), &id).await?;
        let r = campaign_report(deps.campaigns.as_ref(), deps.counters.as_ref(), &id, deps.clock.now()).await?;
        Ok::<_, AppError>((c, r))
    };
    match found.await {
        Ok((c, r)) => page(StatusCode::OK, views::campaign(&s, &c, &r)),
        Err(e) => fail(Some(&s), &e),
    }
}
