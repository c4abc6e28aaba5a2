-- Contact points and initiative on the contact history (issue 15): where a
-- contact went (a kind and an optional opaque identifier) and who started it
-- (an inbound call or message is the debtor's). Existing rows keep their
-- meaning: no contact point recorded (counted by every rule that could apply)
-- and started by the collector. A new audit event kind, contact_recorded, for
-- contacts recorded through RecordContact (inbound ones included).
-- The lists must match the Rust vocabularies (tests/service/integrator.rs
-- `the_schema_refuses_words_outside_each_closed_set`).

ALTER TABLE contact_events ADD COLUMN contact_kind TEXT
    CONSTRAINT contact_events_contact_kind_known CHECK (contact_kind IS NULL OR contact_kind IN ('residence_phone', 'personal_mobile', 'work_phone', 'other_phone', 'home_address', 'work_address', 'email', 'messaging_account'));
ALTER TABLE contact_events ADD COLUMN contact_id TEXT;
ALTER TABLE contact_events ADD COLUMN initiator TEXT NOT NULL DEFAULT 'collector'
    CONSTRAINT contact_events_initiator_known CHECK (initiator IN ('collector', 'debtor'));

ALTER TABLE audit_log DROP CONSTRAINT audit_log_kind_known;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_kind_known CHECK (kind IN ('submitted', 'deferred', 'released', 'rejected', 'expired', 'leased', 'withdrawn', 'acked', 'cancelled', 'preference_changed', 'rules_reloaded', 'held', 'contact_recorded'));
