-- Admission rules (SPEC §8), cancel requests, progress, and auth records (SPEC §11.1).

-- How many runs may hold the run's concurrency key while it is claimed; NULL = no limit.
ALTER TABLE runs ADD COLUMN concurrency_limit integer;
-- A key given when the run was requested: the same key for the same flow answers this run.
ALTER TABLE runs ADD COLUMN idempotency_key text;
-- Someone asked to cancel the running run; its node sees it when renewing its lease.
ALTER TABLE runs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
-- The run's concurrency key was freed by hand (it no longer counts as a holder).
ALTER TABLE runs ADD COLUMN lock_released boolean NOT NULL DEFAULT false;
-- {current, total, message}: what the run last reported.
ALTER TABLE runs ADD COLUMN progress json;

CREATE UNIQUE INDEX runs_idempotency ON runs (flow, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The holders of a key (admission, locks, claims).
CREATE INDEX runs_concurrency_key ON runs (concurrency_key, status)
    WHERE concurrency_key IS NOT NULL;
-- Claims: queued runs without a limit, oldest first; queued runs with one, by key.
CREATE INDEX runs_queued_free ON runs (created_at, id)
    WHERE status = 'queued' AND concurrency_limit IS NULL;
CREATE INDEX runs_queued_limited ON runs (concurrency_key, created_at, id)
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL;

CREATE TABLE users (
    name          text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,                -- Argon2, PHC string
    created_at    timestamptz NOT NULL
);

CREATE TABLE api_tokens (
    id         text PRIMARY KEY,
    digest     text NOT NULL UNIQUE,            -- SHA-256 hex of the secret
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    kind       text NOT NULL CHECK (kind IN ('api', 'session')),
    "user"     text,                            -- a reserved word: always quoted
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked    boolean NOT NULL DEFAULT false
);

-- Values every node shares, such as `node_key` (32 random bytes).
CREATE TABLE node_settings (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);
