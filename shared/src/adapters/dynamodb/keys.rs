//! The single-table layout: attribute names, and the only code that builds key strings.
//!
//! | item | `pk` | `sk` | index keys | other |
//! |---|---|---|---|---|
//! | message | `MSG#<message id>` | `META` | `gsi1pk` `TO#<e164>`, `gsi1sk` `<message id>`; if due: `gsi2pk` `DUE#<shard>`, `gsi2sk` `<due_at>#<message id>`; if failed-listed: `gsi3pk` `FAILED`, `gsi3sk` `<updated_at>#<message id>` | the `Message` fields, numeric `version` |
//! | provider sid pointer | `PROV#<sid>` | `PROV` | | `message_id` |
//! | webhook receipt | `HOOK#<dedupe key>` | `HOOK` | | `expires_at` (TTL, epoch seconds) |
//! | opt-out | `OPTOUT#<e164>` | `OPTOUT` | | `reason`, `at` (RFC 3339) |
//! | conversation | `CONV#<conversation id>` | `META` | `gsi1pk` `CONVS#<e164>`, `gsi1sk` `<conversation id>`; `gsi3pk` `CONVSTATUS#<status>`, `gsi3sk` `<conversation id>` | numeric `version`, the record as JSON in `doc` |
//! | open-conversation pointer | `CONVPAIR#<business e164>#<phone e164>` | `OPEN` | | `conversation_id` |
//! | campaign | `CAMPAIGN#<campaign id>` | `META` | `gsi1pk` `CAMPAIGNS`, `gsi1sk` `<campaign id>` | the record as JSON in `doc` |
//! | enrolment | `ENR#<enrolment id>` | `META` | `gsi1pk` `ENRS#<e164>`, `gsi1sk` `<enrolment id>`; if due: `gsi2pk` `EDUE#<shard>`, `gsi2sk` `<due_at>#<enrolment id>` | numeric `version`, the record as JSON in `doc` |
//! | enrolment pair pointer | `ENRPAIR#<campaign id>#<phone e164>` | `ENRPAIR` | | `enrolment_id` |
//! | consent entry | `CONSENT#<e164>` | `EVIDENCE#<dedupe key>` | | `status`, `at`, `keyword`, `channel`, `message_sid` |
//! | send slots | `SLOTS#<e164>` | `SLOTS` | | `sends` (epoch millis), `version`, `expires_at` (TTL) |
//! | idempotency record | `IDEM#<scope>:<key>` | `IDEM` | | `request_hash`, `state`, `lease_until`, `expires_at` (TTL), `status`, `body` |
//! | ref pointer | `REF#<type length>#<type>#<id>` | `<message id>` | | |
//! | counter | `CNT#<key>` | `CNT` | | `value` (Number), `expires_at` (TTL, optional) |
//! | claim | `CLAIM#<key>` | `CLAIM` | | `until` (epoch millis), `expires_at` (TTL) |
//! | document | `DOC#<key>` | `DOC` | | `doc` (JSON text), `expires_at` (TTL, optional) |
//! | batch | `BATCH#<batch id>` | `BATCH` | | `total`, `accepted`, `rejected`, `created_at`, the tallies, `completed`, `alerted`, `expires_at` (TTL) |
//! | batch item counted | `BATCH#<batch id>` | `ITEM#<message id>` | | `expires_at` (TTL) |
//!
//! Message ids are ULIDs, so `gsi1sk` sorts a recipient's messages by creation time. Times in
//! index sort keys are fixed-width UTC (`2026-03-01T12:00:00.000Z`, [`sortable_time`]), so text
//! order is time order. `<shard>` is FNV-1a of the message id modulo [`DUE_SHARDS`], spreading
//! the due index over partitions. Provider sids are restricted to `[A-Za-z0-9_-]` by
//! `ProviderSid::parse`, so they cannot forge a separator; idempotency keys and refs may contain
//! `#`, but their `pk` prefix and `sk` keep them apart from every other item type, and a ref's
//! `pk` states the length of its type, so `("a#b", "c")` and `("a", "b#c")` stay apart.
//! Nothing outside this file may format a key; the other files of this module call these functions.

