-- API keys get an optional name (to tell keys apart, and to find the keys
-- `serve --dev` minted) and an optional expiry (Unix ms; the key is refused
-- from that instant on). Revocation already has revoked_at. Keys are revoked
-- by prefix and listed per tenant: index both.
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
CREATE INDEX api_keys_prefix ON api_keys (key_prefix);
CREATE INDEX api_keys_tenant ON api_keys (tenant);
