//! The HTTP contract of api.md, served identically by API Gateway (one Lambda per route group)
//! and by `smsrelay-local` (every group). The single place that maps `AppError` to a response.
//!
//! Order of checks on every request: body size (413) → auth: bearer key (401) or provider
//! signature (403) → parse (400) → use case. Nothing reaches the store or the provider before
//! all of them pass.

use super::resources::message_resource;
use crate::adapters::twilio::validate_signature;
use crate::app::health::{health, quick_status};
use crate::app::operations::{cancel_by_ref, cancel_message, remove_failed, retry_failed};
use crate::app::process_due::process_due;
use crate::app::record_status::{record_status, StatusCallback};
use crate::app::send::{send_message, SendRequest};
use crate::app::send_batch::{batch_summary, send_batch, BatchRequest};
use crate::app::{AppError, Ctx};
use crate::config::MAX_BODY_BYTES;
use crate::domain::{MessageId, MessageStatus, PhoneNumber, ProviderSid};
use crate::ports::{Begin, SavedResponse};
use crate::wiring::Deps;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A request with its whole body.
pub type HttpRequest = Request<Bytes>;
/// A response with its whole body.
pub type HttpResponse = Response<Bytes>;

/// Which routes a deployment serves: one Lambda function serves one group; local serves all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Everything (smsrelay-local).
    All,
    /// `POST /v1/messages`, `GET /v1/messages[/{id}]`, `GET /health`.
    Send,
    /// `POST /webhooks/twilio/status`.
    StatusCallback,
    /// `/v1/failed-messages…`, `POST /v1/processor/run`, `GET /v1/health`.
    Admin,
    /// `POST /v1/batches`, `GET /v1/batches/{id}`.
    Batch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Send,
    StatusCallback,
    Admin,
    Batch,
    Public,
}

impl Routes {
    fn allows(self, group: Group) -> bool {
        match self {
            Self::All => true,
            Self::Send => matches!(group, Group::Send | Group::Public),
            Self::StatusCallback => matches!(group, Group::StatusCallback),
            Self::Admin => matches!(group, Group::Admin),
            Self::Batch => matches!(group, Group::Batch),
        }
    }
}

/// Handle one request; never panics and never answers 500 for bad input.
pub async fn handle(deps: &Deps, routes: Routes, req: HttpRequest) -> HttpResponse {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match route(deps, routes, req).await {
        Ok(resp) => resp,
        Err(e) => {
            log_error(&method, &path, &e);
            error_response(&e)
        }
    }
}