use crate::domain::{Message, MessageId, PhoneNumber, ProviderSid, Ref};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Partition key attribute of every item.
pub const PK: &str = "pk";
/// Sort key attribute of every item.
pub const SK: &str = "sk";
/// Partition key of the `gsi1` index (messages only): the recipient.
pub const GSI1PK: &str = "gsi1pk";
/// Sort key of the `gsi1` index (messages only): the message id.
pub const GSI1SK: &str = "gsi1sk";
/// The recipient index: a recipient's messages, ordered by id (so by creation time).
pub const GSI1: &str = "gsi1";
/// Partition key of the `gsi2` index (the due index, declared by template.yaml).
pub const GSI2PK: &str = "gsi2pk";
/// Sort key of the `gsi2` index.
pub const GSI2SK: &str = "gsi2sk";
/// The due index (template.yaml): sparse, only messages with a due time.
pub const GSI2: &str = "gsi2";
/// Partition key of the `gsi3` index (the failed list, declared by template.yaml).
pub const GSI3PK: &str = "gsi3pk";
/// Sort key of the `gsi3` index.
pub const GSI3SK: &str = "gsi3sk";
/// The failed list (template.yaml): sparse, only messages listed for an operator.
pub const GSI3: &str = "gsi3";
/// Optimistic-concurrency version of a message item (a Number), checked by every update.
pub const VERSION: &str = "version";
/// Status of a message item (the snake_case wire name), used by the listing filter; in an
/// idempotency record, the saved HTTP status (a Number).
pub const STATUS: &str = "status";
/// The saved response body of a completed idempotency record.
pub const BODY: &str = "body";
/// The message a provider sid pointer (or a webhook receipt) names.
pub const MESSAGE_ID: &str = "message_id";
/// TTL attribute (epoch seconds, a Number); the table's TimeToLiveSpecification names it.
pub const EXPIRES_AT: &str = "expires_at";
/// Why a number opted out (opt-out items).
pub const REASON: &str = "reason";
/// When a number opted out, RFC 3339 (opt-out items).
pub const AT: &str = "at";
/// The send times still inside the window, epoch milliseconds (send-slot items, a List of Numbers).
pub const SENDS: &str = "sends";
/// Hash of the request body that claimed an idempotency key.
pub const REQUEST_HASH: &str = "request_hash";
/// `in_progress` or `completed` (idempotency records).
pub const STATE: &str = "state";
/// Until when an in-progress idempotency record blocks a repeat (epoch seconds, a Number).
pub const LEASE_UNTIL: &str = "lease_until";

/// A record kept whole as JSON (conversation items).
pub const DOC: &str = "doc";
/// The conversation a pair pointer names.
pub const CONVERSATION_ID: &str = "conversation_id";
/// Sort key of a conversation item.
pub const CONVERSATION_SK: &str = "META";
/// Sort key of a pair's open-conversation pointer.
pub const CONVERSATION_PAIR_SK: &str = "OPEN";

/// `state` of an idempotency record whose request is still running.
pub const STATE_IN_PROGRESS: &str = "in_progress";
/// `state` of an idempotency record holding a response to replay.
pub const STATE_COMPLETED: &str = "completed";
/// How many partitions the due index is spread over (`DUE#0` … `DUE#15`). `list_due` queries
/// each of them, so this is also the number of Query calls it makes.
pub const DUE_SHARDS: u32 = 16;
/// `gsi3pk` of every message on the failed list.
pub const FAILED_GSI3PK: &str = "FAILED";
/// The upper bound appended to a due time in a `gsi2sk` range: `~` sorts after `#` and every
/// character of a message id, so `<now>#~` is after every `<now>#<message id>`.
const DUE_UPPER_SUFFIX: &str = "#~";
/// The `strftime` format of [`sortable_time`].
const SORTABLE_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Sort key of a campaign or enrolment item.
pub const CAMPAIGN_SK: &str = "META";
/// Sort key of an enrolment pair pointer.
pub const ENROLMENT_PAIR_SK: &str = "ENRPAIR";
/// `gsi1pk` of every campaign (the campaign list: campaigns are few).
pub const CAMPAIGNS_GSI1PK: &str = "CAMPAIGNS";
/// The enrolment an enrolment pair pointer names.
pub const ENROLMENT_ID: &str = "enrolment_id";

/// Sort key of a message item.
pub const MESSAGE_SK: &str = "META";
/// Sort key of a provider sid pointer.
pub const PROVIDER_SID_SK: &str = "PROV";
/// Sort key of a webhook receipt.
pub const WEBHOOK_SK: &str = "HOOK";
/// Sort key of an opt-out.
pub const OPT_OUT_SK: &str = "OPTOUT";
/// Sort key of a recipient's send slots.
pub const SEND_SLOTS_SK: &str = "SLOTS";
/// Sort key of an idempotency record.
pub const IDEMPOTENCY_SK: &str = "IDEM";

/// Sort key of a counter item.
pub const COUNTER_SK: &str = "CNT";
/// Sort key of a claim item.
pub const CLAIM_SK: &str = "CLAIM";
/// Sort key of a document item.
pub const DOC_SK: &str = "DOC";
/// Sort key of a batch record.
pub const BATCH_SK: &str = "BATCH";

/// How long a webhook receipt is kept for deduplication (Twilio retries within minutes to hours).
const WEBHOOK_RETENTION_DAYS: i64 = 30;

/// `pk` of a message item.
pub fn message_pk(id: &MessageId) -> String {
    format!("MSG#{id}")
}

/// `gsi1pk` of a recipient's messages.
pub fn recipient_gsi1pk(to: &PhoneNumber) -> String {
    format!("TO#{}", to.as_str())
}

