//! Retell's signed chat webhooks in the simulation: `chat_inbound` when a lead texts a Retell
//! number, then `chat_ended` and `chat_analyzed` with the chat's turns (a STOP or START typed in
//! the chat among them), delivered late, out of order, more than once, and again after any
//! answer that was not a 2xx (Retell retries).

use super::{World, BASE, OURS};
use axum::body::Body;
use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;
use smsrelay::ports::Clock as _;

/// The key the simulated Retell signs with (`RETELL_API_KEY` of the process).
pub const RETELL_KEY: &str = "sim-retell-key";

/// What the lead may type in a Retell chat.
const LEAD_TEXTS: [&str; 6] = ["Is Thursday open?", "STOP", "START", "thanks", "stop", "2pm works"];

/// One Retell webhook body, for its chat.
#[derive(Clone)]
pub struct RetellWebhook {
    pub chat_id: String,
    pub body: Vec<u8>,
    /// A chat event carrying the turns (not `chat_inbound`).
    pub turns: bool,
}

/// What the simulated Retell sent and still owes.
#[derive(Default)]
pub struct RetellState {
    /// Bodies not yet answered with a 2xx (Retell delivers them again), and chat events still
    /// to come (delivered later, in any order).
    owed: Vec<RetellWebhook>,
    /// Bodies delivered at least once (for duplicates).
    delivered: Vec<RetellWebhook>,
    /// Per chat: the lead's phone, when an event carrying its turns was first answered 2xx
    /// (by then whatever its turns mean is recorded), and its turns' ids.
    pub chats: std::collections::BTreeMap<String, RetellChatFacts>,
}

/// What the checks need to know of one chat.
pub struct RetellChatFacts {
    pub phone: String,
    pub first_delivery: Option<DateTime<Utc>>,
    /// `retell:<chat>:<message>` of each turn.
    pub turn_refs: Vec<String>,
}

impl World {
    /// A Retell chat starts, or an owed or earlier webhook is delivered (again).
    pub(super) async fn op_retell(&mut self) {
        let (redeliver, duplicate) = self.rand(|r| (r.gen_ratio(1, 2), r.gen_ratio(1, 6)));
        let hook = if redeliver && !self.retell.owed.is_empty() {
            let i = self.rand(|r| r.gen_range(0..self.retell.owed.len()));
            if i > 0 {
                self.faults.note("retell_webhook_reordered");
            }
            self.retell.owed.swap_remove(i)
        } else if duplicate && !self.retell.delivered.is_empty() {
            self.faults.note("retell_webhook_duplicated");
            let i = self.rand(|r| r.gen_range(0..self.retell.delivered.len()));
            self.retell.delivered[i].clone()
        } else {
            self.new_chat()
        };
        self.deliver_retell(hook).await;
    }

    /// Deliver every owed Retell webhook (faults off), in a shuffled order.
    pub(super) async fn settle_retell(&mut self) {
        let mut owed = std::mem::take(&mut self.retell.owed);
        self.rand(|r| owed.shuffle(r));
        for hook in owed {
            self.deliver_retell(hook).await;
        }
    }

    pub(super) fn retell_quiet(&self) -> bool {
        self.retell.owed.is_empty()
    }

