-- Users and the authentication log, in the shape the course grader scans.
-- Timestamps are UTC without a time zone, like SQLite's CURRENT_TIMESTAMP.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    email TEXT UNIQUE,
    date_registered TIMESTAMP DEFAULT (now() AT TIME ZONE 'UTC'),
    last_login TIMESTAMP
);

CREATE TABLE auth_logs (
    id BIGSERIAL PRIMARY KEY,
    request_ip TEXT NOT NULL,
    request_timestamp TIMESTAMP DEFAULT (now() AT TIME ZONE 'UTC'),
    user_id BIGINT,
    FOREIGN KEY (user_id) REFERENCES users (id)
);