/// `gsi1sk` of a message item: its id, so the index sorts by creation time.
pub fn message_gsi1sk(id: &MessageId) -> String {
    id.as_str().to_owned()
}

/// `pk` of a provider sid pointer.
pub fn provider_sid_pk(sid: &ProviderSid) -> String {
    format!("PROV#{sid}")
}

/// `pk` of a webhook receipt.
pub fn webhook_pk(key: &str) -> String {
    format!("HOOK#{key}")
}

/// `expires_at` of a webhook receipt: 30 days after it arrived, in epoch seconds.
pub fn webhook_expires_at(received_at: DateTime<Utc>) -> i64 {
    received_at
        .timestamp()
        .saturating_add(WEBHOOK_RETENTION_DAYS * 24 * 60 * 60)
}

/// Fixed-width UTC time with milliseconds (`2026-03-01T12:00:00.000Z`), so that text order is
/// time order in an index sort key. Sub-millisecond digits are dropped (`SqliteStore` keys its
/// due index the same way).
pub fn sortable_time(t: &DateTime<Utc>) -> String {
    t.format(SORTABLE_TIME_FORMAT).to_string()
}

/// 32-bit FNV-1a of `text`: stable across processes and releases (unlike `std`'s hasher), so it
/// may be part of a stored key or of a request token.
fn fnv1a(text: &str) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    text.bytes()
        .fold(OFFSET_BASIS, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

/// The due-index shard of a message: 32-bit FNV-1a of its id, modulo [`DUE_SHARDS`].
pub fn due_shard(id: &MessageId) -> u32 {
    fnv1a(id.as_str()) % DUE_SHARDS
}

/// The `ClientRequestToken` of a bulk-create transaction whose first message is `first`, on
/// `table`: the id's ULID, `-`, and the table name's FNV-1a in hex (35 characters; DynamoDB
/// allows 36). DynamoDB keeps a token for ten minutes per account and region, not per table, and
/// answers `IdempotentParameterMismatch` to the same token with other items: a token of the id
/// alone refused the batches of a second table that reuses the ids (one simulation seed replayed
/// on one DynamoDB Local, tests/sim). Ids are unique, so in AWS the token is as unique as before.
pub fn create_chunk_token(table: &str, first: &MessageId) -> String {
    let id = first.as_str();
    let ulid = id.strip_prefix("msg_").unwrap_or(id);
    format!("{ulid}-{:08x}", fnv1a(table))
}

/// `gsi2pk` of due-index shard `shard` (`DUE#<shard>`).
pub fn due_gsi2pk(shard: u32) -> String {
    format!("DUE#{shard}")
}

/// `gsi2sk` of a due message: `<due_at>#<message id>`, so a shard sorts by due time, then id.
pub fn due_gsi2sk(due_at: &DateTime<Utc>, id: &MessageId) -> String {
    format!("{}#{id}", sortable_time(due_at))
}

/// The largest `gsi2sk` a message due at or before `now` can have: `<now>#~`.
pub fn due_gsi2sk_upper_bound(now: &DateTime<Utc>) -> String {
    format!("{}{DUE_UPPER_SUFFIX}", sortable_time(now))
}

/// `gsi3sk` of a message on the failed list: `<updated_at>#<message id>`.
pub fn failed_gsi3sk(updated_at: &DateTime<Utc>, id: &MessageId) -> String {
    format!("{}#{id}", sortable_time(updated_at))
}

/// The due-index shard of an enrolment (FNV-1a of its id, as [`due_shard`]).
pub fn enrolment_due_shard(id: &crate::domain::EnrolmentId) -> u32 {
    fnv1a(id.as_str()) % DUE_SHARDS
}

/// `gsi2pk` of enrolment due-index shard `shard` (`EDUE#<shard>`; messages use `DUE#`).
pub fn enrolment_due_gsi2pk(shard: u32) -> String {
    format!("EDUE#{shard}")
}

/// The primary key of a campaign item.
pub fn campaign_key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(format!("CAMPAIGN#{id}"))),
        (SK.to_owned(), s(CAMPAIGN_SK.to_owned())),
    ])
}

/// Every key attribute of a campaign item (the table key, and `gsi1` `CAMPAIGNS` / id).
pub fn campaign_item_keys(id: &str) -> HashMap<String, AttributeValue> {
    let mut keys = campaign_key(id);
    keys.insert(GSI1PK.to_owned(), s(CAMPAIGNS_GSI1PK.to_owned()));
    keys.insert(GSI1SK.to_owned(), s(id.to_owned()));
    keys
}

/// The primary key of an enrolment item.
pub fn enrolment_key(id: &crate::domain::EnrolmentId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(format!("ENR#{id}"))),
        (SK.to_owned(), s(CAMPAIGN_SK.to_owned())),
    ])
}

