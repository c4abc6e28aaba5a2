-- Leases take open dispatches highest priority first, then oldest: an index in
-- exactly that order lets the 07:00 surge be read without sorting the queue.
DROP INDEX IF EXISTS dispatches_open;
CREATE INDEX dispatches_open ON dispatches (channel, priority DESC, released_at) WHERE state IN ('ready', 'leased');
-- The scheduler claims due intents earliest first, then highest priority.
DROP INDEX IF EXISTS intents_due;
CREATE INDEX intents_due ON intents (next_eval_at, priority DESC) WHERE status = 'deferred';
