#!/usr/bin/env python3
"""Seeds a stopped jwks-server SQLite database for scenario 6.

Usage: seed.py DB USERS LOGS

The database must already hold one user registered through `POST /register` (the
template) and at least one `auth_logs` row written by a real `/auth`. The template user
is cloned to USERS users in total (usernames `bench<n>`, emails `bench<n>@example.com`,
the same Argon2id hash, so every clone accepts the template's password); the log row is
cloned to LOGS rows spread over those users. Only columns that exist are copied, so a
schema change costs no edit here as long as `users(username, email)` and
`auth_logs(user_id)` keep their names. Prints the final counts.
"""

import sqlite3
import sys


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def main() -> int:
    path, users, logs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    user_cols = [c for c in columns(db, "users") if c != "id"]
    log_cols = [c for c in columns(db, "auth_logs") if c != "id"]
    if "username" not in user_cols or "user_id" not in log_cols:
        print("seed: unexpected schema", user_cols, log_cols, file=sys.stderr)
        return 1
    (have_users,) = db.execute("SELECT count(*) FROM users").fetchone()
    (template,) = db.execute("SELECT min(id) FROM users").fetchone()

    def pick(col: str) -> str:
        if col == "username":
            return "'bench' || n"
        if col == "email":
            return "'bench' || n || '@example.com'"
        return col

    with db:
        db.execute(
            f"""WITH RECURSIVE seq(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
                INSERT INTO users ({", ".join(user_cols)})
                SELECT {", ".join(pick(c) for c in user_cols)} FROM users, seq WHERE id = ?""",
            (have_users, users - 1, template),
        )
    (lo, hi) = db.execute("SELECT min(id), max(id) FROM users").fetchone()
    (have_logs,) = db.execute("SELECT count(*) FROM auth_logs").fetchone()
    (log_template,) = db.execute("SELECT min(id) FROM auth_logs").fetchone()
    span = hi - lo + 1

    def pick_log(col: str) -> str:
        return f"({lo} + n % {span})" if col == "user_id" else col

    with db:
        db.execute(
            f"""WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)
                INSERT INTO auth_logs ({", ".join(log_cols)})
                SELECT {", ".join(pick_log(c) for c in log_cols)} FROM auth_logs, seq WHERE id = ?""",
            (logs - have_logs, log_template),
        )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (n_users,) = db.execute("SELECT count(*) FROM users").fetchone()
    (n_logs,) = db.execute("SELECT count(*) FROM auth_logs").fetchone()
    db.close()
    print(f"users={n_users} auth_logs={n_logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