/// `gsi1pk` of a phone's enrolments.
pub fn enrolments_gsi1pk(phone: &PhoneNumber) -> String {
    format!("ENRS#{}", phone.as_str())
}

/// Every key attribute of an enrolment item: the table key, `gsi1` (phone, id) and, when it is
/// due, `gsi2` (`EDUE#<shard>`, `<due_at>#<id>`).
pub fn enrolment_item_keys(e: &crate::domain::Enrolment) -> HashMap<String, AttributeValue> {
    let mut keys = enrolment_key(&e.id);
    keys.insert(GSI1PK.to_owned(), s(enrolments_gsi1pk(&e.lead.phone)));
    keys.insert(GSI1SK.to_owned(), s(e.id.as_str().to_owned()));
    if let Some(due) = e.due_at() {
        keys.insert(GSI2PK.to_owned(), s(enrolment_due_gsi2pk(enrolment_due_shard(&e.id))));
        keys.insert(GSI2SK.to_owned(), s(format!("{}#{}", sortable_time(&due), e.id)));
    }
    keys
}

/// The primary key of the pointer that makes one enrolment per (campaign, phone). Campaign ids
/// are `[A-Za-z0-9_-]` and E.164 holds no `#`, so pairs cannot collide.
pub fn enrolment_pair_key(campaign_id: &str, phone: &PhoneNumber) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(format!("ENRPAIR#{campaign_id}#{}", phone.as_str()))),
        (SK.to_owned(), s(ENROLMENT_PAIR_SK.to_owned())),
    ])
}

/// `pk` of an opt-out.
pub fn opt_out_pk(phone: &PhoneNumber) -> String {
    format!("OPTOUT#{}", phone.as_str())
}

/// `pk` of a conversation item.
pub fn conversation_pk(id: &crate::domain::ConversationId) -> String {
    format!("CONV#{id}")
}

/// `gsi1pk` of a phone's conversations (the recipient index, overloaded: message items use `TO#`).
pub fn conversations_gsi1pk(phone: &PhoneNumber) -> String {
    format!("CONVS#{}", phone.as_str())
}

/// The primary key of a conversation item.
pub fn conversation_key(id: &crate::domain::ConversationId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(conversation_pk(id))),
        (SK.to_owned(), s(CONVERSATION_SK.to_owned())),
    ])
}

/// Every key attribute of a conversation item: the table key and `gsi1` (the phone, then the id,
/// so a phone's conversations sort by creation time).
pub fn conversation_item_keys(
    id: &crate::domain::ConversationId,
    phone: &PhoneNumber,
) -> HashMap<String, AttributeValue> {
    let mut keys = conversation_key(id);
    keys.insert(GSI1PK.to_owned(), s(conversations_gsi1pk(phone)));
    keys.insert(GSI1SK.to_owned(), s(id.as_str().to_owned()));
    keys
}

/// `gsi3pk` of the conversations in `status` (the console's lists by status).
pub fn conversations_status_gsi3pk(status: crate::domain::ConversationStatus) -> String {
    format!("CONVSTATUS#{}", status.as_str())
}

/// Every key attribute of a conversation item in `status`: [`conversation_item_keys`] and `gsi3`
/// (the status, then the id, so each status lists newest first).
pub fn conversation_status_keys(
    id: &crate::domain::ConversationId,
    phone: &PhoneNumber,
    status: crate::domain::ConversationStatus,
) -> HashMap<String, AttributeValue> {
    let mut keys = conversation_item_keys(id, phone);
    keys.insert(GSI3PK.to_owned(), s(conversations_status_gsi3pk(status)));
    keys.insert(GSI3SK.to_owned(), s(id.as_str().to_owned()));
    keys
}

/// The primary key of the open-conversation pointer of (`business_number`, `phone`):
/// `CONVPAIR#<business>#<phone>` / `OPEN`. E.164 numbers hold no `#`, so pairs cannot collide.
pub fn conversation_pair_key(business_number: &PhoneNumber, phone: &PhoneNumber) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            PK.to_owned(),
            s(format!("CONVPAIR#{}#{}", business_number.as_str(), phone.as_str())),
        ),
        (SK.to_owned(), s(CONVERSATION_PAIR_SK.to_owned())),
    ])
}

/// `pk` of a phone's consent history (one item per entry).
pub fn consent_pk(phone: &PhoneNumber) -> String {
    format!("CONSENT#{}", phone.as_str())
}

/// `sk` of a consent-history entry: `EVIDENCE#<dedupe key>` (the provider's message id, or the
/// time, channel and status), so a redelivered webhook writes the same key twice.
pub fn consent_sk(evidence: &crate::domain::ConsentEvidence) -> String {
    format!("EVIDENCE#{}", evidence.dedupe_key())
}

/// `pk` of a recipient's send slots.
pub fn send_slots_pk(phone: &PhoneNumber) -> String {
    format!("SLOTS#{}", phone.as_str())
}

