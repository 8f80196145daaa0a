//! Every table and index of the embedded database, in one place. The store, the job queue and
//! the event log may share one file; each creates only its own tables (`IF NOT EXISTS`, so
//! opening an existing file changes nothing). Times are [`super::time`] text unless a column
//! says epoch seconds or milliseconds.

/// The store's tables: messages and their indexes, provider-sid pointers, webhook receipts,
/// consent and its evidence, conversations, campaigns and enrolments, idempotency records, counters, claims and documents, batches and their counted items.
pub(crate) const STORE: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    to_number TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    -- index columns derived from the document on every write (the due index and the failed list)
    due_at TEXT,
    failed_key TEXT,
    ref_key TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_recipient ON messages (to_number, id DESC);
CREATE INDEX IF NOT EXISTS messages_due ON messages (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_failed ON messages (failed_key) WHERE failed_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_ref ON messages (ref_key) WHERE ref_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS provider_sids (
    sid TEXT PRIMARY KEY,
    message_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    message_id TEXT,
    provider_sid TEXT,
    status TEXT,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS opt_outs (
    phone TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
-- consent history: one row per entry, deduplicated on the provider's message id (or time,
-- channel and status), the entry as JSON in doc
CREATE TABLE IF NOT EXISTS consent_evidence (
    phone TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (phone, dedupe_key)
);
-- conversations: the record as JSON in doc; open_pair (business#phone) is set exactly while the
-- conversation is not ended, and UNIQUE, so a pair never has two open conversations
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    phone TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    open_pair TEXT UNIQUE,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_phone ON conversations (phone, id DESC);
CREATE INDEX IF NOT EXISTS conversations_by_status ON conversations (status, id DESC);
-- campaigns: the record as JSON in doc
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
-- enrolments: the record as JSON in doc; UNIQUE (campaign_id, phone) makes one enrolment per
-- lead and campaign; due_at (fixed-width time, NULL when nothing is due) is the due index
CREATE TABLE IF NOT EXISTS enrolments (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    campaign_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    due_at TEXT,
    doc TEXT NOT NULL,
    UNIQUE (campaign_id, phone)
);
CREATE INDEX IF NOT EXISTS enrolments_by_phone ON enrolments (phone);
CREATE INDEX IF NOT EXISTS enrolments_due ON enrolments (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS send_slots (
    phone TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS send_slots_by_phone ON send_slots (phone, at_ms);
-- lease_until and expires_at are epoch seconds
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status INTEGER,
    body TEXT
);
-- expires_at is epoch seconds, like DynamoDB's TTL attribute
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    until TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    expires_at INTEGER
);
-- one row per batch with its tallies; expires_at is epoch seconds
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    total INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0,
    rate_limited INTEGER NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    alerted INTEGER NOT NULL DEFAULT 0
);
-- the items already counted, so each is counted once
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (batch_id, message_id)
);
";

/// The job queue: `visible_at`/`created_at` are fixed-width times, so the `(dead, visible_at)`
/// index serves `receive`.
pub(crate) const QUEUE: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_message_id TEXT UNIQUE,
    payload TEXT NOT NULL,
    visible_at TEXT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_dead_visible_at ON jobs (dead, visible_at);
";

/// The domain-event log: `id` gives the order events were published in; `at` is an exact time.
pub(crate) const EVENTS: &str = "
CREATE TABLE IF NOT EXISTS domain_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    detail_type TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
";

/// The Twilio simulator's accepted messages (what Twilio's side remembers across a restart of
/// smsrelay-local); the rowid is acceptance order (rows are never deleted), `created_at` a
/// fixed-width time.
pub(crate) const SIMULATOR: &str = "
CREATE TABLE IF NOT EXISTS simulator_messages (
    sid TEXT PRIMARY KEY,
    to_number TEXT NOT NULL,
    from_number TEXT NOT NULL,
    messaging_service_sid TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS simulator_messages_by_recipient ON simulator_messages (to_number, created_at);
";
