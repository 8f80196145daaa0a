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

/// Counts every call by method name; `fail_next(method, n)` makes the next `n` calls of `method` fail.
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
        }
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

    fn enter(&self, method: &'static str) -> Result<(), StoreError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(method)
            .or_default() += 1;
        let mut f = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match f.get_mut(method) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(StoreError::Unexpected(anyhow::anyhow!("injected fault in {method}")))
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl MessageStore for CountingStore {
    async fn create_message(&self, message: &Message) -> Result<(), StoreError> {
        self.enter("create_message")?;
        self.messages.create_message(message).await
    }
    /// Delegated, so the wrapped store's own bulk path runs (not the trait's one-by-one default).
    async fn create_messages(&self, messages: &[Message]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.enter("create_messages")?;
        self.messages.create_messages(messages).await
    }
    async fn get_message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        self.enter("get_message")?;
        self.messages.get_message(id).await
    }
    async fn update_message(&self, message: &Message) -> Result<(), StoreError> {
        self.enter("update_message")?;
        self.messages.update_message(message).await
    }
    async fn link_provider_sid(&self, sid: &ProviderSid, id: &MessageId) -> Result<(), StoreError> {
        self.enter("link_provider_sid")?;
        self.messages.link_provider_sid(sid, id).await
    }
    async fn message_id_for_sid(&self, sid: &ProviderSid) -> Result<Option<MessageId>, StoreError> {
        self.enter("message_id_for_sid")?;
        self.messages.message_id_for_sid(sid).await
    }
    async fn record_webhook(&self, record: &WebhookRecord) -> Result<bool, StoreError> {
        self.enter("record_webhook")?;
        self.messages.record_webhook(record).await
    }
    async fn list_messages_to(
        &self,
        to: &PhoneNumber,
        status: Option<MessageStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, StoreError> {
        self.enter("list_messages_to")?;
        self.messages.list_messages_to(to, status, limit, cursor).await
    }
}

#[async_trait]
impl MessageQueries for CountingStore {
    async fn list_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>, StoreError> {
        self.enter("list_due")?;
        self.queries.list_due(now, limit).await
    }
    async fn list_failed(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Message>, StoreError> {
        self.enter("list_failed")?;
        self.queries.list_failed(limit, cursor).await
    }
    async fn list_by_ref(&self, reference: &crate::domain::Ref, limit: usize) -> Result<Vec<Message>, StoreError> {
        self.enter("list_by_ref")?;
        self.queries.list_by_ref(reference, limit).await
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
        self.enter("add")?;
        self.counters.add(key, by, expires_at, now).await
    }
    async fn reset(&self, key: &str) -> Result<(), StoreError> {
        self.enter("reset")?;
        self.counters.reset(key).await
    }
    /// Delegated, so the wrapped store's own one-call path runs.
    async fn add_many(&self, ops: &[crate::ports::CounterOp], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        self.enter("add_many")?;
        self.counters.add_many(ops, now).await
    }
    async fn values(&self, keys: &[String], now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        self.enter("values")?;
        self.counters.values(keys, now).await
    }
    async fn claim(&self, key: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        self.enter("claim")?;
        self.counters.claim(key, now, until).await
    }
    async fn put_doc(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.enter("put_doc")?;
        self.counters.put_doc(key, doc, expires_at).await
    }
    async fn get_doc(&self, key: &str, now: DateTime<Utc>) -> Result<Option<serde_json::Value>, StoreError> {
        self.enter("get_doc")?;
        self.counters.get_doc(key, now).await
    }
    async fn reserve_slot(
        &self,
        key: &str,
        now: DateTime<Utc>,
        gap: std::time::Duration,
        deadline: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.enter("reserve_slot")?;
        self.counters.reserve_slot(key, now, gap, deadline).await
    }
}

#[async_trait]
impl ConsentStore for CountingStore {
    async fn opt_out(&self, phone: &PhoneNumber, reason: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.enter("opt_out")?;
        self.consent.opt_out(phone, reason, at).await
    }
    async fn opt_in(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        self.enter("opt_in")?;
        self.consent.opt_in(phone).await
    }
    async fn opt_out_of(&self, phone: &PhoneNumber) -> Result<Option<OptOut>, StoreError> {
        self.enter("opt_out_of")?;
        self.consent.opt_out_of(phone).await
    }
    async fn append_consent(
        &self,
        phone: &PhoneNumber,
        evidence: &crate::domain::ConsentEvidence,
    ) -> Result<bool, StoreError> {
        self.enter("append_consent")?;
        self.consent.append_consent(phone, evidence).await
    }
    async fn consent_history(&self, phone: &PhoneNumber) -> Result<Vec<crate::domain::ConsentEvidence>, StoreError> {
        self.enter("consent_history")?;
        self.consent.consent_history(phone).await
    }
    async fn take_send_slot(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<bool, StoreError> {
        self.enter("take_send_slot")?;
        self.consent.take_send_slot(phone, now, window, limit).await
    }
    /// Delegated, so the wrapped store's own one-call path runs.
    async fn check_send(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        window: chrono::Duration,
        limit: u32,
    ) -> Result<crate::ports::SendCheck, StoreError> {
        self.enter("check_send")?;
        self.consent.check_send(phone, now, window, limit).await
    }
}

#[async_trait]
impl IdempotencyStore for CountingStore {
    async fn begin(&self, key: &str, request_hash: &str, now: DateTime<Utc>) -> Result<Begin, StoreError> {
        self.enter("begin")?;
        self.idempotency.begin(key, request_hash, now).await
    }
    async fn complete(
        &self,
        key: &str,
        request_hash: &str,
        response: &SavedResponse,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.enter("complete")?;
        self.idempotency.complete(key, request_hash, response, now).await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.enter("release")?;
        self.idempotency.release(key).await
    }
}

#[async_trait]
impl BatchStore for CountingStore {
    async fn create_batch(&self, record: &BatchRecord) -> Result<(), StoreError> {
        self.enter("create_batch")?;
        self.batches.create_batch(record).await
    }
    async fn get_batch(&self, id: &str, now: DateTime<Utc>) -> Result<Option<BatchState>, StoreError> {
        self.enter("get_batch")?;
        self.batches.get_batch(id, now).await
    }
    async fn record_item(
        &self,
        id: &str,
        item: &MessageId,
        outcome: ItemOutcome,
        now: DateTime<Utc>,
    ) -> Result<Option<BatchState>, StoreError> {
        self.enter("record_item")?;
        self.batches.record_item(id, item, outcome, now).await
    }
    async fn add_finished(&self, id: &str, n: u32) -> Result<(), StoreError> {
        self.enter("add_finished")?;
        self.batches.add_finished(id, n).await
    }
    async fn claim_completion(&self, id: &str) -> Result<bool, StoreError> {
        self.enter("claim_completion")?;
        self.batches.claim_completion(id).await
    }
    async fn mark_alerted(&self, id: &str) -> Result<(), StoreError> {
        self.enter("mark_alerted")?;
        self.batches.mark_alerted(id).await
    }
}

#[async_trait]
impl Retention for CountingStore {
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.enter("purge_expired")?;
        self.retention.purge_expired(now).await
    }
}

#[async_trait]
impl crate::ports::ConversationStore for CountingStore {
    async fn create_conversation(&self, c: &crate::domain::Conversation) -> Result<(), StoreError> {
        self.enter("create_conversation")?;
        self.conversations.create_conversation(c).await
    }
    async fn get_conversation(
        &self,
        id: &crate::domain::ConversationId,
    ) -> Result<Option<crate::domain::Conversation>, StoreError> {
        self.enter("get_conversation")?;
        self.conversations.get_conversation(id).await
    }
    async fn open_conversation(
        &self,
        business_number: &PhoneNumber,
        phone: &PhoneNumber,
    ) -> Result<Option<crate::domain::Conversation>, StoreError> {
        self.enter("open_conversation")?;
        self.conversations.open_conversation(business_number, phone).await
    }
    async fn update_conversation(&self, c: &crate::domain::Conversation) -> Result<(), StoreError> {
        self.enter("update_conversation")?;
        self.conversations.update_conversation(c).await
    }
    async fn list_conversations(
        &self,
        phone: &PhoneNumber,
        filter: crate::ports::ConversationFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<crate::ports::message_store::Page<crate::domain::Conversation>, StoreError> {
        self.enter("list_conversations")?;
        self.conversations
            .list_conversations(phone, filter, limit, cursor)
            .await
    }
    async fn list_conversations_by_status(
        &self,
        status: crate::domain::ConversationStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<crate::ports::message_store::Page<crate::domain::Conversation>, StoreError> {
        self.enter("list_conversations_by_status")?;
        self.conversations
            .list_conversations_by_status(status, limit, cursor)
            .await
    }
}

#[async_trait]
impl crate::ports::CampaignStore for CountingStore {
    async fn put_campaign(&self, c: &crate::domain::Campaign, create: bool) -> Result<(), StoreError> {
        self.enter("put_campaign")?;
        self.campaigns.put_campaign(c, create).await
    }
    async fn get_campaign(&self, id: &str) -> Result<Option<crate::domain::Campaign>, StoreError> {
        self.enter("get_campaign")?;
        self.campaigns.get_campaign(id).await
    }
    async fn list_campaigns(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<crate::domain::Campaign>, StoreError> {
        self.enter("list_campaigns")?;
        self.campaigns.list_campaigns(limit, cursor).await
    }
    async fn create_enrolment(&self, e: &crate::domain::Enrolment) -> Result<(), StoreError> {
        self.enter("create_enrolment")?;
        self.campaigns.create_enrolment(e).await
    }
    async fn get_enrolment(
        &self,
        id: &crate::domain::EnrolmentId,
    ) -> Result<Option<crate::domain::Enrolment>, StoreError> {
        self.enter("get_enrolment")?;
        self.campaigns.get_enrolment(id).await
    }
    async fn enrolment_of(
        &self,
        campaign_id: &str,
        phone: &PhoneNumber,
    ) -> Result<Option<crate::domain::Enrolment>, StoreError> {
        self.enter("enrolment_of")?;
        self.campaigns.enrolment_of(campaign_id, phone).await
    }
    async fn update_enrolment(&self, e: &crate::domain::Enrolment) -> Result<(), StoreError> {
        self.enter("update_enrolment")?;
        self.campaigns.update_enrolment(e).await
    }
    async fn enrolments_of_phone(&self, phone: &PhoneNumber) -> Result<Vec<crate::domain::Enrolment>, StoreError> {
        self.enter("enrolments_of_phone")?;
        self.campaigns.enrolments_of_phone(phone).await
    }
    async fn due_enrolments(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::domain::Enrolment>, StoreError> {
        self.enter("due_enrolments")?;
        self.campaigns.due_enrolments(now, limit).await
    }
}