/// `expires_at` of a send-slot item written at `now`: the end of the window in epoch seconds,
/// rounded up, when every send it holds has aged out (so an idle item can be deleted by TTL).
pub fn send_slots_expires_at(now: DateTime<Utc>, window: chrono::Duration) -> i64 {
    let end = now.checked_add_signed(window).unwrap_or(now);
    end.timestamp()
        .saturating_add(i64::from(end.timestamp_subsec_nanos() > 0))
}

/// `pk` of the pointers from a caller's entity link to its messages:
/// `REF#<byte length of the type>#<type>#<id>`.
pub fn ref_pk(reference: &Ref) -> String {
    format!("REF#{}#{}#{}", reference.kind.len(), reference.kind, reference.id)
}

/// `sk` of a ref pointer: the message id, so a ref's messages sort by creation time.
pub fn ref_pointer_sk(id: &MessageId) -> String {
    id.as_str().to_owned()
}

/// `pk` of an idempotency record (`key` is `<scope>:<key>` as the caller gives it).
pub fn idempotency_pk(key: &str) -> String {
    format!("IDEM#{key}")
}

/// `pk` of a counter item (`key` as the caller gives it).
pub fn counter_pk(key: &str) -> String {
    format!("CNT#{key}")
}

/// `pk` of a claim item.
pub fn claim_pk(key: &str) -> String {
    format!("CLAIM#{key}")
}

/// `pk` of a document item.
pub fn doc_pk(key: &str) -> String {
    format!("DOC#{key}")
}

/// `pk` of a batch record and of its counted items (one partition per batch).
pub fn batch_pk(id: &str) -> String {
    format!("BATCH#{id}")
}

/// `sk` of the marker that a batch item was counted.
pub fn batch_item_sk(item: &MessageId) -> String {
    format!("ITEM#{item}")
}

fn s(value: String) -> AttributeValue {
    AttributeValue::S(value)
}

/// The primary key of a counter item.
pub fn counter_key(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(counter_pk(key))),
        (SK.to_owned(), s(COUNTER_SK.to_owned())),
    ])
}

/// The primary key of a claim item.
pub fn claim_key(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(claim_pk(key))),
        (SK.to_owned(), s(CLAIM_SK.to_owned())),
    ])
}

/// The primary key of a document item.
pub fn doc_key(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), s(doc_pk(key))), (SK.to_owned(), s(DOC_SK.to_owned()))])
}

/// The primary key of a batch record.
pub fn batch_key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(batch_pk(id))),
        (SK.to_owned(), s(BATCH_SK.to_owned())),
    ])
}

/// The primary key of a batch item's counted marker.
pub fn batch_item_key(id: &str, item: &MessageId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(batch_pk(id))),
        (SK.to_owned(), s(batch_item_sk(item))),
    ])
}

/// The primary key of a message item, for GetItem.
pub fn message_key(id: &MessageId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(message_pk(id))),
        (SK.to_owned(), s(MESSAGE_SK.to_owned())),
    ])
}

/// The four key attributes a message item carries (table key and `gsi1` key).
pub fn message_index_key(id: &MessageId, to: &PhoneNumber) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(message_pk(id))),
        (SK.to_owned(), s(MESSAGE_SK.to_owned())),
        (GSI1PK.to_owned(), s(recipient_gsi1pk(to))),
        (GSI1SK.to_owned(), s(message_gsi1sk(id))),
    ])
}

/// Every key attribute a message item carries: the table key, `gsi1` always, `gsi2` only while
/// it has a due time and `gsi3` only while it is on the failed list (both indexes are sparse, and
/// an update is a whole-item PutItem, so a dropped attribute leaves its index at once).
pub fn message_item_keys(message: &Message) -> HashMap<String, AttributeValue> {
    let mut keys = message_index_key(&message.id, &message.to);
    if let Some(due_at) = &message.due_at {
        keys.insert(GSI2PK.to_owned(), s(due_gsi2pk(due_shard(&message.id))));
        keys.insert(GSI2SK.to_owned(), s(due_gsi2sk(due_at, &message.id)));
    }
    if message.failed_listed {
        keys.insert(GSI3PK.to_owned(), s(FAILED_GSI3PK.to_owned()));
        keys.insert(GSI3SK.to_owned(), s(failed_gsi3sk(&message.updated_at, &message.id)));
    }
    keys
}

/// The primary key of an opt-out.
pub fn opt_out_key(phone: &PhoneNumber) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(opt_out_pk(phone))),
        (SK.to_owned(), s(OPT_OUT_SK.to_owned())),
    ])
}

/// The primary key of a recipient's send slots.
pub fn send_slots_key(phone: &PhoneNumber) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(send_slots_pk(phone))),
        (SK.to_owned(), s(SEND_SLOTS_SK.to_owned())),
    ])
}

/// The primary key of an idempotency record.
pub fn idempotency_key(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(idempotency_pk(key))),
        (SK.to_owned(), s(IDEMPOTENCY_SK.to_owned())),
    ])
}

