-- Typed state: every closed set the code reads as an enum (intent statuses,
-- dispatch states, channels, outcomes, audit event kinds; see src/domain.rs)
-- is a CHECK constraint, so a word outside the set cannot be stored. The
-- lists must match the Rust vocabularies (tests/service/integrator.rs
-- `the_schema_refuses_words_outside_each_closed_set`).

ALTER TABLE intents ADD CONSTRAINT intents_status_known CHECK (status IN ('deferred', 'released', 'leased', 'done', 'rejected', 'cancelled', 'expired', 'held'));
ALTER TABLE intents ADD CONSTRAINT intents_channel_known CHECK (channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push'));
ALTER TABLE intents ADD CONSTRAINT intents_outcome_known CHECK (outcome IS NULL OR outcome IN ('sent', 'delivered', 'failed', 'no_answer', 'conversation', 'wrong_party', 'opted_out'));
ALTER TABLE dispatches ADD CONSTRAINT dispatches_state_known CHECK (state IN ('ready', 'leased', 'acked', 'cancelled', 'withdrawn'));
ALTER TABLE dispatches ADD CONSTRAINT dispatches_channel_known CHECK (channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push'));
ALTER TABLE contact_events ADD CONSTRAINT contact_events_channel_known CHECK (channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push'));
ALTER TABLE contact_events ADD CONSTRAINT contact_events_outcome_known CHECK (outcome IN ('attempted', 'delivered', 'conversation', 'no_answer', 'failed'));
ALTER TABLE audit_log ADD CONSTRAINT audit_log_kind_known CHECK (kind IN ('submitted', 'deferred', 'released', 'rejected', 'expired', 'leased', 'withdrawn', 'acked', 'cancelled', 'preference_changed', 'rules_reloaded', 'held'));
ALTER TABLE audit_log ADD CONSTRAINT audit_log_channel_known CHECK (channel IS NULL OR channel IN ('call', 'visit', 'sms', 'whatsapp', 'email', 'letter', 'push'));
ALTER TABLE audit_log ADD CONSTRAINT audit_log_outcome_known CHECK (outcome IS NULL OR outcome IN ('sent', 'delivered', 'failed', 'no_answer', 'conversation', 'wrong_party', 'opted_out'));
