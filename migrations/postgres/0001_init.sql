-- Ventana schema (PostgreSQL). Instants are Unix milliseconds (UTC) in BIGINT
-- columns, the same in both backends. Keep in step with migrations/sqlite.

CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,   -- SHA-256 of the key, hex; the key itself is never stored
    key_prefix TEXT NOT NULL,      -- first characters, to tell keys apart
    tenant     TEXT NOT NULL,
    roles      TEXT NOT NULL,      -- comma-separated: submitter, adapter, auditor, admin
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE intents (
    tenant       TEXT NOT NULL,
    intent_id    TEXT NOT NULL,
    debtor_id    TEXT NOT NULL,
    debt_id      TEXT,
    channel      TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    priority     BIGINT NOT NULL,
    body         TEXT NOT NULL,    -- the intent as submitted (canonical JSON)
    body_hash    TEXT NOT NULL,    -- idempotency: same id, different body is refused
    status       TEXT NOT NULL,    -- deferred | released | leased | done | rejected | cancelled | expired
    next_eval_at BIGINT,           -- set while deferred
    decision     TEXT NOT NULL,    -- the last decision (JSON)
    dispatch_id  TEXT,
    attempt      BIGINT NOT NULL DEFAULT 0,
    outcome      TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant, intent_id)
);
CREATE INDEX intents_due ON intents (next_eval_at) WHERE status = 'deferred';
CREATE INDEX intents_debt ON intents (tenant, debtor_id, debt_id);

CREATE TABLE dispatches (
    dispatch_id      TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    intent_id        TEXT NOT NULL,
    debtor_id        TEXT NOT NULL,
    channel          TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    released_at      BIGINT NOT NULL,
    not_after        BIGINT NOT NULL,
    state            TEXT NOT NULL, -- ready | leased | acked | withdrawn
    lease_expires_at BIGINT,
    attempt          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX dispatches_open ON dispatches (channel, priority, released_at) WHERE state IN ('ready', 'leased');

-- The history caps and cooldowns count: one row per released contact.
CREATE TABLE contact_events (
    id          BIGSERIAL PRIMARY KEY,
    tenant      TEXT NOT NULL,
    debtor_id   TEXT NOT NULL,
    debt_id     TEXT,
    channel     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    dispatch_id TEXT UNIQUE
);
CREATE INDEX contact_events_debtor ON contact_events (tenant, debtor_id, at);

CREATE TABLE preferences (
    tenant     TEXT NOT NULL,
    debtor_id  TEXT NOT NULL,
    prefs      TEXT NOT NULL,      -- JSON: opted_out_all, opted_out, chosen, wrong_party
    source     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, debtor_id)
);
