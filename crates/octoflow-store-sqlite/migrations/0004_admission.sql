-- Admission rules (SPEC §8), cancel requests, progress, and auth records (SPEC §11.1).

-- How many runs may hold the run's concurrency key while it is claimed; NULL = no limit.
ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER;
-- A key given when the run was requested: the same key for the same flow answers this run.
ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
-- 1 when someone asked to cancel the running run; its node sees it when renewing its lease.
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
-- 1 when the run's concurrency key was freed by hand (it no longer counts as a holder).
ALTER TABLE runs ADD COLUMN lock_released INTEGER NOT NULL DEFAULT 0;
-- JSON {current, total, message}: what the run last reported.
ALTER TABLE runs ADD COLUMN progress TEXT;

CREATE UNIQUE INDEX runs_idempotency ON runs (flow, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The holders of a key (admission, locks).
CREATE INDEX runs_concurrency_key ON runs (concurrency_key, status)
    WHERE concurrency_key IS NOT NULL;
-- Claims: queued runs without a limit, oldest first; queued runs with one, by key.
CREATE INDEX runs_queued_free ON runs (created_at, id)
    WHERE status = 'queued' AND concurrency_limit IS NULL;
CREATE INDEX runs_queued_limited ON runs (concurrency_key, created_at, id)
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL;

CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT NOT NULL,                -- Argon2, PHC string
    created_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    digest     TEXT NOT NULL UNIQUE,            -- SHA-256 hex of the secret
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    kind       TEXT NOT NULL CHECK (kind IN ('api', 'session')),
    user       TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked    INTEGER NOT NULL DEFAULT 0
);

-- Values every node shares, such as `node_key` (32 random bytes, a BLOB).
CREATE TABLE node_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
