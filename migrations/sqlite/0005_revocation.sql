-- Revocation by an operator (a leaked key): the row stays, so a revoked kid never comes
-- back, and is no longer loaded, published or used. `keys.exp` is set to the revocation
-- time when a key is revoked (the moment it left the JWKS).
ALTER TABLE key_meta ADD COLUMN revoked_at INTEGER;
ALTER TABLE key_meta ADD COLUMN revoked_reason TEXT;