    /// A new chat on our number: its `chat_inbound` is returned to deliver now; its
    /// `chat_ended` and `chat_analyzed` are owed (they come later, in any order).
    fn new_chat(&mut self) -> RetellWebhook {
        let n = self.fresh();
        let chat_id = format!("chat_{n:08x}");
        let phone = self.phone();
        let now_ms = self.clock.now().timestamp_millis();
        let texts: Vec<&str> = {
            let k = self.rand(|r| r.gen_range(1..=3));
            (0..k)
                .map(|_| self.rand(|r| LEAD_TEXTS.choose(r).copied()).unwrap_or("thanks"))
                .collect()
        };
        let mut turns = Vec::new();
        let mut refs = Vec::new();
        let last = i64::try_from(texts.len()).unwrap_or(1) * 2;
        for (i, text) in texts.iter().enumerate() {
            let i = i64::try_from(i).unwrap_or(0) * 2;
            for (k, (role, content)) in [("user", *text), ("agent", "Thanks for your message.")]
                .into_iter()
                .enumerate()
            {
                let message_id = format!("m{}", i + i64::try_from(k).unwrap_or(0));
                // The turns happened over the last seconds, before the events about them.
                let at = now_ms - (last - i - i64::try_from(k).unwrap_or(0)) * 1_000;
                refs.push(format!("retell:{chat_id}:{message_id}"));
                turns
                    .push(json!({"message_id": message_id, "role": role, "content": content, "created_timestamp": at}));
                if role == "user" && content.eq_ignore_ascii_case("start") {
                    // Like a texted START: it opts the phone in from its time (answered or not).
                    let when = DateTime::<Utc>::from_timestamp_millis(at).unwrap_or_else(|| self.clock.now());
                    self.oracle.starts.push((phone.clone(), when));
                }
            }
        }
        let metadata = json!({"smsrelay": {"from_number": phone, "to_number": OURS}});
        let inbound = json!({"event": "chat_inbound", "chat_inbound": {"agent_id": "agent_sim", "from_number": phone, "to_number": OURS}});
        let ended = json!({"event": "chat_ended", "chat": {"chat_id": chat_id, "chat_type": "sms_chat", "chat_status": "ended",
            "message_with_tool_calls": turns, "metadata": metadata}});
        let outcome = self.rand(|r| ["qualified", "not_interested", "success"].choose(r).copied());
        let analyzed = json!({"event": "chat_analyzed", "chat": {"chat_id": chat_id, "chat_type": "sms_chat", "chat_status": "ended",
            "message_with_tool_calls": turns, "metadata": metadata,
            "chat_analysis": {"chat_summary": "Simulated chat.", "custom_analysis_data": {"outcome": outcome}}}});
        for later in [ended, analyzed] {
            self.retell.owed.push(RetellWebhook {
                chat_id: chat_id.clone(),
                body: later.to_string().into_bytes(),
                turns: true,
            });
        }
        self.retell.chats.insert(
            chat_id.clone(),
            RetellChatFacts {
                phone,
                first_delivery: None,
                turn_refs: refs,
            },
        );
        RetellWebhook {
            chat_id,
            body: inbound.to_string().into_bytes(),
            turns: false,
        }
    }

    /// POST one signed webhook; anything but a 2xx leaves it owed.
    async fn deliver_retell(&mut self, hook: RetellWebhook) {
        let now = self.clock.now();
        let req = http::Request::builder()
            .method("POST")
            .uri("/webhooks/retell")
            .header("content-type", "application/json")
            .header(
                "x-retell-signature",
                smsrelay::adapters::retell::sign_retell(RETELL_KEY, &hook.body, now.timestamp_millis()),
            )
            .body(Body::from(hook.body.clone()))
            .unwrap_or_else(|e| panic!("request: {e}"));
        let app = self.app.clone();
        let out = self.op(true, super::call(app, req)).await;
        self.trace_answer(&format!("{BASE}/webhooks/retell"), out.as_ref());
        match out {
            Some((200..=299, _)) => {
                if let Some(chat) = self.retell.chats.get_mut(&hook.chat_id).filter(|_| hook.turns) {
                    chat.first_delivery.get_or_insert(now);
                }
                if self.retell.delivered.len() < 500 {
                    self.retell.delivered.push(hook);
                }
            }
            None | Some((500..=599, _)) => self.retell.owed.push(hook),
            Some((status, body)) => self.step_violations.push(format!(
                "retell: a well-formed signed {} was refused with {status}: {body}",
                hook.chat_id
            )),
        }
    }
}
