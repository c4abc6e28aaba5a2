-- Leases read two queues: ready dispatches, highest priority first, then
-- oldest; and leases that expired, oldest expiry first. One index covering
-- both states kept every unexpired lease in the scan, so a surge with a
-- million contacts out for delivery slowed every Lease call down.
DROP INDEX IF EXISTS dispatches_open;
CREATE INDEX dispatches_ready ON dispatches (channel, priority DESC, released_at) WHERE state = 'ready';
CREATE INDEX dispatches_lease_expiry ON dispatches (lease_expires_at) WHERE state = 'leased';
