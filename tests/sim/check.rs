//! The invariants of docs/design.md, checked after a run against the store and the oracle (what
//! clients were answered, what reached the provider, the consent history, the alerts).

use crate::world::{World, CAMPAIGN_DAILY_LIMIT, RATE_LIMIT_PER_HOUR};
use chrono::{DateTime, Utc};
use smsrelay::domain::{
    ConsentChannel, ConsentStatus, EnrolmentId, EnrolmentStatus, Message, MessageId, MessageStatus, PhoneNumber,
    QuietHours,
};
use std::collections::{BTreeMap, BTreeSet};

/// Counts the checks made and keeps the ones that failed.
#[derive(Default)]
struct Checker {
    checks: u64,
    violations: Vec<String>,
}

impl Checker {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.violations.push(what());
        }
    }
}

fn terminal(s: MessageStatus) -> bool {
    matches!(
        s,
        MessageStatus::Delivered
            | MessageStatus::Failed
            | MessageStatus::Undelivered
            | MessageStatus::Canceled
            | MessageStatus::Suppressed
    )
}

/// A move down the rank is allowed only into a fresh attempt (`queued`, `rate_limited`,
/// `sending`) from one not yet handed over for good, or as a recorded deferral.
fn step_allowed(from: MessageStatus, to: MessageStatus, deferral: bool) -> bool {
    let retry = |s| {
        matches!(
            s,
            MessageStatus::Queued | MessageStatus::RateLimited | MessageStatus::Sending
        )
    };
    to.rank() > from.rank() || (deferral && from == to) || (retry(from) && retry(to))
}

/// When a message took its hourly send slot (`None`: exempt, an agent's reply to a lead).
fn slot_time(m: &Message) -> Option<DateTime<Utc>> {
    if m.metadata.contains_key("agent") {
        return None;
    }
    let first = |pred: fn(MessageStatus) -> bool| m.events.iter().find(|e| pred(e.status)).map(|e| e.at);
    if m.events.first().is_some_and(|e| e.status == MessageStatus::Scheduled) {
        first(|s| s == MessageStatus::Queued)
    } else if m.batch_id.is_some() {
        first(|s| s == MessageStatus::Sending)
    } else {
        Some(m.created_at)
    }
}

/// Sends of message `id` allowed beyond its first: one per delivery the provider reported
/// `undelivered` with a retryable code, one per operator retry asked for.
pub fn licences(w: &World, id: &str) -> u32 {
    w.provider.retry_licences(id) + w.oracle.operator_retries.get(id).copied().unwrap_or(0)
}

/// When an attempt was claimed, and its message id.
type Claim<'a> = (DateTime<Utc>, Option<&'a str>);

