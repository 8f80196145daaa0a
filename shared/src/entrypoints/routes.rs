//! THE route table: every route of every function group, declared once. Each Lambda function
//! serves its groups ([`Routes`]) with `lambda_http::run(router(deps, routes))`; smsrelay-local
//! serves [`Routes::All`]. The OpenAPI document ([`super::openapi`]) and the template test read
//! the same declarations, so no second list exists.
//!
//! Adding a route: write the handler with its `#[utoipa::path(...)]` in `handlers/<group>.rs`
//! and add `.routes(routes!(handler))` to its group in [`declare`] (`v1` for routes under `/v1`,
//! which then need the API key; `open` for the others). Adding a group: a [`Group`] variant (with
//! its tag and SAM function), its arm in [`declare`], and a [`Routes`] variant for its Lambda.

use super::handlers::{admin, batches, campaigns, conversations, inbound, local, messages, public, webhooks};
use super::layers::{
    log_refusals, method_not_allowed, not_found, read_body, require_api_key, run_to_completion, Limits,
};
use crate::config::Scope;
use crate::wiring::Deps;
use axum::middleware::{from_fn, from_fn_with_state};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A set of routes served by one Lambda function (the OpenAPI tag of its routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// No auth: `GET /health`, `GET /openapi.json` (served by the send function).
    Public,
    /// Messages: send, get, list, cancel.
    Send,
    /// Twilio status callbacks.
    StatusCallback,
    /// Batches.
    Batch,
    /// Operations: failed messages, processor run, health with metrics.
    Admin,
    /// Incoming messages and Retell webhooks.
    Inbound,
    /// Campaigns, leads, enrolments and conversations.
    Campaigns,
    /// smsrelay-local only: the simulator's inbound texts. No Lambda serves it.
    Local,
}

impl Group {
    /// Every group.
    pub const ALL: [Self; 8] = [
        Self::Public,
        Self::Send,
        Self::StatusCallback,
        Self::Batch,
        Self::Admin,
        Self::Inbound,
        Self::Campaigns,
        Self::Local,
    ];

    /// The OpenAPI tag of its routes.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Send => "send",
            Self::StatusCallback => "status-callback",
            Self::Batch => "batch",
            Self::Admin => "admin",
            Self::Inbound => "inbound",
            Self::Campaigns => "campaigns",
            Self::Local => "local",
        }
    }

    /// The group of a tag.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.tag() == tag)
    }

    /// The `template.yaml` function that serves it (`None`: smsrelay-local only).
    pub fn function(self) -> Option<&'static str> {
        match self {
            Self::Public | Self::Send => Some("SendFunction"),
            Self::StatusCallback => Some("StatusCallbackFunction"),
            Self::Batch => Some("BatchFunction"),
            Self::Admin => Some("AdminFunction"),
            Self::Inbound => Some("InboundFunction"),
            Self::Campaigns => Some("CampaignsFunction"),
            Self::Local => None,
        }
    }
}

/// Which groups a deployment serves: one Lambda function its own; smsrelay-local all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Every group (smsrelay-local).
    All,
    /// The send function: [`Group::Send`] and [`Group::Public`].
    Send,
    /// The status-callback function.
    StatusCallback,
    /// The admin function.
    Admin,
    /// The batch function.
    Batch,
    /// The inbound function (Twilio inbound, Retell).
    Inbound,
    /// The campaigns function (campaigns, leads, enrolments, conversations).
    Campaigns,
}

impl Routes {
    /// The groups served.
    pub fn groups(self) -> &'static [Group] {
        match self {
            Self::All => &Group::ALL,
            Self::Send => &[Group::Send, Group::Public],
            Self::StatusCallback => &[Group::StatusCallback],
            Self::Admin => &[Group::Admin],
            Self::Batch => &[Group::Batch],
            Self::Inbound => &[Group::Inbound],
            Self::Campaigns => &[Group::Campaigns],
        }
    }
}

/// A group's declarations: `open` routes answer anyone (webhooks check their own signature);
/// `v1` routes need a bearer key of the `admin` scope, `send` ones a key of any scope (messages,
/// batches, leads: what a form that only sends needs).
struct Declared {
    open: OpenApiRouter<Deps>,
    v1: OpenApiRouter<Deps>,
    send: OpenApiRouter<Deps>,
}