async fn route(deps: &Deps, routes: Routes, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if req.body().len() > MAX_BODY_BYTES {
        return Err(AppError::PayloadTooLarge(format!(
            "request body is over {} KiB",
            MAX_BODY_BYTES / 1024
        )));
    }
    let segments: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let (group, allowed): (Group, &[Method]) = match seg.as_slice() {
        ["health"] => (Group::Public, &[Method::GET]),
        ["v1", "health"] => (Group::Admin, &[Method::GET]),
        ["v1", "messages"] => (Group::Send, &[Method::GET, Method::POST]),
        ["v1", "messages", "cancel"] => (Group::Send, &[Method::POST]),
        ["v1", "messages", _] => (Group::Send, &[Method::GET]),
        ["v1", "messages", _, "cancel"] => (Group::Send, &[Method::POST]),
        ["v1", "batches"] => (Group::Batch, &[Method::POST]),
        ["v1", "batches", _] => (Group::Batch, &[Method::GET]),
        ["v1", "failed-messages"] => (Group::Admin, &[Method::GET]),
        ["v1", "failed-messages", _] => (Group::Admin, &[Method::DELETE]),
        ["v1", "failed-messages", _, "retry"] => (Group::Admin, &[Method::POST]),
        ["v1", "processor", "run"] => (Group::Admin, &[Method::POST]),
        ["webhooks", "twilio", "status"] => (Group::StatusCallback, &[Method::POST]),
        _ => return Err(AppError::NotFound),
    };
    if !routes.allows(group) {
        return Err(AppError::NotFound);
    }
    if !allowed.contains(&method) {
        return Ok(json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": {"code": "method_not_allowed", "message": format!("{method} is not allowed here")}}),
        ));
    }
    if seg.first() == Some(&"v1") {
        authorize(deps, req.headers())?;
    }
    match (seg.as_slice(), method) {
        (["health"], _) => {
            let status = match quick_status(ctx(deps, "")).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error.message = %e, "health check could not read its figures");
                    "degraded"
                }
            };
            Ok(json_response(StatusCode::OK, &health_body(deps, status, None)))
        }
        (["v1", "health"], _) => {
            let h = health(ctx(deps, ""), deps.queries.as_ref()).await?;
            let extra = json!({"metrics": h.metrics, "alerts": h.alerts});
            Ok(json_response(StatusCode::OK, &health_body(deps, h.status, Some(extra))))
        }
        (["v1", "messages"], Method::POST) => post_message(deps, &req).await,
        (["v1", "messages"], _) => list_messages(deps, &req).await,
        (["v1", "messages", "cancel"], _) => {
            #[derive(serde::Deserialize)]
            struct CancelByRef {
                #[serde(rename = "ref")]
                reference: Option<crate::domain::Ref>,
            }
            let body: CancelByRef = parse_json(&req)?;
            let reference = body
                .reference
                .filter(|r| !r.kind.is_empty() && !r.id.is_empty())
                .ok_or_else(|| AppError::invalid("missing_field", "ref", "`ref` with `type` and `id` is required"))?;
            let n = cancel_by_ref(ctx(deps, ""), deps.queries.as_ref(), &reference).await?;
            Ok(json_response(StatusCode::OK, &json!({ "canceled": n })))
        }
        (["v1", "messages", id], _) => get_message(deps, id).await,
        (["v1", "messages", id, "cancel"], _) => {
            let id = MessageId::parse(id).map_err(|_| AppError::NotFound)?;
            let m = cancel_message(ctx(deps, &public_base(deps, req.headers())), &id).await?;
            Ok(json_response(StatusCode::OK, &message_resource(&m)))
        }
        (["v1", "batches"], _) => {
            let request: BatchRequest = parse_json(&req)?;
            let base = public_base(deps, req.headers());
            let ctx = ctx(deps, &base);
            idempotent(deps, &req, "batches", || async {
                let body = send_batch(ctx, request, BATCH_BUDGET).await?;
                Ok(json_response(StatusCode::OK, &body))
            })
            .await
        }
        (["v1", "batches", id], _) => {
            let summary = batch_summary(ctx(deps, ""), id).await?.ok_or(AppError::NotFound)?;
            Ok(json_response(StatusCode::OK, &summary))
        }
        (["v1", "failed-messages"], _) => list_failed(deps, &req).await,
        (["v1", "failed-messages", id], _) => {
            let id = MessageId::parse(id).map_err(|_| AppError::NotFound)?;
            remove_failed(ctx(deps, ""), &id).await?;
            Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Bytes::new())
                .unwrap_or_default())
        }
        (["v1", "failed-messages", id, "retry"], _) => {
            let id = MessageId::parse(id).map_err(|_| AppError::NotFound)?;
            let m = retry_failed(ctx(deps, ""), &id).await?;
            Ok(json_response(StatusCode::ACCEPTED, &message_resource(&m)))
        }
        (["v1", "processor", "run"], _) => {
            let base = public_base(deps, req.headers());
            let report = process_due(
                ctx(deps, &base),
                deps.queries.as_ref(),
                deps.retention.as_ref(),
                PROCESSOR_BUDGET,
            )
            .await?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(report).unwrap_or_default(),
            ))
        }
        (["webhooks", "twilio", "status"], _) => twilio_status(deps, &req).await,
        _ => Err(AppError::NotFound),
    }
}

fn health_body(deps: &Deps, status: &str, extra: Option<Value>) -> Value {
    let mut body = json!({"status": status, "version": env!("CARGO_PKG_VERSION"), "time": super::resources::timestamp(&deps.clock.now())});
    if let (Some(Value::Object(more)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.extend(more);
    }
    body
}

/// Bearer key check, constant time (both sides hashed first so length leaks nothing either).
fn authorize(deps: &Deps, headers: &HeaderMap) -> Result<(), AppError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AppError::Unauthorized)?;
    let a = Sha256::digest(given.trim().as_bytes());
    let b = Sha256::digest(deps.config.api_key.expose_secret().as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(req.body());
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return AppError::Validation {
                code: "invalid_json",
                message: "request body is not valid JSON".to_owned(),
                field: None,
            };
        }
        // serde's own text quotes the offending value (possibly a phone number): name the field only.
        let path = e.path().to_string();
        AppError::Validation {
            code: "invalid_json",
            message: if path == "." {
                "request body must be a JSON object".to_owned()
            } else {
                format!("`{path}` has the wrong type")
            },
            field: None,
        }
    })
}

