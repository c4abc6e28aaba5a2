-- Held intents (stored data that could not be read) are listed for operators and
-- counted at each metrics scrape.
CREATE INDEX intents_held ON intents (tenant, intent_id) WHERE status = 'held';
