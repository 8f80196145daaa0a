//! A wrapper around every store port that counts calls and can fail chosen ones, for tests that
//! must prove "nothing reached the store", exercise a store fault at a precise point, or count
//! store calls per message (the batch bench). It holds each wrapped port as its own
//! `Arc<dyn Port>` and counts them all under one set of method names.

use crate::domain::{Message, MessageId, MessageStatus, PhoneNumber, ProviderSid};
use crate::ports::message_store::Page;
use crate::ports::{
    BatchRecord, BatchState, BatchStore, Begin, ConsentStore, CounterStore, IdempotencyStore, ItemOutcome,
    MessageQueries, MessageStore, OptOut, Retention, SavedResponse, StoreError, WebhookRecord,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a [`StoreFaults`] hook does to one store call.
#[derive(Debug)]
pub enum StoreFault {
    /// Return this error (before the call: nothing written; after it: the write landed and the
    /// caller cannot know, as after a timeout).
    Fail(StoreError),
    /// Never answer: the call's future stays pending until it is dropped (a crash at this await
    /// point; after the call, with its write landed).
    Hang,
}

/// A fault plan consulted around every store call (the simulation in tests/sim draws one from
/// its seed). `method` is the port method's name, as counted.
pub trait StoreFaults: Send + Sync {
    /// Before the call reaches the wrapped store.
    fn before(&self, method: &'static str) -> Option<StoreFault>;
    /// After the wrapped store answered `ok` (whether it succeeded), before the caller sees it.
    fn after(&self, method: &'static str, ok: bool) -> Option<StoreFault>;
    /// Awaited first, before [`StoreFaults::before`]: a simulation's scheduler holds the call
    /// here until it lets it run, so the order in which concurrent calls reach the store (and
    /// draw their faults) is a function of its seed, not of thread timing. `None`: no wait.
    fn turn(
        &self,
        _method: &'static str,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> {
        None
    }
}

/// Counts every call by method name; `fail_next(method, n)` makes the next `n` calls of `method`
/// fail; an optional [`StoreFaults`] hook injects faults before or after any call.
pub struct CountingStore {
    messages: Arc<dyn MessageStore>,
    queries: Arc<dyn MessageQueries>,
    consent: Arc<dyn ConsentStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    counters: Arc<dyn CounterStore>,
    batches: Arc<dyn BatchStore>,
    retention: Arc<dyn Retention>,
    conversations: Arc<dyn crate::ports::ConversationStore>,
    campaigns: Arc<dyn crate::ports::CampaignStore>,
    calls: Mutex<HashMap<&'static str, usize>>,
    failures: Mutex<HashMap<&'static str, usize>>,
    total: AtomicUsize,
    faults: Option<Arc<dyn StoreFaults>>,
}

impl CountingStore {
    /// Wrap every port of one store adapter.
    pub fn new<S>(inner: Arc<S>) -> Self
    where
        S: MessageStore
            + MessageQueries
            + ConsentStore
            + IdempotencyStore
            + CounterStore
            + BatchStore
            + Retention
            + crate::ports::ConversationStore
            + crate::ports::CampaignStore
            + 'static,
    {
        Self {
            conversations: inner.clone(),
            campaigns: inner.clone(),
            messages: inner.clone(),
            queries: inner.clone(),
            consent: inner.clone(),
            idempotency: inner.clone(),
            counters: inner.clone(),
            batches: inner.clone(),
            retention: inner,
            calls: Mutex::default(),
            failures: Mutex::default(),
            total: AtomicUsize::new(0),
            faults: None,
        }
    }

    /// Consult `faults` around every call from now on.
    #[must_use]
    pub fn with_faults(mut self, faults: Arc<dyn StoreFaults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Calls made to `method` so far.
    pub fn calls(&self, method: &str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Every method called so far with its count, in name order.
    pub fn calls_by_method(&self) -> Vec<(&'static str, usize)> {
        let mut all: Vec<(&'static str, usize)> = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        all.sort_unstable();
        all
    }

    /// Calls made to any method so far.
    pub fn total_calls(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Make the next `n` calls of `method` fail with `StoreError::Unexpected`.
    pub fn fail_next(&self, method: &'static str, n: usize) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(method, n);
    }

    async fn enter(&self, method: &'static str) -> Result<(), StoreError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(method)
            .or_default() += 1;
        let scripted = {
            let mut f = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match f.get_mut(method) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        if scripted {
            return Err(StoreError::Unexpected(anyhow::anyhow!("injected fault in {method}")));
        }
        if let Some(turn) = self.faults.as_ref().and_then(|f| f.turn(method)) {
            turn.await;
        }
        match self.faults.as_ref().and_then(|f| f.before(method)) {
            Some(fault) => injected(fault).await,
            None => Ok(()),
        }
    }

    async fn leave<T: Send>(&self, method: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match self.faults.as_ref().and_then(|f| f.after(method, result.is_ok())) {
            Some(StoreFault::Fail(e)) => Err(e),
            Some(StoreFault::Hang) => std::future::pending().await,
            None => result,
        }
    }
}

/// An injected fault as the caller sees it: its error, or no answer at all.
async fn injected(fault: StoreFault) -> Result<(), StoreError> {
    match fault {
        StoreFault::Fail(e) => Err(e),
        StoreFault::Hang => std::future::pending().await,
    }
}

#[async_trait]
impl MessageStore for CountingStore {
    async fn create_message(&self, message: &Message) -> Result<(), StoreError> {
        self.enter("create_message").await?;
        let result = self.messages.create_message(message).await;
        self.leave("create_message", result).await
    }
    /// Delegated, so the wrapped store's own bulk path runs (not the trait's one-by-one default).
    async fn create_messages(&self, messages: &[Message]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.enter("create_messages").await?;
        let result = self.messages.create_messages(messages).await;
        self.leave("create_messages", result).await
    }
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        self.enter("get_message").await?;
        let result = self.messages.get_message(id).await;
        self.leave("get_message", result).await
    }
    async fn update_message(&self, message: &Message) -> Result<(), StoreError> {
        self.enter("update_message").await?;
        let result = self.messages.update_message(message).await;
        self.leave("update_message", result).await
    }
    async fn link_provider_sid(&self, sid: &ProviderSid, id: &MessageId) -> Result<(), StoreError> {
        self.enter("link_provider_sid").await?;
        let result = self.messages.link_provider_sid(sid, id).await;
        self.leave("link_provider_sid", result).await
    }
    /// Delegated, so the wrapped store's own atomic write runs (one call, as it is one request).
    async fn update_message_and_link(&self, message: &Message, sid: &ProviderSid) -> Result<(), StoreError> {
        self.enter("update_message_and_link").await?;
        let result = self.messages.update_message_and_link(message, sid).await;
        self.leave("update_message_and_link", result).await
    }
    async fn message_id_for_sid(&self, sid: &ProviderSid) -> Result<Option<MessageId>, StoreError> {
        self.enter("message_id_for_sid").await?;
        let result = self.messages.message_id_for_sid(sid).await;
        self.leave("message_id_for_sid", result).await
    }
    async fn record_webhook(&self, record: &WebhookRecord) -> Result<bool, StoreError> {
        self.enter("record_webhook").await?;
        let result = self.messages.record_webhook(record).await;
        self.leave("record_webhook", result).await
    }
    async fn list_messages_to(
        &self,
        to: &PhoneNumber,
        status: Option<MessageStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, StoreError> {
        self.enter("list_messages_to").await?;
        let result = self.messages.list_messages_to(to, status, limit, cursor).await;
        self.leave("list_messages_to", result).await
    }
}

#[async_trait]
impl MessageQueries for CountingStore {
    async fn list_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>, StoreError> {
        self.enter("list_due").await?;
        let result = self.queries.list_due(now, limit).await;
        self.leave("list_due", result).await
    }
    async fn list_failed(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Message>, StoreError> {
        self.enter("list_failed").await?;
        let result = self.queries.list_failed(limit, cursor).await;
        self.leave("list_failed", result).await
    }
    async fn list_by_ref(&self, reference: &crate::domain::Ref, limit: usize) -> Result<Vec<Message>, StoreError> {
        self.enter("list_by_ref").await?;
        let result = self.queries.list_by_ref(reference, limit).await;
        self.leave("list_by_ref", result).await
    }
}

#[async_trait]
impl CounterStore for CountingStore {
    async fn add(
        &self,
        key: &str,
        by: i64,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.enter("add").await?;
        let result = self.counters.add(key, by, expires_at, now).await;
        self.leave("add", result).await
    }
    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.enter("reset").await?;
        let result = self.counters.reset(key).await;
        self.leave("reset", result).await
    }
    /// Delegated, so the wrapped store's own one-call path runs.
    async fn add_many(&self, ops: &[crate::ports::CounterOp], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        self.enter("add_many").await?;
        let result = self.counters.add_many(ops, now).await;
        self.leave("add_many", result).await
    }
    async fn values(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        self.enter("values").await?;
        let result = self.counters.values(keys, now).await;
        self.leave("values", result).await
    }
    async fn claim(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        self.enter("claim").await?;
        let result = self.counters.claim(key, now, until).await;
        self.leave("claim", result).await
    }
    async fn put_doc(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.enter("put_doc").await?;
        let result = self.counters.put_doc(key, doc, expires_at).await;
        self.leave("put_doc", result).await
    }
    async fn get_doc(&self, key: &str, now: DateTime<Utc>) -> Result<Option<serde_json::Value>, StoreError> {
        self.enter("get_doc").await?;
        let result = self.counters.get_doc(key, now).await;
        self.leave("get_doc", result).await
    }
    async fn reserve_slot(
        &self,
        key: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
        deadline: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.enter("reserve_slot").await?;
        let result = self.counters.reserve_slot(key, now, gap, deadline).await;
        self.leave("reserve_slot", result).await
    }
}

#[async_trait]
impl ConsentStore for CountingStore {
    async fn opt_out(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.enter("opt_out").await?;
        let result = self.consent.opt_out(phone, reason, at).await;
        self.leave("opt_out", result).await
    }
    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        self.enter("opt_in").await?;
        let result = self.consent.opt_in(phone).await;
        self.leave("opt_in", result).await
    }
    async fn opt_out_of(&self, phone: &PhoneNumber) -> Result<Option<OptOut>, StoreError> {
        self.enter("opt_out_of").await?;
        let result = self.consent.opt_out_of(phone).await;
        self.leave("opt_out_of", result).await
    }
    async fn append_consent(
        &self,
        phone: &PhoneNumber,
        evidence: &crate::domain::ConsentEvidence,
    ) -> Result<bool, StoreError> {
        self.enter("append_consent").await?;
        let result = self.consent.append_consent(phone, evidence).await;
        self.leave("append_consent", result).await
    }
    async fn consent_history(&self, phone: &PhoneNumber) -> Result<Vec<crate::domain::ConsentEvidence>, StoreError> {
        self.enter("consent_history").await?;
        let result = self.consent.consent_history(phone).await;
        self.leave("consent_history", result).await
    }
    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        self.enter("take_send_slot").await?;
        let result = self.consent.take_send_slot(phone, now, window, limit).await;
        self.leave("take_send_slot", result).await
    }
    /// Delegated, so the wrapped store's own one-call path runs.
    async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<crate::ports::SendCheck, StoreError> {
        self.enter("check_send").await?;
        let result = self.consent.check_send(phone, now, window, limit).await;
        self.leave("check_send", result).await
    }
}

#[async_trait]
impl IdempotencyStore for CountingStore {
    async fn begin(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Begin, StoreError> {
        self.enter("begin").await?;
        let result = self.idempotency.begin(key, request_hash, now).await;
        self.leave("begin", result).await
    }
    async fn complete(
        &self,
        key: &str,
        request_hash: &str,
        response: &SavedResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.enter("complete").await?;
        let result = self.idempotency.complete(key, request_hash, response, now).await;
        self.leave("complete", result).await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.enter("release").await?;
        let result = self.idempotency.release(key).await;
        self.leave("release", result).await
    }
}

#[async_trait]
impl BatchStore for CountingStore {
    async fn create_batch(&self, record: &BatchRecord) -> Result<(), StoreError> {
        self.enter("create_batch").await?;
        let result = self.batches.create_batch(record).await;
        self.leave("create_batch", result).await
    }
    async fn get_batch(&self, id: &str, now: DateTime<Utc>) -> Result<Option<BatchState>, StoreError> {
        self.enter("get_batch").await?;
        let result = self.batches.get_batch(id, now).await;
        self.leave("get_batch", result).await
    }
    async fn record_item(
        &self,
        id: &str,
        item: &MessageId,
        outcome: ItemOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<BatchState>, StoreError> {
        self.enter("record_item").await?;
        let result = self.batches.record_item(id, item, outcome, now).await;
        self.leave("record_item", result).await
    }
    async fn add_finished(&self, id: &str, n: u32) -> Result<(), StoreError> {
        self.enter("add_finished").await?;
        let result = self.batches.add_finished(id, n).await;
        self.leave("add_finished", result).await
    }
    async fn claim_completion(&self, id: &str) -> Result<bool, StoreError> {
        self.enter("claim_completion").await?;
        let result = self.batches.claim_completion(id).await;
        self.leave("claim_completion", result).await
    }
    async fn mark_alerted(&self, id: &str) -> Result<(), StoreError> {
        self.enter("mark_alerted").await?;
        let result = self.batches.mark_alerted(id).await;
        self.leave("mark_alerted", result).await
    }
}

#[async_trait]
impl Retention for CountingStore {
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.enter("purge_expired").await?;
        let result = self.retention.purge_expired(now).await;
        self.leave("purge_expired", result).await
    }
}

#[async_trait]
impl crate::ports::ConversationStore for CountingStore {
    async fn create_conversation(&self, c: &crate::domain::Conversation) -> Result<(), StoreError> {
        self.enter("create_conversation").await?;
        let result = self.conversations.create_conversation(c).await;
        self.leave("create_conversation", result).await
    }
    async fn get_conversation(
        &self,
        id: &crate::domain::ConversationId,
    ) -> Result<Option<crate::domain::Conversation>, StoreError> {
        self.enter("get_conversation").await?;
        let result = self.conversations.get_conversation(id).await;
        self.leave("get_conversation", result).await
    }
    async fn open_conversation(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
    ) -> Result<Option<crate::domain::Conversation>, StoreError> {
        self.enter("open_conversation").await?;
        let result = self.conversations.open_conversation(business_number, phone).await;
        self.leave("open_conversation", result).await
    }
    async fn update_conversation(&self, c: &crate::domain::Conversation) -> Result<(), StoreError> {
        self.enter("update_conversation").await?;
        let result = self.conversations.update_conversation(c).await;
        self.leave("update_conversation", result).await
    }
    async fn list_conversations(
        &self,
        phone: &PhoneNumber,
        filter: crate::ports::ConversationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<crate::ports::message_store::Page<crate::domain::Conversation>, StoreError> {
        self.enter("list_conversations").await?;
        let result = self
            .conversations
            .list_conversations(phone, filter, limit, cursor)
            .await;
        self.leave("list_conversations", result).await
    }
    async fn list_conversations_by_status(
        &self,
        status: crate::domain::ConversationStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<crate::ports::message_store::Page<crate::domain::Conversation>, StoreError> {
        self.enter("list_conversations_by_status").await?;
        self.conversations
            .list_conversations_by_status(status, limit, cursor)
            .await
    }
}

#[async_trait]
impl crate::ports::CampaignStore for CountingStore {
    async fn put_campaign(&self, c: &crate::domain::Campaign, create: bool) -> Result<(), StoreError> {
        self.enter("put_campaign").await?;
        let result = self.campaigns.put_campaign(c, create).await;
        self.leave("put_campaign", result).await
    }
    async fn get_campaign(&self, id: &str) -> Result<Option<crate::domain::Campaign>, StoreError> {
        self.enter("get_campaign").await?;
        let result = self.campaigns.get_campaign(id).await;
        self.leave("get_campaign", result).await
    }
    async fn list_campaigns(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<crate::domain::Campaign>, StoreError> {
        self.enter("list_campaigns").await?;
        let result = self.campaigns.list_campaigns(limit, cursor).await;
        self.leave("list_campaigns", result).await
    }
    async fn create_enrolment(&self, e: &crate::domain::Enrolment) -> Result<(), StoreError> {
        self.enter("create_enrolment").await?;
        let result = self.campaigns.create_enrolment(e).await;
        self.leave("create_enrolment", result).await
    }
    async fn get_enrolment(
        &self,
        id: &crate::domain::EnrolmentId,
    ) -> Result<Option<crate::domain::Enrolment>, StoreError> {
        self.enter("get_enrolment").await?;
        let result = self.campaigns.get_enrolment(id).await;
        self.leave("get_enrolment", result).await
    }
    async fn enrolment_of(
        &self,
        campaign_id: &str,
        phone: &PhoneNumber,
    ) -> Result<Option<crate::domain::Enrolment>, StoreError> {
        self.enter("enrolment_of").await?;
        let result = self.campaigns.enrolment_of(campaign_id, phone).await;
        self.leave("enrolment_of", result).await
    }
    async fn update_enrolment(&self, e: &crate::domain::Enrolment) -> Result<(), StoreError> {
        self.enter("update_enrolment").await?;
        let result = self.campaigns.update_enrolment(e).await;
        self.leave("update_enrolment", result).await
    }
    async fn enrolments_of_phone(&self, phone: &PhoneNumber) -> Result<Vec<crate::domain::Enrolment>, StoreError> {
        self.enter("enrolments_of_phone").await?;
        let result = self.campaigns.enrolments_of_phone(phone).await;
        self.leave("enrolments_of_phone", result).await
    }
    async fn due_enrolments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::domain::Enrolment>, StoreError> {
        self.enter("due_enrolments").await?;
        let result = self.campaigns.due_enrolments(now, limit).await;
        self.leave("due_enrolments", result).await
    }
}