async fn post_message(deps: &Deps, req: &HttpRequest) -> Result<HttpResponse, AppError> {
    let request: SendRequest = parse_json(req)?;
    let cmd = request.validate(
        deps.config.default_region,
        &deps.config.default_sender,
        deps.clock.now(),
    )?;
    let base = public_base(deps, req.headers());
    let ctx = ctx(deps, &base);
    idempotent(deps, req, "messages", || async {
        let outcome = send_message(ctx, cmd).await?;
        let mut body = message_resource(&outcome.message);
        if let (Some(w), Some(obj)) = (outcome.warning, body.as_object_mut()) {
            obj.insert("warning".to_owned(), json!(w));
        }
        Ok(json_response(StatusCode::ACCEPTED, &body))
    })
    .await
}

/// Run `work` under the request's `Idempotency-Key`, if it has one (api.md "Conventions"):
/// a repeat with the same body replays the first response (`Idempotent-Replayed: true`), a
/// different body is 422 `idempotency_key_reused`, a repeat while the first runs is 409.
/// Input is validated before this is called, so a 400 never claims a key.
async fn idempotent<F, Fut>(deps: &Deps, req: &HttpRequest, scope: &str, work: F) -> Result<HttpResponse, AppError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse, AppError>>,
{
    let Some(raw) = req.headers().get("idempotency-key") else {
        return work().await;
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            AppError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })?;
    let key = format!("{scope}:{key}");
    let hash = hex(&Sha256::digest(req.body()));
    let now = deps.clock.now();
    match deps.idempotency.begin(&key, &hash, now).await? {
        Begin::Replay(saved) => {
            let mut resp = Response::new(Bytes::from(saved.body));
            *resp.status_mut() = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
        Begin::InProgress => Err(AppError::Conflict {
            code: "request_in_progress",
            message: "a request with this Idempotency-Key is still in progress".to_owned(),
        }),
        Begin::Mismatch => Err(AppError::Refused {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request body".to_owned(),
        }),
        Begin::Started => match work().await {
            Ok(resp) => {
                let saved = SavedResponse {
                    status: resp.status().as_u16(),
                    body: String::from_utf8_lossy(resp.body()).into_owned(),
                };
                if let Err(e) = deps.idempotency.complete(&key, &hash, &saved, deps.clock.now()).await {
                    tracing::error!(error.message = %e, "could not save the idempotent response; a repeat will wait for the lease");
                }
                Ok(resp)
            }
            Err(e) => {
                if let Err(re) = deps.idempotency.release(&key).await {
                    tracing::warn!(error.message = %re, "could not release the idempotency key");
                }
                Err(e)
            }
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long `POST /v1/batches` sends before leaving the rest to the retry queue (API Gateway
/// answers within 29 s).
const BATCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// How long `POST /v1/processor/run` may work before leaving the rest for the next tick.
const PROCESSOR_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// Borrow the use-case context from the dependencies.
pub fn ctx<'a>(deps: &'a Deps, base: &'a str) -> Ctx<'a> {
    deps.ctx(base)
}

/// The decoded `?name=value` pairs of a request's query string.
fn query_params(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// The first value of `name` among decoded pairs.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

async fn list_failed(deps: &Deps, req: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = query_params(req);
    let get = |k: &str| param(&query, k);
    let limit = parse_limit(get("limit"))?;
    let page = deps
        .queries
        .list_failed(limit, get("cursor"))
        .await
        .map_err(cursor_error)?;
    let data: Vec<Value> = page.items.iter().map(message_resource).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"data": data, "has_more": page.next_cursor.is_some(), "next_cursor": page.next_cursor}),
    ))
}

fn cursor_error(e: crate::ports::StoreError) -> AppError {
    match e {
        crate::ports::StoreError::Corrupt(_) => AppError::invalid("invalid_cursor", "cursor", "cursor is not valid"),
        other => AppError::from(other),
    }
}

async fn get_message(deps: &Deps, raw_id: &str) -> Result<HttpResponse, AppError> {
    let id = MessageId::parse(raw_id).map_err(|_| AppError::NotFound)?;
    let message = deps.messages.get_message(&id).await?.ok_or(AppError::NotFound)?;
    Ok(json_response(StatusCode::OK, &message_resource(&message)))
}

async fn list_messages(deps: &Deps, req: &HttpRequest) -> Result<HttpResponse, AppError> {
    let query = query_params(req);
    let get = |k: &str| param(&query, k);
    let to_raw =
        get("to").ok_or_else(|| AppError::invalid("missing_field", "to", "`to` is required to list messages"))?;
    let to = PhoneNumber::parse(to_raw, deps.config.default_region)
        .map_err(|e| AppError::invalid("invalid_phone", "to", format!("`to` is not a valid phone number: {e}")))?;
    let status = get("status")
        .map(|s| {
            s.parse::<MessageStatus>()
                .map_err(|_| AppError::invalid("invalid_status", "status", "unknown status"))
        })
        .transpose()?;
    let limit = parse_limit(get("limit"))?;
    let page = deps
        .messages
        .list_messages_to(&to, status, limit, get("cursor"))
        .await
        .map_err(cursor_error)?;
    let data: Vec<Value> = page.items.iter().map(message_resource).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"data": data, "has_more": page.next_cursor.is_some(), "next_cursor": page.next_cursor}),
    ))
}

