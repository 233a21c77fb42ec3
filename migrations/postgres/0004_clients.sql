-- OAuth 2.0 clients of the token endpoint (RFC 6749 §2). The secret is stored only as
-- the hex SHA-256 of a 256-bit random value; lists are space-delimited, claims a JSON
-- object and redirect URIs a JSON array, so one statement text serves both databases.
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    audience TEXT,
    claims TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Bumped by every change to `clients`: running servers poll it and reload.
CREATE TABLE clients_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO clients_version (id, version) VALUES (1, 0);
