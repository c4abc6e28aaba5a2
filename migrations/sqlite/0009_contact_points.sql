-- Contact points and initiative on the contact history (issue 15): where a
-- contact went (a kind and an optional opaque identifier) and who started it
-- (an inbound call or message is the debtor's). Existing rows keep their
-- meaning: no contact point recorded (counted by every rule that could apply)
-- and started by the collector. A new audit event kind, contact_recorded, for
-- contacts recorded through RecordContact (inbound ones included).
-- The lists must match the Rust vocabularies (tests/service/integrator.rs
-- `the_schema_refuses_words_outside_each_closed_set`).
-- SQLite cannot change a constraint: audit_log is rebuilt as in 0007.

ALTER TABLE contact_events ADD COLUMN contact_kind TEXT
    CONSTRAINT contact_events_contact_kind_known CHECK (contact_kind IS NULL OR contact_kind IN ('residence_phone', 'personal_mobile', 'work_phone', 'other_phone', 'home_address', 'work_address', 'email', 'messaging_account'));
ALTER TABLE contact_events ADD COLUMN contact_id TEXT;
ALTER TABLE contact_events ADD COLUMN initiator TEXT NOT NULL DEFAULT 'collector'
    CONSTRAINT contact_events_initiator_known CHECK (initiator IN ('collector', 'debtor'));

ALTER TABLE audit_log RENAME TO audit_log_before_0009;
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
    CONSTRAINT audit_log_kind_known CHECK (kind IN ('submitted', 'deferred', 'released', 'rejected', 'expired', 'leased', 'withdrawn', 'acked', 'cancelled', 'preference_changed', 'rules_reloaded', 'held', 'contact_recorded')),
    CONSTRAINT audit_log_channel_known CHECK (channel IS NULL OR channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push')),
    CONSTRAINT audit_log_outcome_known CHECK (outcome IS NULL OR outcome IN ('sent', 'delivered', 'failed', 'no_answer', 'conversation', 'wrong_party', 'opted_out'))
);
INSERT INTO audit_log (tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, time_zone, local_time, decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, prev_hash, hash)
    SELECT tenant, seq, at, kind, intent_id, debtor_id, debt_id, channel, jurisdiction, time_zone, local_time, decision, reason_codes, rule_ids, citations, rules_version, outcome, detail, prev_hash, hash FROM audit_log_before_0009;
DROP TABLE audit_log_before_0009;
CREATE INDEX audit_log_time ON audit_log (tenant, at);
CREATE INDEX audit_log_debtor ON audit_log (tenant, debtor_id, seq);