/// The primary key of a provider sid pointer.
pub fn provider_sid_key(sid: &ProviderSid) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(provider_sid_pk(sid))),
        (SK.to_owned(), s(PROVIDER_SID_SK.to_owned())),
    ])
}

/// The listing cursor: the `gsi1` `LastEvaluatedKey` equivalent of the last message returned.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct CursorKey {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
}

/// Encode the cursor that resumes a `gsi1` listing of `to` after message `last`:
/// base64url (no padding) of the JSON of its four key attributes.
///
/// # Errors
/// `Unexpected` if the JSON cannot be written (it always can for strings).
pub fn encode_cursor(to: &PhoneNumber, last: &MessageId) -> Result<String, StoreError> {
    let key = CursorKey {
        pk: message_pk(last),
        sk: MESSAGE_SK.to_owned(),
        gsi1pk: recipient_gsi1pk(to),
        gsi1sk: message_gsi1sk(last),
    };
    let json = serde_json::to_vec(&key)
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode listing cursor")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Read a cursor for a listing of `to` back into the `ExclusiveStartKey` it stands for.
///
/// The key is rebuilt from the parsed id rather than echoed, so a cursor can only ever resume
/// this recipient's listing.
///
/// # Errors
/// `Corrupt` if it is not base64url JSON of a message key of this recipient.
pub fn decode_cursor(cursor: &str, to: &PhoneNumber) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let unreadable = || StoreError::Corrupt("listing cursor is not readable".to_owned());
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| unreadable())?;
    let key: CursorKey = serde_json::from_slice(&json).map_err(|_| unreadable())?;
    let id = MessageId::parse(&key.gsi1sk).map_err(|_| unreadable())?;
    let expected = CursorKey {
        pk: message_pk(&id),
        sk: MESSAGE_SK.to_owned(),
        gsi1pk: recipient_gsi1pk(to),
        gsi1sk: message_gsi1sk(&id),
    };
    if key != expected {
        return Err(StoreError::Corrupt(
            "listing cursor belongs to another listing".to_owned(),
        ));
    }
    Ok(message_index_key(&id, to))
}

/// The failed-list cursor: the `gsi3` `LastEvaluatedKey` equivalent of the last message returned.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct FailedCursorKey {
    pk: String,
    sk: String,
    gsi3pk: String,
    gsi3sk: String,
}

impl FailedCursorKey {
    fn new(id: &MessageId, gsi3sk: String) -> Self {
        Self {
            pk: message_pk(id),
            sk: MESSAGE_SK.to_owned(),
            gsi3pk: FAILED_GSI3PK.to_owned(),
            gsi3sk,
        }
    }

    fn into_key(self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), s(self.pk)),
            (SK.to_owned(), s(self.sk)),
            (GSI3PK.to_owned(), s(self.gsi3pk)),
            (GSI3SK.to_owned(), s(self.gsi3sk)),
        ])
    }
}

