-- The console's debtor timeline reads a tenant's events that name one debtor,
-- in chain order: without this index it scanned the tenant's whole log.
-- (On a large PostgreSQL log the index is built while the migration holds
-- its lock on audit_log: plan the upgrade for a quiet hour.)
CREATE INDEX audit_log_debtor ON audit_log (tenant, debtor_id, seq);
