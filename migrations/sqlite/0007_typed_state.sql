-- Typed state: every closed set the code reads as an enum (intent statuses,
-- dispatch states, channels, outcomes, audit event kinds; see src/domain.rs)
-- is a CHECK constraint, so a word outside the set cannot be stored. The
-- lists must match the Rust vocabularies (tests/service/integrator.rs
-- `the_schema_refuses_words_outside_each_closed_set`).
-- SQLite cannot add a constraint to a table: each table is rebuilt (renamed,
-- created again with its constraints, copied, the old one dropped, its
-- indexes created again), inside this migration's transaction.

ALTER TABLE intents RENAME TO intents_untyped;
CREATE TABLE intents (
    tenant       TEXT NOT NULL,
    intent_id    TEXT NOT NULL,
    debtor_id    TEXT NOT NULL,
    debt_id      TEXT,
    channel      TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    priority     BIGINT NOT NULL,
    body         TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    status       TEXT NOT NULL,
    next_eval_at BIGINT,
    decision     TEXT NOT NULL,
    dispatch_id  TEXT,
    attempt      BIGINT NOT NULL DEFAULT 0,
    outcome      TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant, intent_id),
    CONSTRAINT intents_status_known CHECK (status IN ('deferred', 'released', 'leased', 'done', 'rejected', 'cancelled', 'expired', 'held')),
    CONSTRAINT intents_channel_known CHECK (channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push')),
    CONSTRAINT intents_outcome_known CHECK (outcome IS NULL OR outcome IN ('sent', 'delivered', 'failed', 'no_answer', 'conversation', 'wrong_party', 'opted_out'))
);
INSERT INTO intents (tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, body_hash, status, next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at)
    SELECT tenant, intent_id, debtor_id, debt_id, channel, jurisdiction, priority, body, body_hash, status, next_eval_at, decision, dispatch_id, attempt, outcome, created_at, updated_at FROM intents_untyped;
DROP TABLE intents_untyped;
CREATE INDEX intents_due ON intents (next_eval_at, priority DESC) WHERE status = 'deferred';
CREATE INDEX intents_debt ON intents (tenant, debtor_id, debt_id);
CREATE INDEX intents_held ON intents (tenant, intent_id) WHERE status = 'held';

ALTER TABLE dispatches RENAME TO dispatches_untyped;
CREATE TABLE dispatches (
    dispatch_id      TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    intent_id        TEXT NOT NULL,
    debtor_id        TEXT NOT NULL,
    channel          TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    released_at      BIGINT NOT NULL,
    not_after        BIGINT NOT NULL,
    state            TEXT NOT NULL,
    lease_expires_at BIGINT,
    attempt          BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT dispatches_state_known CHECK (state IN ('ready', 'leased', 'acked', 'cancelled', 'withdrawn')),
    CONSTRAINT dispatches_channel_known CHECK (channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push'))
);
INSERT INTO dispatches (dispatch_id, tenant, intent_id, debtor_id, channel, priority, released_at, not_after, state, lease_expires_at, attempt)
    SELECT dispatch_id, tenant, intent_id, debtor_id, channel, priority, released_at, not_after, state, lease_expires_at, attempt FROM dispatches_untyped;
DROP TABLE dispatches_untyped;
CREATE INDEX dispatches_ready ON dispatches (channel, priority DESC, released_at) WHERE state = 'ready';
CREATE INDEX dispatches_lease_expiry ON dispatches (lease_expires_at) WHERE state = 'leased';

ALTER TABLE contact_events RENAME TO contact_events_untyped;
CREATE TABLE contact_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    debtor_id   TEXT NOT NULL,
    debt_id     TEXT,
    channel     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    dispatch_id TEXT UNIQUE,
    CONSTRAINT contact_events_channel_known CHECK (channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push')),
    CONSTRAINT contact_events_outcome_known CHECK (outcome IN ('attempted', 'delivered', 'conversation', 'no_answer', 'failed'))
);
INSERT INTO contact_events (id, tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id)
    SELECT id, tenant, debtor_id, debt_id, channel, at, outcome, dispatch_id FROM contact_events_untyped;
DROP TABLE contact_events_untyped;
CREATE INDEX contact_events_debtor ON contact_events (tenant, debtor_id, at);

ALTER TABLE audit_log RENAME TO audit_log_untyped;
CREATE TABLE audit_log (
    tenant        TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    intent_id     TEXT,
    debtor_id     TEXT,
    debt_id       TEXT,
    channel       TEXT,
    jurisdiction  TEXT,
    time_zone     TEXT,
    local_time    TEXT,
    decision      TEXT,
    reason_codes  TEXT,
    rule_ids      TEXT,
    citations     TEXT,
    rules_version TEXT,
    outcome       TEXT,
    detail        TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    PRIMARY KEY (tenant, seq),
    CONSTRAINT audit_log_kind_known CHECK (kind IN ('submitted', 'deferred', 'released', 'rejected', 'expired', 'leased', 'withdrawn', 'acked', 'cancelled', 'preference_changed', 'rules_reloaded', 'held')),
    CONSTRAINT audit_log_channel_known CHECK (channel IS NULL OR channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push')),
    CONSTRAINT audit_log_outcome_known CHECK (outcome IS NULL OR outcome IN ('sent', 'delivered', 'failed', 'no_answer', 'conversation', 'wrong_party', 'opted_out'))
);
INSERT INTO audit_log (tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, time_zone, local_time, decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, prev_hash, hash)
    SELECT tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, time_zone, local_time, decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, prev_hash, hash FROM audit_log_untyped;
DROP TABLE audit_log_untyped;
CREATE INDEX audit_log_time ON audit_log (tenant, at);