/// Encode the cursor that resumes the failed list after `last` (a listed message, as stored):
/// base64url (no padding) of the JSON of its four `gsi3` key attributes.
///
/// # Errors
/// `Unexpected` if the JSON cannot be written (it always can for strings).
pub fn encode_failed_cursor(last: &Message) -> Result<String, StoreError> {
    let key = FailedCursorKey::new(&last.id, failed_gsi3sk(&last.updated_at, &last.id));
    let json = serde_json::to_vec(&key)
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("encode failed-list cursor")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Read a failed-list cursor back into the `ExclusiveStartKey` it stands for.
///
/// The key is rebuilt from the parsed time and id rather than echoed, so a cursor can only name
/// a position in the failed list.
///
/// # Errors
/// `Corrupt` if it is not base64url JSON of a `gsi3` key of a message.
pub fn decode_failed_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let unreadable = || StoreError::Corrupt("failed-list cursor is not readable".to_owned());
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| unreadable())?;
    let key: FailedCursorKey = serde_json::from_slice(&json).map_err(|_| unreadable())?;
    let (time, id) = key.gsi3sk.split_once('#').ok_or_else(unreadable)?;
    let id = MessageId::parse(id).map_err(|_| unreadable())?;
    let time = NaiveDateTime::parse_from_str(time, SORTABLE_TIME_FORMAT)
        .map_err(|_| unreadable())?
        .and_utc();
    let expected = FailedCursorKey::new(&id, failed_gsi3sk(&time, &id));
    if key != expected {
        return Err(StoreError::Corrupt(
            "failed-list cursor belongs to another listing".to_owned(),
        ));
    }
    Ok(expected.into_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> MessageId {
        MessageId::parse("msg_01ARZ3NDEKTSV4RRFFQ69G5FAV").expect("id")
    }

    fn to() -> PhoneNumber {
        PhoneNumber::parse_e164("+14155550100").expect("number")
    }

    #[test]
    fn keys_have_the_documented_shapes() {
        assert_eq!(message_pk(&id()), "MSG#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(recipient_gsi1pk(&to()), "TO#+14155550100");
        assert_eq!(message_gsi1sk(&id()), "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let sid = ProviderSid::parse("SM1342fe1b2c904d1ab04f0fc7a58abca9").expect("sid");
        assert_eq!(provider_sid_pk(&sid), "PROV#SM1342fe1b2c904d1ab04f0fc7a58abca9");
        assert_eq!(webhook_pk("SM1:delivered"), "HOOK#SM1:delivered");
    }

    #[test]
    fn webhook_receipts_expire_thirty_days_after_arrival() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).expect("time");
        assert_eq!(webhook_expires_at(at), 1_767_225_600 + 30 * 86_400);
    }

    #[test]
    fn a_cursor_round_trips_to_the_index_key_of_the_last_message() {
        let cursor = encode_cursor(&to(), &id()).expect("cursor");
        assert!(!cursor.contains('='));
        assert_eq!(
            decode_cursor(&cursor, &to()).expect("decode"),
            message_index_key(&id(), &to())
        );
    }

    #[test]
    fn a_cursor_of_another_recipient_is_corrupt() {
        let other = PhoneNumber::parse_e164("+14155550199").expect("number");
        let cursor = encode_cursor(&other, &id()).expect("cursor");
        assert!(matches!(decode_cursor(&cursor, &to()), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn garbage_cursors_are_corrupt() {
        for raw in [
            "",
            "!!!",
            "bm90IGpzb24",
            &URL_SAFE_NO_PAD.encode(br#"{"pk":"MSG#x","sk":"META","gsi1pk":"TO#+1","gsi1sk":"x"}"#),
        ] {
            assert!(
                matches!(decode_cursor(raw, &to()), Err(StoreError::Corrupt(_))),
                "{raw}"
            );
        }
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).expect("time").with_timezone(&Utc)
    }

    fn failed(updated_at: &str) -> Message {
        let mut m = Message::new(
            id(),
            to(),
            "+14155550111".to_owned(),
            crate::domain::MessageBody::parse("hi").expect("body"),
            crate::domain::MessageStatus::Failed,
            None,
            serde_json::Map::new(),
            at(updated_at),
        );
        m.failed_listed = true;
        m
    }

    #[test]
    fn sortable_times_are_fixed_width_milliseconds() {
        assert_eq!(sortable_time(&at("2026-03-01T12:00:00Z")), "2026-03-01T12:00:00.000Z");
        assert_eq!(
            sortable_time(&at("2026-03-01T12:00:00.123456789Z")),
            "2026-03-01T12:00:00.123Z"
        );
        assert_eq!(
            sortable_time(&at("2026-03-01T13:00:00+01:00")),
            "2026-03-01T12:00:00.000Z"
        );
    }

    #[test]
    fn a_create_chunk_token_is_its_first_id_scoped_to_the_table() {
        let token = create_chunk_token("smsrelay", &id());
        assert_eq!(token, format!("01ARZ3NDEKTSV4RRFFQ69G5FAV-{:08x}", fnv1a("smsrelay")));
        assert!(token.len() <= 36, "DynamoDB's limit: {token}");
        assert_eq!(
            token,
            create_chunk_token("smsrelay", &id()),
            "a retry resends the same token"
        );
        assert_ne!(
            token,
            create_chunk_token("smsrelay-2", &id()),
            "another table, another token"
        );
    }

    #[test]
    fn the_due_shard_is_fnv1a_of_the_id_modulo_the_shard_count() {
        // 0xa23070ce is FNV-1a-32 of the id's text; 0xa23070ce % 16 = 14.
        assert_eq!(due_shard(&id()), 14);
        assert_eq!(due_gsi2pk(due_shard(&id())), "DUE#14");
        let spread: std::collections::HashSet<u32> = (0..200)
            .map(|n| {
                due_shard(&MessageId::generate(
                    at("2026-03-01T12:00:00Z") + chrono::Duration::seconds(n),
                ))
            })
            .collect();
        assert!(spread.iter().all(|s| *s < DUE_SHARDS));
        assert_eq!(spread.len(), 16, "200 ids reach every shard");
    }

    #[test]
    fn due_sort_keys_order_by_time_and_the_upper_bound_includes_now() {
        let now = at("2026-03-01T12:00:00Z");
        let sk = due_gsi2sk(&now, &id());
        assert_eq!(sk, "2026-03-01T12:00:00.000Z#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let upper = due_gsi2sk_upper_bound(&now);
        assert_eq!(upper, "2026-03-01T12:00:00.000Z#~");
        assert!(sk <= upper);
        assert!(due_gsi2sk(&(now + chrono::Duration::milliseconds(1)), &id()) > upper);
        assert!(due_gsi2sk(&(now - chrono::Duration::milliseconds(1)), &id()) < sk);
    }

    #[test]
    fn message_items_carry_the_sparse_index_keys_only_when_they_apply() {
        let mut m = failed("2026-03-01T12:00:00Z");
        m.failed_listed = false;
        let plain = message_item_keys(&m);
        assert_eq!(plain, message_index_key(&m.id, &m.to));

        m.due_at = Some(at("2026-03-01T12:30:00Z"));
        m.failed_listed = true;
        let both = message_item_keys(&m);
        assert_eq!(both.get(GSI2PK), Some(&s("DUE#14".to_owned())));
        assert_eq!(
            both.get(GSI2SK),
            Some(&s("2026-03-01T12:30:00.000Z#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()))
        );
        assert_eq!(both.get(GSI3PK), Some(&s("FAILED".to_owned())));
        assert_eq!(
            both.get(GSI3SK),
            Some(&s("2026-03-01T12:00:00.000Z#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()))
        );
    }

    #[test]
    fn consent_and_idempotency_keys_have_the_documented_shapes() {
        assert_eq!(opt_out_pk(&to()), "OPTOUT#+14155550100");
        assert_eq!(send_slots_pk(&to()), "SLOTS#+14155550100");
        assert_eq!(idempotency_pk("send:abc"), "IDEM#send:abc");
        assert_eq!(opt_out_key(&to()).get(SK), Some(&s("OPTOUT".to_owned())));
        assert_eq!(send_slots_key(&to()).get(SK), Some(&s("SLOTS".to_owned())));
        assert_eq!(idempotency_key("k").get(SK), Some(&s("IDEM".to_owned())));
        let r = |kind: &str, id: &str| Ref {
            kind: kind.to_owned(),
            id: id.to_owned(),
        };
        assert_eq!(ref_pk(&r("calendar_event", "evt_1")), "REF#14#calendar_event#evt_1");
        assert_ne!(ref_pk(&r("a#b", "c")), ref_pk(&r("a", "b#c")));
        assert_eq!(ref_pointer_sk(&id()), "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    }

    #[test]
    fn send_slots_expire_at_the_end_of_the_window_rounded_up() {
        let now = at("2026-03-01T12:00:00Z");
        assert_eq!(
            send_slots_expires_at(now, chrono::Duration::hours(1)),
            now.timestamp() + 3600
        );
        let later = now + chrono::Duration::milliseconds(1);
        assert_eq!(
            send_slots_expires_at(later, chrono::Duration::hours(1)),
            now.timestamp() + 3601
        );
    }

    #[test]
    fn a_failed_cursor_round_trips_to_the_gsi3_key_of_the_last_message() {
        let m = failed("2026-03-01T12:00:00.250Z");
        let cursor = encode_failed_cursor(&m).expect("cursor");
        assert!(!cursor.contains('='));
        let key = decode_failed_cursor(&cursor).expect("decode");
        let stored = message_item_keys(&m);
        for name in [PK, SK, GSI3PK, GSI3SK] {
            assert_eq!(key.get(name), stored.get(name), "{name}");
        }
        assert_eq!(key.len(), 4);
    }

    #[test]
    fn garbage_or_foreign_failed_cursors_are_corrupt() {
        let recipient_cursor = encode_cursor(&to(), &id()).expect("cursor");
        let forged = |pk: &str, gsi3pk: &str, gsi3sk: &str| {
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"pk":"{pk}","sk":"META","gsi3pk":"{gsi3pk}","gsi3sk":"{gsi3sk}"}}"#
            ))
        };
        let good_sk = "2026-03-01T12:00:00.000Z#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let good_pk = "MSG#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert!(decode_failed_cursor(&forged(good_pk, "FAILED", good_sk)).is_ok());
        for raw in [
            String::new(),
            "!!!".to_owned(),
            recipient_cursor,
            forged(good_pk, "DUE#1", good_sk),
            forged("MSG#msg_01BX5ZZKBKACTAV9WEVGEMMVRZ", "FAILED", good_sk),
            forged(good_pk, "FAILED", "2026-03-01T12:00:00Z#msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            forged(good_pk, "FAILED", "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ] {
            assert!(
                matches!(decode_failed_cursor(&raw), Err(StoreError::Corrupt(_))),
                "{raw}"
            );
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn the_contract_suites_spread_ids_cover_every_shard_within_its_per_shard_limit() {
        use crate::testing::store_contract::{fixed_id, SPREAD_DUE_COUNT};
        let mut per_shard = [0_u32; DUE_SHARDS as usize];
        for n in 0..SPREAD_DUE_COUNT {
            let shard = due_shard(&fixed_id(n));
            per_shard[usize::try_from(shard).expect("shard")] += 1;
        }
        assert!(per_shard.iter().all(|n| *n >= 1), "{per_shard:?}");
        // list_due(now, 100) reads ceil(100 / 16) = 7 per shard, so all of them are found.
        assert!(per_shard.iter().all(|n| *n <= 5), "{per_shard:?}");
    }
}
