-- Append-only audit log, hash-chained per tenant (see src/audit.rs).
-- Keep in step with migrations/sqlite/0002_audit.sql.

CREATE TABLE audit_log (
    tenant        TEXT NOT NULL,
    seq           BIGINT NOT NULL,   -- 1, 2, 3… per tenant, no gaps
    at            BIGINT NOT NULL,   -- event time, Unix ms UTC
    kind          TEXT NOT NULL,     -- submitted, deferred, released, rejected, expired, leased, withdrawn, acked, cancelled, preference_changed, rules_reloaded
    intent_id     TEXT,
    debtor_id     TEXT,
    debt_id       TEXT,
    channel       TEXT,
    jurisdiction  TEXT,
    time_zone     TEXT,              -- the recipient's zone(s)
    local_time    TEXT,              -- event time in the first of them
    decision      TEXT,              -- release | defer | reject
    reason_codes  TEXT,
    rule_ids      TEXT,
    citations     TEXT,
    rules_version TEXT,
    outcome       TEXT,
    detail        TEXT NOT NULL,     -- JSON with the rest (decision reasons, body, old/new hashes…)
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,     -- SHA-256 over prev_hash and this event's canonical bytes
    PRIMARY KEY (tenant, seq)
);
CREATE INDEX audit_log_time ON audit_log (tenant, at);

-- The last sequence number and hash of each tenant's chain (detects a
-- truncated tail; serializes appends).
CREATE TABLE audit_heads (
    tenant TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   TEXT NOT NULL
);

-- Where a purged chain now starts: the last purged event, signed.
CREATE TABLE audit_checkpoints (
    tenant     TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    purged_at  BIGINT NOT NULL,
    signature  TEXT NOT NULL
);

-- Every rules file content ever loaded, by version hash, so replays can use
-- the exact rules a decision was taken with.
CREATE TABLE rules_snapshots (
    version_hash TEXT NOT NULL,
    file         TEXT NOT NULL,
    content      TEXT NOT NULL,
    loaded_at    BIGINT NOT NULL,
    PRIMARY KEY (version_hash, file)
);
