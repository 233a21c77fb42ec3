-- SQLite gains its `key_set_version` table in this step; PostgreSQL has had it since
-- 0001_keys.sql, so this step only keeps both backends' migrations numbered alike.
SELECT 1;
