-- Bumped by every change to the keys: a change applies only over the version it was
-- planned from, whichever process writes it (the server's rotation, a CLI command).
-- PostgreSQL has had this table since its first migration.
CREATE TABLE key_set_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO key_set_version (id, version) VALUES (1, 0);