/// Every invariant; `(checks made, violations)`.
pub async fn all(w: &World, unsettled: bool) -> (u64, Vec<String>) {
    let mut c = Checker::default();
    let seed = w.plan_seed;
    c.check(!unsettled, || {
        format!("seed {seed}: the system did not settle: something stays due after the faults stopped")
    });
    let landed = w.provider.landed();
    // Every message anyone knows of: accepted, sent by the provider, or made by a campaign.
    let mut ids: BTreeSet<String> = w.oracle.accepted.clone();
    ids.extend(landed.iter().filter_map(|l| l.message_id.clone()));
    let mut enrolment_ids = w.oracle.enrolments.clone();
    let mut messages: BTreeMap<String, Message> = BTreeMap::new();
    for id in &ids {
        let Ok(parsed) = MessageId::parse(id) else {
            c.check(false, || format!("unparseable message id {id}"));
            continue;
        };
        match w.deps.messages.get_message(&parsed).await {
            Ok(Some(m)) => {
                if let Some(e) = m.metadata.get("enrollment_id").and_then(|v| v.as_str()) {
                    enrolment_ids.insert(e.to_owned());
                }
                messages.insert(id.clone(), m);
            }
            Ok(None) => c.check(false, || format!("nothing lost: message {id} is not in the store")),
            Err(e) => c.check(false, || format!("store unreadable for {id}: {e}")),
        }
    }
    let mut enrolments = BTreeMap::new();
    for e in &enrolment_ids {
        let Ok(id) = EnrolmentId::parse(e) else {
            continue;
        };
        match w.deps.campaigns.get_enrolment(&id).await {
            Ok(Some(en)) => {
                for m in &en.message_ids {
                    if !messages.contains_key(m.as_str()) {
                        if let Ok(Some(msg)) = w.deps.messages.get_message(m).await {
                            messages.insert(m.as_str().to_owned(), msg);
                        }
                    }
                }
                enrolments.insert(e.clone(), en);
            }
            _ => c.check(false, || format!("enrolment {e} answered 2xx but is not in the store")),
        }
    }

    record_state(w, &landed, &messages, &enrolments);

    // 1. Nothing lost: every accepted message is terminal or listed.
    for id in &w.oracle.accepted {
        if let Some(m) = messages.get(id) {
            c.check(terminal(m.status) || m.failed_listed, || {
                format!(
                    "nothing lost: accepted {id} ended {:?}, neither terminal nor listed",
                    m.status
                )
            });
        }
    }

    // 2. No second provider send for one attempt (a fresh attempt starts only after a retryable
    //    delivery failure or an operator retry), and nothing reaches the provider that was not
    //    recorded first.
    let mut per_message: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &landed {
        match &l.message_id {
            Some(id) => {
                *per_message.entry(id.as_str()).or_default() += 1;
                c.check(messages.contains_key(id), || {
                    format!("record first: {} reached the provider but {id} is not stored", l.sid)
                });
            }
            None => c.check(false, || format!("{} reached the provider without our id", l.sid)),
        }
    }
    for (id, n) in &per_message {
        let allowed = 1 + licences(w, id) as usize;
        c.check(*n <= allowed, || {
            let sends: Vec<String> = landed
                .iter()
                .filter(|l| l.message_id.as_deref() == Some(*id))
                .map(|l| format!("{} at {}", l.sid, l.at))
                .collect();
            let history: Vec<String> = messages.get(*id).map_or_else(Vec::new, |m| {
                m.events.iter().map(|e| format!("{:?}@{}", e.status, e.at)).collect()
            });
            format!(
                "no duplicate: {id} reached the provider {n} times, {allowed} allowed ({sends:?}; history {history:?})"
            )
        });
    }

    // 3. No status regression (but into the fresh attempt a retryable delivery failure or an
    //    operator retry starts).
    for (id, m) in &messages {
        let fresh = licences(w, id) > 0;
        for w2 in m.events.windows(2) {
            let (a, b) = (&w2[0], &w2[1]);
            // A fresh attempt, or (attempts used up) failed and listed.
            let requeued =
                fresh && a.status.can_requeue() && matches!(b.status, MessageStatus::Queued | MessageStatus::Failed);
            c.check(
                requeued || step_allowed(a.status, b.status, b.rescheduled.is_some()),
                || {
                    let h: Vec<_> = m.events.iter().map(|e| e.status).collect();
                    format!("no regression: {id} went {:?} -> {:?} in {h:?}", a.status, b.status)
                },
            );
        }
    }

    // 4. No send request to an opted-out phone after its opt-out was recorded (a STOP texted,
    //    a 21610 from the carrier, the consent API), unless a START or an API opt-in came since.
    let requests = w.provider.requests();
    let mut by_phone: BTreeMap<&str, Vec<Claim<'_>>> = BTreeMap::new();
    for r in &requests {
        // The consent check's moment: when the attempt was claimed (the registry is read then,
        // docs/design.md; a batch's paced call may leave later), else the request's.
        let claimed = r
            .message_id
            .as_deref()
            .and_then(|id| messages.get(id))
            .and_then(|m| {
                m.events
                    .iter()
                    .rev()
                    .find(|e| e.status == MessageStatus::Sending && e.at <= r.at)
                    .map(|e| e.at)
            })
            .unwrap_or(r.at);
        by_phone
            .entry(r.to.as_str())
            .or_default()
            .push((claimed, r.message_id.as_deref()));
    }
    for (phone, times) in &by_phone {
        let Ok(p) = PhoneNumber::parse_e164(phone) else {
            continue;
        };
        let history = w.deps.consent.consent_history(&p).await.unwrap_or_default();
        for e in &history {
            w.faults
                .sched
                .record(&["state consent", phone, &format!("{:?}@{}", e.status, e.at)]);
        }
        // The registry agrees with the latest entry of the history.
        let registry = w.deps.consent.opt_out_of(&p).await.ok().flatten();
        let latest = history.iter().max_by_key(|e| e.at).map(|e| e.status);
        c.check(latest != Some(ConsentStatus::OptedOut) || registry.is_some(), || {
            format!("consent: {phone}'s history ends opted out but the registry has no opt-out ({history:?})")
        });
        for (t, id) in times {
            // The phone's status when the attempt was claimed: the latest evidence (by its
            // time, as the registry follows it) of the entries recorded by then. An entry is
            // recorded at its time, or for one typed in a Retell chat (its time is the turn's)
            // when a webhook carrying it was first answered 2xx (an earlier delivery may have
            // failed before recording it). An opt-out counts if recorded before the claim, an
            // opt-in if recorded by then and asked for by the simulation (a START texted or typed,
            // an API opt-in): the store cannot invent one.
            let recorded = |e: &smsrelay::domain::ConsentEvidence| {
                e.at.max(retell_delivery(w, e.message_sid.as_deref()).unwrap_or(e.at))
            };
            let asked = |rec: DateTime<Utc>| w.oracle.starts.iter().any(|(ph, at)| ph == phone && *at <= rec);
            let latest = history
                .iter()
                .filter(|e| match e.status {
                    ConsentStatus::OptedOut => recorded(e) < *t,
                    ConsentStatus::OptedIn => recorded(e) <= *t && asked(recorded(e)),
                })
                .max_by_key(|e| (e.at, e.status == ConsentStatus::OptedOut));
            let stop = latest.filter(|e| e.status == ConsentStatus::OptedOut).map(|e| e.at);
            c.check(stop.is_none(), || {
                let h: Vec<String> = history
                    .iter()
                    .map(|e| format!("{:?}@{} {:?} {:?}", e.status, e.at, e.channel, e.message_sid))
                    .collect();
                let s: Vec<String> = w
                    .oracle
                    .starts
                    .iter()
                    .filter(|(ph, _)| ph == phone)
                    .map(|(_, at)| at.to_string())
                    .collect();
                let what = id.and_then(|id| messages.get(id)).map(|m| {
                    let events: Vec<String> = m.events.iter().map(|e| format!("{:?}@{}", e.status, e.at)).collect();
                    format!("{} {:?} events {events:?}", m.id.as_str(), m.metadata)
                });
                format!("consent: a send to {phone} at {t} ({what:?}) after its opt-out recorded at {stop:?}, no opt-in since (history {h:?}; opt-ins asked {s:?})")
            });
        }
    }

    // 4e. Every turn of a Retell chat is recorded once in the pair's conversations, however
    //     its webhooks were duplicated, reordered or retried.
    for (chat, facts) in &w.retell.chats {
        if facts.first_delivery.is_none() {
            continue;
        }
        let Ok(p) = PhoneNumber::parse_e164(&facts.phone) else {
            continue;
        };
        let page = w
            .deps
            .conversations
            .list_conversations(&p, smsrelay::ports::ConversationFilter::default(), 200, None)
            .await;
        let Ok(mut page) = page else {
            c.check(false, || format!("retell: conversations of {} unreadable", facts.phone));
            continue;
        };
        // A list's rows may leave the turns out: read each conversation whole.
        for cv in &mut page.items {
            if let Ok(Some(full)) = w.deps.conversations.get_conversation(&cv.id).await {
                *cv = full;
            }
        }
        for r in &facts.turn_refs {
            let n = page
                .items
                .iter()
                .flat_map(|cv| &cv.turns)
                .filter(|t| t.provider_ref.as_deref() == Some(r.as_str()))
                .count();
            c.check(n == 1, || {
                let convs: Vec<String> = page
                    .items
                    .iter()
                    .map(|cv| format!("{} {:?} turns={}", cv.id.as_str(), cv.status, cv.turns.len()))
                    .collect();
                format!(
                    "retell: turn {r} of {chat} recorded {n} times for {} ({convs:?})",
                    facts.phone
                )
            });
        }
    }

    // 4b. A 21610 is recorded as an opt-out with its evidence: every message stored `failed`
    //     with 21610 has a `provider_error` opt-out of its phone recorded no later than it.
    for (id, m) in &messages {
        if m.status != MessageStatus::Failed || m.error.as_ref().map(|e| e.code) != Some(21610) {
            continue;
        }
        let failed_at = m
            .events
            .iter()
            .rev()
            .find(|e| e.status == MessageStatus::Failed)
            .map(|e| e.at);
        let history = w.deps.consent.consent_history(&m.to).await.unwrap_or_default();
        c.check(
            history.iter().any(|e| {
                e.status == ConsentStatus::OptedOut
                    && e.channel == ConsentChannel::ProviderError
                    && failed_at.is_none_or(|t| e.at <= t)
            }),
            || {
                format!(
                    "consent: {id} failed with 21610 at {failed_at:?} but no provider_error opt-out of {} was recorded",
                    m.to.as_str()
                )
            },
        );
    }

    // 4c. A message a cancel answered `canceled` for is never sent afterwards and stays canceled.
    for (id, at) in &w.oracle.canceled {
        let after: Vec<String> = requests
            .iter()
            .filter(|r| r.message_id.as_deref() == Some(id.as_str()) && r.at > *at)
            .map(|r| r.at.to_rfc3339())
            .collect();
        c.check(after.is_empty(), || {
            format!("cancel: {id} was canceled at {at} and sent afterwards at {after:?}")
        });
        if let Some(m) = messages.get(id) {
            c.check(m.status == MessageStatus::Canceled, || {
                format!("cancel: {id} was canceled at {at} and ended {:?}", m.status)
            });
        }
    }

    // 4d. A retryable delivery failure with attempts left gets its fresh attempt: no message
    //     ends `undelivered` with a retryable code before its attempts are used up.
    for (id, m) in &messages {
        let code = m.error.as_ref().map(|e| e.code);
        c.check(
            !(m.status == MessageStatus::Undelivered
                && code.is_some_and(smsrelay::domain::retry_policy::delivery_error_is_retryable)
                && m.attempts < w.deps.config.max_attempts),
            || {
                let h: Vec<String> = m.events.iter().map(|e| format!("{:?}@{}", e.status, e.at)).collect();
                format!(
                    "retry lost: {id} ended undelivered with retryable code {code:?} after {} of {} attempts; history {h:?}",
                    m.attempts, w.deps.config.max_attempts
                )
            },
        );
    }

    // 5. Hourly cap per recipient: of the messages that reached the provider, at most the limit
    //    whose send slot falls in any rolling hour. The slot is taken once per message (at
    //    acceptance, when a scheduled message fires, or at a batch item's first attempt); its
    //    retries reuse it, and agent replies to a lead are exempt (app/send.rs).
    let mut slots: BTreeMap<&str, Vec<(DateTime<Utc>, &str)>> = BTreeMap::new();
    let mut counted = BTreeSet::new();
    for l in &landed {
        let Some((id, m)) = l.message_id.as_ref().and_then(|id| messages.get(id).map(|m| (id, m))) else {
            continue;
        };
        // An operator retry goes past the hourly limit, by design (docs/api.md).
        if !counted.insert(id.as_str()) || w.oracle.operator_retries.contains_key(id) {
            continue;
        }
        if let Some(t) = slot_time(m) {
            slots.entry(l.to.as_str()).or_default().push((t, id.as_str()));
        }
    }
    for (phone, list) in &mut slots {
        list.sort();
        for (i, (t, _)) in list.iter().enumerate() {
            let within: Vec<&(DateTime<Utc>, &str)> = list[..=i]
                .iter()
                .filter(|(s, _)| *s > *t - chrono::Duration::hours(1))
                .collect();
            c.check(within.len() <= RATE_LIMIT_PER_HOUR as usize, || {
                let detail: Vec<String> = within
                    .iter()
                    .map(|(at, id)| {
                        let h: Vec<String> = messages.get(*id).map_or_else(Vec::new, |m| {
                            m.events
                                .iter()
                                .map(|e| format!("{:?}@{}", e.status, e.at.format("%H:%M:%S")))
                                .collect()
                        });
                        format!("{id} slot {} {h:?}", at.format("%H:%M:%S"))
                    })
                    .collect();
                format!(
                    "hourly cap: {} sends to {phone} in the hour up to {t}: {detail:?}",
                    within.len()
                )
            });
        }
    }

    // 5b, 6, 8: campaign steps: daily limit per lead's local day, never in the campaign's quiet
    // hours (21:00-08:00 in the lead's zone: drip-a's own, drip-b's the default
    // SMSRELAY_QUIET_HOURS), each step one message (a fresh attempt resends that message: the
    // duplicate check bounds those).
    let mut per_day: BTreeMap<(String, chrono::NaiveDate), BTreeSet<&str>> = BTreeMap::new();
    let mut per_step: BTreeMap<(String, u64), BTreeSet<&str>> = BTreeMap::new();
    for l in &landed {
        let Some(m) = l.message_id.as_ref().and_then(|id| messages.get(id)) else {
            continue;
        };
        let (Some(e), Some(step)) = (
            m.metadata.get("enrollment_id").and_then(|v| v.as_str()),
            m.metadata.get("step").and_then(serde_json::Value::as_u64),
        ) else {
            continue;
        };
        let Some(en) = enrolments.get(e) else {
            continue;
        };
        let zone = en.lead.timezone.as_deref().unwrap_or("America/New_York");
        per_step.entry((e.to_owned(), step)).or_default().insert(m.id.as_str());
        if let Ok(tz) = zone.parse::<chrono_tz::Tz>() {
            per_day
                .entry((e.to_owned(), smsrelay::domain::schedule::local_day(l.at, tz)))
                .or_default()
                .insert(m.id.as_str());
            {
                let quiet = QuietHours::parse("21:00", "08:00", zone).ok();
                c.check(!quiet.is_some_and(|q| q.contains(l.at)), || {
                    format!("quiet hours: step {step} of {e} sent at {} in {zone}", l.at)
                });
            }
        }
    }
    for ((e, day), ids) in &per_day {
        let n = ids.len();
        c.check(n <= CAMPAIGN_DAILY_LIMIT as usize, || {
            format!("daily limit: {n} steps of {e} on {day}")
        });
    }
    for ((e, step), ids) in &per_step {
        c.check(ids.len() <= 1, || {
            format!("step once: step {step} of {e} sent as {ids:?}")
        });
    }
    // Scheduled API messages with their own quiet hours are never sent inside them.
    for l in &landed {
        let Some(m) = l.message_id.as_ref().and_then(|id| messages.get(id)) else {
            continue;
        };
        if let Some(q) = &m.quiet_hours {
            c.check(!q.contains(l.at), || {
                let h: Vec<String> = m
                    .events
                    .iter()
                    .map(|e| {
                        format!(
                            "{:?}@{}{}",
                            e.status,
                            e.at,
                            if e.rescheduled.is_some() { "(moved)" } else { "" }
                        )
                    })
                    .collect();
                format!(
                    "quiet hours: {} ({}) sent at {} inside its own window {q:?}; send_at {:?}, history {h:?}",
                    l.sid,
                    m.id.as_str(),
                    l.at,
                    m.send_at
                )
            });
        }
    }

    // 7. Every enrolment advances or ends; its steps are distinct messages.
    for (id, en) in &enrolments {
        c.check(en.status != EnrolmentStatus::Active, || {
            format!(
                "enrolment {id} is still active at step {} after everything settled (next at {:?})",
                en.step, en.next_message_at
            )
        });
        let distinct: BTreeSet<&str> = en.message_ids.iter().map(MessageId::as_str).collect();
        c.check(
            distinct.len() == en.message_ids.len() && en.message_ids.len() <= 3,
            || format!("step once: enrolment {id} lists {:?}", en.message_ids),
        );
    }

    // 9. One alert per incident: no (kind, subject) raised twice within its 15-minute cooldown.
    let mut alerts: BTreeMap<(String, String), Vec<DateTime<Utc>>> = BTreeMap::new();
    for a in w.alerts.alerts() {
        alerts
            .entry((format!("{:?}", a.kind), a.subject.clone()))
            .or_default()
            .push(a.raised_at);
    }
    // The dedupe claim fails open (app/alerts.rs raises when the claim cannot be taken): while
    // faults are injected, at most one extra alert per faulted claim; once they stop, none.
    let settled = w.oracle.settled_from.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let mut extra = 0_u64;
    for ((kind, subject), mut times) in alerts {
        times.sort();
        for pair in times.windows(2) {
            if pair[1] - pair[0] >= chrono::Duration::minutes(15) {
                continue;
            }
            extra += 1;
            c.check(pair[0] < settled, || {
                format!(
                    "one alert per incident: {kind} {subject} raised at {} and {} with no store fault",
                    pair[0], pair[1]
                )
            });
        }
    }
    let claim_faults = w.faults.claim_faults.load(std::sync::atomic::Ordering::Relaxed);
    c.check(extra <= claim_faults, || {
        format!("one alert per incident: {extra} repeated alerts but only {claim_faults} faulted dedupe claims")
    });
    (c.checks, c.violations)
}

