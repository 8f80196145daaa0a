//! The console's pages, server-rendered with `maud` (escaped by default). Lists show phone
//! numbers masked (`+1415***0100`); only a message's own page shows its full number.

use super::chart;
use super::session::Session;
use crate::app::campaigns::CampaignReport;
use crate::app::health::Health;
use crate::domain::{Campaign, Conversation, ConversationStatus, Direction, Message, Outcome, PhoneNumber, Turn};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Which section of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Health and the 24-hour chart.
    Overview,
    /// The failed list.
    Failed,
    /// Messages by phone.
    Messages,
    /// Conversations by phone.
    Conversations,
    /// Campaigns and their reports.
    Campaigns,
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// The `<head>` of every page.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · smsrelay console" }
            link rel="stylesheet" href="/console/assets/console.css";
        }
    }
}

/// The frame of every signed-in page.
pub fn layout(title: &str, nav: Nav, session: &Session, notice: Option<&str>, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=[(n == nav).then_some("current")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    strong.brand { "smsrelay" }
                    nav {
                        (item(Nav::Overview, "/console", "Overview"))
                        (item(Nav::Failed, "/console/failed", "Failed messages"))
                        (item(Nav::Messages, "/console/messages", "Messages"))
                        (item(Nav::Conversations, "/console/conversations", "Conversations"))
                        (item(Nav::Campaigns, "/console/campaigns", "Campaigns"))
                    }
                    form.signout method="post" action="/console/logout" {
                        (csrf_field(session))
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(n) = notice { p.notice role="status" { (n) } }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page (`token`: the form's double-submit token).
pub fn login(token: &str, problem: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body.login {
                main {
                    h1 { "smsrelay console" }
                    p { "Sign in with an API key of the " code { "admin" } " scope. smsrelay-local prints its key when it starts." }
                    @if let Some(p) = problem { p.error role="alert" { (p) } }
                    form method="post" action="/console/login" {
                        input type="hidden" name="csrf" value=(token);
                        label for="key" { "API key" }
                        input #key type="password" name="key" autocomplete="current-password" required autofocus;
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// An error inside the console.
pub fn problem(session: Option<&Session>, title: &str, message: &str) -> Markup {
    match session {
        Some(s) => layout(
            title,
            Nav::Overview,
            s,
            None,
            html! { p.error role="alert" { (message) } },
        ),
        None => html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { main { h1 { (title) } p.error role="alert" { (message) } p { a href="/console/login" { "Sign in" } } } }
            }
        },
    }
}

/// One hour of the overview table.
pub struct HourRow {
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Accepted by the provider.
    pub sent: i64,
    /// Delivered.
    pub delivered: i64,
}

fn rate(a: i64, b: i64) -> String {
    if b <= 0 {
        return "–".to_owned();
    }
    #[allow(clippy::cast_precision_loss)]
    let r = a as f64 * 100.0 / b as f64;
    format!("{r:.0}%")
}

/// Overview: health, the 24-hour chart and table, the processor.
pub fn overview(session: &Session, health: &Health, hours: &[HourRow], notice: Option<&str>) -> Markup {
    let labels: Vec<String> = hours.iter().map(|h| h.hour.format("%H:00").to_string()).collect();
    let sent: Vec<i64> = hours.iter().map(|h| h.sent).collect();
    let delivered: Vec<i64> = hours.iter().map(|h| h.delivered).collect();
    let svg = chart::lines(
        "Messages per hour, last 24 hours (UTC)",
        &labels,
        &[
            chart::Line {
                name: "sent",
                color: chart::BLUE,
                values: &sent,
            },
            chart::Line {
                name: "delivered",
                color: chart::GREEN,
                values: &delivered,
            },
        ],
    );
    let (total_sent, total_delivered) = (sent.iter().sum::<i64>(), delivered.iter().sum::<i64>());
    let last_run = health
        .metrics
        .get("processor_last_run_at")
        .and_then(|v| v.as_str())
        .unwrap_or("never");
    layout(
        "Overview",
        Nav::Overview,
        session,
        notice,
        html! {
            section.cards {
                div.card { span.label { "Status" } span #health-status class=(format!("value status-{}", health.status)) { (health.status) } }
                div.card { span.label { "Sent, 24 h" } span.value { (total_sent) } }
                div.card { span.label { "Delivery rate, 24 h" } span.value { (rate(total_delivered, total_sent)) } }
                div.card { span.label { "Processor last run" } span.value.small #processor-last-run { (last_run) } }
            }
            section {
                h2 { "Alerts" }
                @if health.alerts.is_empty() { p { "None raised." } }
                @else { ul.alerts { @for a in &health.alerts { li { (a) } } } }
            }
            section {
                figure.chart #hourly-chart { (PreEscaped(svg)) }
                form method="post" action="/console/processor/run" {
                    (csrf_field(session))
                    button type="submit" { "Run the processor now" }
                }
            }
            section {
                h2 { "Metrics" }
                table {
                    thead { tr { th { "Metric" } th { "Value" } } }
                    tbody {
                        @for (k, v) in &health.metrics {
                            tr { td { (k) } td { (v.to_string().trim_matches('"')) } }
                        }
                    }
                }
            }
            section {
                h2 { "Per hour" }
                table {
                    thead { tr { th { "Hour (UTC)" } th { "Sent" } th { "Delivered" } th { "Delivery rate" } } }
                    tbody {
                        @for h in hours.iter().rev() {
                            tr { td { (h.hour.format("%Y-%m-%d %H:00")) } td { (h.sent) } td { (h.delivered) } td { (rate(h.delivered, h.sent)) } }
                        }
                    }
                }
            }
        },
    )
}

/// Filters of the failed list.
#[derive(Debug, Default, Clone)]
pub struct FailedFilter {
    /// `failed` or `rate_limited`.
    pub status: Option<String>,
    /// A provider error code.
    pub code: Option<u32>,
}

impl FailedFilter {
    /// Whether `m` passes.
    pub fn keeps(&self, m: &Message) -> bool {
        self.status.as_deref().is_none_or(|s| m.status.as_str() == s)
            && self.code.is_none_or(|c| m.error.as_ref().is_some_and(|e| e.code == c))
    }
}

/// The failed list with retry and delete buttons.
pub fn failed(
    session: &Session,
    items: &[Message],
    filter: &FailedFilter,
    read: usize,
    next: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let status = filter.status.as_deref().unwrap_or("");
    layout(
        "Failed messages",
        Nav::Failed,
        session,
        notice,
        html! {
            form.filters method="get" action="/console/failed" {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[status.is_empty()] { "any" }
                    option value="failed" selected[status == "failed"] { "failed" }
                    option value="rate_limited" selected[status == "rate_limited"] { "rate_limited" }
                }
                label for="code" { "Error code" }
                input #code type="text" name="code" inputmode="numeric" size="7" value=[filter.code];
                button type="submit" { "Filter" }
            }
            p.hint { "Filters apply to the " (read) " most recently changed messages on the list." }
            @if items.is_empty() { p #empty { "No failed messages." } }
            @else {
                table #failed {
                    thead { tr { th { "Message" } th { "To" } th { "Status" } th { "Reason" } th { "Attempts" } th { "Last error" } th { "Changed" } th {} } }
                    tbody {
                        @for m in items {
                            tr data-id=(m.id.as_str()) {
                                td { a href=(format!("/console/messages/{}", m.id.as_str())) { code { (m.id.as_str()) } } }
                                td { (m.to.masked()) }
                                td { span class=(format!("badge {}", m.status.as_str())) { (m.status.as_str()) } }
                                td { (reason(m)) }
                                td { (m.attempts) }
                                td { @if let Some(e) = &m.error { (e.code) ": " (e.message) } @else { "–" } }
                                td { (time(m.updated_at)) }
                                td.actions {
                                    form method="post" action=(format!("/console/failed/{}/retry", m.id.as_str())) {
                                        (csrf_field(session))
                                        button.retry type="submit" { "Retry" }
                                    }
                                    form method="post" action=(format!("/console/failed/{}/delete", m.id.as_str())) {
                                        (csrf_field(session))
                                        button.danger type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next { p { a href=(format!("/console/failed?cursor={}", urlencode(c))) { "Older →" } } }
        },
    )
}

fn reason(m: &Message) -> &'static str {
    match m.status.as_str() {
        "rate_limited" => "hourly limit for this recipient reached",
        _ if m.error.is_some() && m.attempts > 1 => "attempts exhausted",
        _ if m.error.is_some() => "permanent provider error",
        _ => "failed",
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Messages of a phone (masked), with a search form that never echoes the full number.
pub fn messages(
    session: &Session,
    searched: Option<&str>,
    items: &[Message],
    next: Option<&str>,
    phone_q: &str,
) -> Markup {
    layout(
        "Messages",
        Nav::Messages,
        session,
        None,
        html! {
            form.filters method="get" action="/console/messages" {
                label for="phone" { "Phone" }
                input #phone type="tel" name="phone" placeholder="+14155550100" required;
                button type="submit" { "Search" }
            }
            @if let Some(masked) = searched {
                p { "Messages to " strong { (masked) } ", newest first." }
                @if items.is_empty() { p #empty { "None." } }
                @else { (message_table(items)) }
                @if let Some(c) = next { p { a href=(format!("/console/messages?phone={}&cursor={}", urlencode(phone_q), urlencode(c))) { "Older →" } } }
            }
        },
    )
}

fn message_table(items: &[Message]) -> Markup {
    html! {
        table #messages {
            thead { tr { th { "Message" } th { "To" } th { "Status" } th { "Body" } th { "Created" } } }
            tbody {
                @for m in items {
                    tr {
                        td { a href=(format!("/console/messages/{}", m.id.as_str())) { code { (m.id.as_str()) } } }
                        td { (m.to.masked()) }
                        td { span class=(format!("badge {}", m.status.as_str())) { (m.status.as_str()) } }
                        td.body { (m.body.as_str().chars().take(80).collect::<String>()) }
                        td { (time(m.created_at)) }
                    }
                }
            }
        }
    }
}

/// One message: its full number, its history and (when on the failed list) retry.
pub fn message(session: &Session, m: &Message, notice: Option<&str>) -> Markup {
    layout(
        &format!("Message {}", m.id.as_str()),
        Nav::Messages,
        session,
        notice,
        html! {
            dl.facts {
                dt { "Status" } dd { span #message-status class=(format!("badge {}", m.status.as_str())) { (m.status.as_str()) } }
                dt { "To" } dd { (m.to.as_str()) }
                dt { "From" } dd { (m.from) }
                dt { "Body" } dd.body { (m.body.as_str()) }
                dt { "Attempts" } dd { (m.attempts) }
                dt { "Last error" } dd { @if let Some(e) = &m.error { (e.code) ": " (e.message) } @else { "–" } }
                dt { "Provider status" } dd { (m.provider_status.as_deref().unwrap_or("–")) }
                dt { "Created" } dd { (time(m.created_at)) }
                dt { "On the failed list" } dd { (if m.failed_listed { "yes" } else { "no" }) }
            }
            @if m.failed_listed {
                form method="post" action=(format!("/console/failed/{}/retry", m.id.as_str())) {
                    (csrf_field(session))
                    button.retry type="submit" { "Retry" }
                }
            }
            h2 { "History" }
            table #events {
                thead { tr { th { "When" } th { "Status" } th { "Code" } th { "Note" } } }
                tbody {
                    @for e in &m.events {
                        tr {
                            td { (time(e.at)) }
                            td { (e.status.as_str()) }
                            td { @if let Some(c) = e.code { (c) } }
                            td { @if let Some(r) = &e.rescheduled { "rescheduled: " (format!("{r:?}")) } }
                        }
                    }
                }
            }
        },
    )
}

/// Conversations in one status (every lead's), or one lead's (by phone, masked).
pub fn conversations(
    session: &Session,
    phone: Option<&PhoneNumber>,
    status: ConversationStatus,
    items: &[Conversation],
    next: Option<&str>,
) -> Markup {
    let label = |s: ConversationStatus| match s {
        ConversationStatus::Open => "Open",
        ConversationStatus::NeedsHuman => "Needs a person",
        ConversationStatus::Ended => "Ended",
    };
    let tabs = [
        ConversationStatus::Open,
        ConversationStatus::NeedsHuman,
        ConversationStatus::Ended,
    ];
    // (the phone travels in links only as the search put it in the URL; it is never displayed)
    let more = next.map(|c| match phone {
        Some(p) => format!(
            "/console/conversations?phone={}&status={}&cursor={}",
            urlencode(p.as_str()),
            status.as_str(),
            urlencode(c)
        ),
        None => format!(
            "/console/conversations?status={}&cursor={}",
            status.as_str(),
            urlencode(c)
        ),
    });
    layout(
        "Conversations",
        Nav::Conversations,
        session,
        None,
        html! {
            nav.tabs {
                @for t in tabs {
                    a href=(format!("/console/conversations?status={}", t.as_str()))
                        class=[(phone.is_none() && t == status).then_some("current")] { (label(t)) }
                }
            }
            form.filters method="get" action="/console/conversations" {
                label for="phone" { "Lead's phone" }
                input #phone type="tel" name="phone" placeholder="+14155550100" required;
                input type="hidden" name="status" value=(status.as_str());
                button type="submit" { "Search" }
            }
            @match phone {
                Some(p) => p { "Conversations with " strong { (p.masked()) } " (" (label(status)) "), newest first." },
                None => p { (label(status)) ", every lead, newest first." },
            }
            @if items.is_empty() { p #empty { "None." } }
            @else {
                table #conversations {
                    thead { tr { th { "Conversation" } th { "Lead" } th { "Campaign" } th { "Status" } th { "Outcome" } th { "Messages" } th { "Updated" } } }
                    tbody {
                        @for c in items {
                            tr {
                                td { a href=(format!("/console/conversations/{}", c.id.as_str())) { code { (c.id.as_str()) } } }
                                td { (c.phone.masked()) }
                                td { (c.campaign_id.as_deref().unwrap_or("–")) }
                                td { span class=(format!("badge {}", c.status.as_str())) { (c.status.as_str()) } }
                                td { (c.outcome.map_or("–", Outcome::as_str)) }
                                td { (c.turns.len()) }
                                td { (time(c.updated_at)) }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = more { p { a href=(href) { "Older →" } } }
        },
    )
}

/// One conversation: the transcript both ways, the outcome, and a person's reply and outcome forms.
pub fn conversation(session: &Session, c: &Conversation, turns: &[Turn], notice: Option<&str>) -> Markup {
    layout(
        &format!("Conversation {}", c.id.as_str()),
        Nav::Conversations,
        session,
        notice,
        html! {
            dl.facts {
                dt { "Lead" } dd { (c.phone.masked()) }
                dt { "Campaign" } dd { @if let Some(id) = &c.campaign_id { a href=(format!("/console/campaigns/{}", urlencode(id))) { (id) } } @else { "–" } }
                dt { "Status" } dd { span #conversation-status class=(format!("badge {}", c.status.as_str())) { (c.status.as_str()) } }
                dt { "Outcome" } dd #outcome { (c.outcome.map_or("–", Outcome::as_str)) }
                dt { "Reason" } dd #outcome-reason { (c.outcome_reason.as_deref().unwrap_or("–")) }
            }
            h2 { "Transcript" }
            ol.transcript #transcript {
                @for t in turns {
                    @let (class, who) = match t.direction { Direction::Inbound => ("inbound", "lead"), Direction::Outbound => ("outbound", "us") };
                    li class=(class) {
                        span.who { (who) " · " (time(t.at)) }
                        p { (t.body) }
                    }
                }
            }
            @if c.is_open() {
                h2 { "Reply as a person" }
                p.hint { "The agent stays quiet once a person has replied." }
                form method="post" action=(format!("/console/conversations/{}/reply", c.id.as_str())) {
                    (csrf_field(session))
                    textarea name="body" rows="3" cols="60" required {}
                    button type="submit" { "Send reply" }
                }
            }
            h2 { "Set the outcome" }
            form method="post" action=(format!("/console/conversations/{}/outcome", c.id.as_str())) {
                (csrf_field(session))
                select name="outcome" {
                    @for o in Outcome::ALL { option value=(o.as_str()) selected[c.outcome == Some(o)] { (o.as_str()) } }
                }
                input type="text" name="reason" size="40" maxlength="1000" placeholder="why";
                button type="submit" { "Set outcome (ends the conversation)" }
            }
        },
    )
}

/// Campaigns.
pub fn campaigns(session: &Session, items: &[Campaign], next: Option<&str>) -> Markup {
    layout(
        "Campaigns",
        Nav::Campaigns,
        session,
        None,
        html! {
            @if items.is_empty() { p #empty { "No campaigns." } }
            @else {
                table #campaigns {
                    thead { tr { th { "Campaign" } th { "Name" } th { "Steps" } th { "Agent" } } }
                    tbody {
                        @for c in items {
                            tr {
                                td { a href=(format!("/console/campaigns/{}", urlencode(&c.id))) { code { (c.id) } } }
                                td { (c.name) }
                                td { (c.steps.len()) }
                                td { (c.agent.as_ref().map_or("–".to_owned(), |a| format!("{a:?}").chars().take(40).collect())) }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = next { p { a href=(format!("/console/campaigns?cursor={}", urlencode(c))) { "More →" } } }
        },
    )
}

/// One campaign: steps, enrolments by state, and the report with its chart.
pub fn campaign(session: &Session, c: &Campaign, r: &CampaignReport) -> Markup {
    let outcomes: Vec<(&str, i64)> = r.outcomes.iter().map(|(k, v)| (*k, *v)).collect();
    let svg = chart::bars("Ended conversations by outcome", &outcomes);
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    layout(
        &format!("Campaign {}", c.name),
        Nav::Campaigns,
        session,
        None,
        html! {
            section.cards {
                div.card { span.label { "Enrolled" } span.value { (r.enrolled) } }
                div.card { span.label { "Reply rate" } span.value #reply-rate { (pct(r.reply_rate)) } }
                div.card { span.label { "Delivery rate" } span.value #delivery-rate { (pct(r.delivered_rate)) } }
                div.card { span.label { "Opted out" } span.value { (r.opted_out) } }
            }
            h2 { "Enrolments by state" }
            table #enrolments {
                thead { tr { th { "Active" } th { "Paused" } th { "Completed" } th { "Stopped" } th { "Replied" } th { "Steps sent" } th { "Delivered" } } }
                tbody { tr { td { (r.active) } td { (r.paused) } td { (r.completed) } td { (r.stopped) } td { (r.replied) } td { (r.sent) } td { (r.delivered) } } }
            }
            h2 { "Outcomes" }
            figure.chart #outcomes-chart { (PreEscaped(svg)) }
            table #outcomes {
                thead { tr { @for (k, _) in &outcomes { th { (k) } } } }
                tbody { tr { @for (_, v) in &outcomes { td { (v) } } } }
            }
            h2 { "Steps" }
            table #steps {
                thead { tr { th { "#" } th { "After" } th { "Text" } } }
                tbody {
                    @for (i, s) in c.steps.iter().enumerate() {
                        tr { td { (i + 1) } td { (s.delay) } td.body { (s.body) } }
                    }
                }
            }
        },
    )
}
