-- Interactive sign-in (OpenID Connect Core 1.0 §3.1, RFC 6749 §4.1).
--
-- Clients: a public client (RFC 6749 §2.1) has no secret, so `secret_hash` becomes
-- nullable; a display name for the sign-in page; the redirect URIs of RP-initiated
-- logout. Clients registered with redirect URIs before this migration may now use the
-- authorization code grant they were registered for.
ALTER TABLE clients ALTER COLUMN secret_hash DROP NOT NULL;
ALTER TABLE clients ADD COLUMN client_name TEXT;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
UPDATE clients SET grant_types = grant_types || ' authorization_code' WHERE redirect_uris <> '[]';
UPDATE clients_version SET version = version + 1 WHERE id = 1;

-- The short-lived state of sign-in, shared by every replica: pending authorization
-- requests (kind 'request'), browser sessions ('session') and authorization codes
-- ('code'). Rows are found by the SHA-256 (hex) of the random handle the browser or the
-- client holds, so the table alone redeems nothing. `data` is JSON; `expires_at` Unix ms.
CREATE TABLE signin_state (
    handle_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX signin_state_expires ON signin_state (expires_at);