fn declare(group: Group) -> Declared {
    let open = OpenApiRouter::new();
    let v1 = OpenApiRouter::new();
    let send = OpenApiRouter::new();
    match group {
        Group::Public => Declared {
            open: open
                .routes(routes!(public::health))
                .routes(routes!(public::openapi_json)),
            v1,
            send,
        },
        Group::Send => Declared {
            open,
            v1,
            send: send
                .routes(routes!(messages::post_message, messages::list_messages))
                .routes(routes!(messages::get_message))
                .routes(routes!(messages::cancel_message))
                .routes(routes!(messages::cancel_by_ref)),
        },
        Group::StatusCallback => Declared {
            open: open.routes(routes!(webhooks::twilio_status)),
            v1,
            send,
        },
        Group::Batch => Declared {
            open,
            v1,
            send: send
                .routes(routes!(batches::post_batch))
                .routes(routes!(batches::get_batch)),
        },
        Group::Admin => Declared {
            open,
            v1: v1
                .routes(routes!(admin::list_failed))
                .routes(routes!(admin::remove_failed))
                .routes(routes!(admin::retry_failed))
                .routes(routes!(admin::run_processor))
                .routes(routes!(admin::v1_health))
                .routes(routes!(admin::get_consent, admin::post_consent)),
            send,
        },
        Group::Inbound => Declared {
            open: open
                .routes(routes!(inbound::twilio_inbound))
                .routes(routes!(inbound::retell)),
            v1,
            send,
        },
        Group::Campaigns => Declared {
            open,
            v1: v1
                .routes(routes!(campaigns::post_campaign, campaigns::list_campaigns))
                .routes(routes!(campaigns::get_campaign, campaigns::put_campaign))
                .routes(routes!(campaigns::get_campaign_report))
                .routes(routes!(campaigns::get_enrollment))
                .routes(routes!(campaigns::resume_enrollment))
                .routes(routes!(conversations::list_conversations))
                .routes(routes!(conversations::get_conversation))
                .routes(routes!(conversations::post_conversation_message))
                .routes(routes!(conversations::post_conversation_outcome)),
            send: send.routes(routes!(campaigns::post_lead)),
        },
        Group::Local => Declared {
            open,
            v1: v1.routes(routes!(local::simulator_inbound)),
            send,
        },
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// Tag every operation with `group`, and mark the `/v1` ones as needing the bearer key.
fn document_group(router: &mut OpenApiRouter<Deps>, group: Group, bearer: bool) {
    for item in router.get_openapi_mut().paths.paths.values_mut() {
        for op in operations(item) {
            op.tags = Some(vec![group.tag().to_owned()]);
            if bearer {
                op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            }
        }
    }
}

/// The documented routes of `group`, without layers or state (the document is built from this).
pub fn api(group: Group) -> OpenApiRouter<Deps> {
    let Declared {
        mut open,
        mut v1,
        mut send,
    } = declare(group);
    document_group(&mut open, group, false);
    document_group(&mut v1, group, true);
    document_group(&mut send, group, true);
    open.merge(v1).merge(send)
}

/// The scope a `/v1` route needs (`None`: an open route or no such route), read from the same
/// declarations the routers use.
pub fn needed_scope(method: &str, path: &str) -> Option<Scope> {
    let has = |r: &mut OpenApiRouter<Deps>| {
        r.get_openapi_mut().paths.paths.get_mut(path).is_some_and(|item| {
            let m = match method {
                "GET" => &item.get,
                "PUT" => &item.put,
                "POST" => &item.post,
                "DELETE" => &item.delete,
                "PATCH" => &item.patch,
                _ => &None,
            };
            m.is_some()
        })
    };
    Group::ALL.into_iter().find_map(|g| {
        let Declared { mut v1, mut send, .. } = declare(g);
        if has(&mut send) {
            Some(Scope::Send)
        } else if has(&mut v1) {
            Some(Scope::Admin)
        } else {
            None
        }
    })
}

/// The router of a deployment: its groups' routes with the bearer key on `/v1`, JSON 404 and
/// 405 (with `Allow`; HEAD is answered on every GET route), the size limits and body timeout,
/// and one log line per refused request.
pub fn router(deps: Deps, routes: Routes) -> axum::Router {
    let mut app = axum::Router::new();
    for &group in routes.groups() {
        let Declared { open, v1, send } = declare(group);
        let (open, _) = open.split_for_parts();
        app = app.merge(open);
        for (routes, scope) in [(v1, Scope::Admin), (send, Scope::Send)] {
            let (routes, _) = routes.split_for_parts();
            if routes.has_routes() {
                // (axum refuses a route layer on a router without routes)
                app = app.merge(routes.route_layer(from_fn_with_state((deps.clone(), scope), require_api_key)));
            }
        }
        if group == Group::Admin {
            app = app.merge(super::console::router());
        }
    }
    let limits = Limits::from_config(&deps.config);
    let app = app.method_not_allowed_fallback(method_not_allowed).fallback(not_found);
    let app = if deps.config.detach_requests {
        app.layer(from_fn(run_to_completion))
    } else {
        app
    };
    app.layer(from_fn_with_state(limits, read_body))
        .layer(from_fn(log_refusals))
        .with_state(deps)
}

/// One route of the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// Upper-case method, e.g. `POST`.
    pub method: String,
    /// Path with `{param}`s, e.g. `/v1/messages/{id}`.
    pub path: String,
    /// Its group's tag.
    pub group: &'static str,
}

/// Every route of every group, sorted (read from the same declarations the routers use).
pub fn route_table() -> Vec<Route> {
    let mut out = Vec::new();
    for group in Group::ALL {
        let mut doc = api(group).into_openapi();
        for (path, item) in &mut doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("HEAD", item.head.is_some()),
                ("TRACE", item.trace.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    out.push(Route {
                        method: method.to_owned(),
                        path: path.clone(),
                        group: group.tag(),
                    });
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_routes_and_only_they_need_the_key() {
        for group in Group::ALL {
            let Declared {
                mut open,
                mut v1,
                mut send,
            } = declare(group);
            for p in open.to_openapi().paths.paths.keys() {
                assert!(!p.starts_with("/v1"), "{p} is under /v1 but declared open");
            }
            for p in v1
                .to_openapi()
                .paths
                .paths
                .keys()
                .chain(send.to_openapi().paths.paths.keys())
            {
                assert!(p.starts_with("/v1/"), "{p} is declared v1 but is not under /v1");
            }
        }
    }

    #[test]
    fn messages_batches_and_leads_need_only_the_send_scope_and_the_rest_admin() {
        for (method, path) in [
            ("POST", "/v1/messages"),
            ("GET", "/v1/messages/{id}"),
            ("POST", "/v1/batches"),
            ("GET", "/v1/batches/{id}"),
            ("POST", "/v1/leads"),
        ] {
            assert_eq!(needed_scope(method, path), Some(Scope::Send), "{method} {path}");
        }
        for (method, path) in [
            ("GET", "/v1/failed-messages"),
            ("DELETE", "/v1/failed-messages/{id}"),
            ("GET", "/v1/health"),
            ("POST", "/v1/campaigns"),
            ("GET", "/v1/conversations"),
            ("POST", "/v1/simulator/inbound"),
        ] {
            assert_eq!(needed_scope(method, path), Some(Scope::Admin), "{method} {path}");
        }
        assert_eq!(needed_scope("GET", "/health"), None);
    }

    #[test]
    fn every_group_has_a_distinct_tag_and_every_route_one_group() {
        let table = route_table();
        assert!(table.len() >= 15, "{table:?}");
        let mut keys: Vec<(String, String)> = table.iter().map(|r| (r.method.clone(), r.path.clone())).collect();
        keys.dedup();
        assert_eq!(keys.len(), table.len(), "a route is in two groups");
        for g in Group::ALL {
            assert_eq!(Group::from_tag(g.tag()), Some(g));
        }
        assert!(table.iter().any(|r| r.path == "/openapi.json" && r.group == "public"));
    }
}