/// `?limit=` is 1–200, default 50 (api.md "Lists").
fn parse_limit(raw: Option<&str>) -> Result<usize, AppError> {
    match raw {
        None => Ok(50),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => Ok(n),
            _ => Err(AppError::invalid(
                "invalid_limit",
                "limit",
                "`limit` must be between 1 and 200",
            )),
        },
    }
}

/// The base URL the provider calls (and signs): the configured public URL, else what the request says.
pub fn public_base(deps: &Deps, headers: &HeaderMap) -> String {
    if let Some(u) = &deps.config.public_url {
        return u.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("https");
    format!("{proto}://{host}")
}

/// Check `X-Twilio-Signature` over the URL Twilio called and the form parameters.
fn verify_twilio(deps: &Deps, req: &HttpRequest) -> Result<Vec<(String, String)>, AppError> {
    let signature = req
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::Forbidden)?;
    let mut url = format!("{}{}", public_base(deps, req.headers()), req.uri().path());
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.body()).into_owned().collect();
    let token = deps.config.webhook_auth_token();
    if validate_signature(token.expose_secret(), &url, &params, signature) {
        Ok(params)
    } else {
        Err(AppError::Forbidden)
    }
}

async fn twilio_status(deps: &Deps, req: &HttpRequest) -> Result<HttpResponse, AppError> {
    let params = verify_twilio(deps, req)?;
    let get = |k: &str| param(&params, k).map(str::to_owned);
    let sid_raw = get("MessageSid")
        .or_else(|| get("SmsSid"))
        .ok_or_else(|| AppError::invalid("missing_field", "MessageSid", "MessageSid is required"))?;
    let sid = ProviderSid::parse(&sid_raw)
        .map_err(|_| AppError::invalid("invalid_sid", "MessageSid", "MessageSid is not valid"))?;
    let status = get("MessageStatus")
        .or_else(|| get("SmsStatus"))
        .ok_or_else(|| AppError::invalid("missing_field", "MessageStatus", "MessageStatus is required"))?;
    let error_code = match get("ErrorCode").filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| AppError::invalid("invalid_error_code", "ErrorCode", "ErrorCode must be a number"))?,
        ),
        None => None,
    };
    let query = query_params(req);
    let message_id = param(&query, "message_id").and_then(|v| MessageId::parse(v).ok());
    let cb = StatusCallback {
        message_id,
        sid,
        status,
        error_code,
        error_message: get("ErrorMessage"),
    };
    let base = public_base(deps, req.headers());
    let outcome = record_status(ctx(deps, &base), cb).await?;
    tracing::info!(?outcome, "status callback applied");
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Bytes::from_static(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        ))
        .unwrap_or_else(|_| Response::new(Bytes::new())))
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut resp = Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The one mapping from `AppError` to status and body (api.md "Errors").
pub fn error_response(e: &AppError) -> HttpResponse {
    let (status, code, field): (StatusCode, &str, Option<&str>) = match e {
        AppError::Validation { code, field, .. } => (StatusCode::BAD_REQUEST, code, *field),
        AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
        AppError::Forbidden => (StatusCode::FORBIDDEN, "invalid_signature", None),
        AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
        AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code, None),
        AppError::Refused { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code, None),
        AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
        AppError::Transient(_) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", None),
        AppError::Unexpected(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
    };
    let mut err = json!({"code": code, "message": e.to_string()});
    if let (Some(f), Some(obj)) = (field, err.as_object_mut()) {
        obj.insert("field".to_owned(), json!(f));
    }
    let mut resp = json_response(status, &json!({ "error": err }));
    if matches!(e, AppError::Transient(_) | AppError::Conflict { .. }) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn log_error(method: &Method, path: &str, e: &AppError) {
    match e {
        AppError::Transient(_) | AppError::Unexpected(_) => {
            tracing::error!(%method, path, error.message = %e, error.cause_chain = ?e, "request failed");
        }
        _ => tracing::info!(%method, path, error.message = %e, "request refused"),
    }
}