/// The stored end state into the run's trace (its digest tells two runs of one seed apart).
fn record_state(
    w: &World,
    landed: &[crate::faults::Landed],
    messages: &BTreeMap<String, Message>,
    enrolments: &BTreeMap<String, smsrelay::domain::Enrolment>,
) {
    let rec = |parts: &[&str]| w.faults.sched.record(parts);
    for l in landed {
        rec(&[
            "state sent",
            &l.sid,
            l.message_id.as_deref().unwrap_or("-"),
            &l.to,
            &l.at.to_rfc3339(),
        ]);
    }
    for (id, m) in messages {
        let events: Vec<String> = m.events.iter().map(|e| format!("{:?}@{}", e.status, e.at)).collect();
        rec(&[
            "state message",
            id,
            &format!("{:?} listed={}", m.status, m.failed_listed),
            &events.join(","),
        ]);
    }
    for (id, e) in enrolments {
        rec(&["state enrolment", id, &format!("{:?} step={}", e.status, e.step)]);
    }
    for a in w.alerts.alerts() {
        rec(&[
            "state alert",
            &format!("{:?}", a.kind),
            &a.subject,
            &a.raised_at.to_rfc3339(),
        ]);
    }
}

/// When a webhook of the chat of a Retell consent entry (`retell:<chat>:<message>`) carrying its
/// turns was first answered 2xx.
fn retell_delivery(w: &World, message_sid: Option<&str>) -> Option<DateTime<Utc>> {
    let chat = message_sid?.strip_prefix("retell:")?.split(':').next()?;
    w.retell.chats.get(chat)?.first_delivery
}
