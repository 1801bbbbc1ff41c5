-- Runs, their step runs and their log lines (SPEC §6).
--
-- Timestamps are `timestamptz`, microseconds, as every record field is kept.
-- JSON values (params, trigger, error, data, result) are `json`, not `jsonb`: `json` keeps
-- the text as written, so objects read back with their keys in the order they were written
-- (as on SQLite); `jsonb` would reorder them.
-- Tables are created in the store's schema (the first schema of the connection's
-- `search_path`); no statement names a schema.

CREATE TABLE runs (
    id              uuid PRIMARY KEY,           -- UUIDv7
    flow            text NOT NULL,
    flow_version    text NOT NULL,
    status          text NOT NULL CHECK (status IN
                        ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    params          json NOT NULL,
    trigger         json NOT NULL,              -- {kind, detail}
    concurrency_key text,
    parent_run_id   uuid,                       -- no foreign key: retention may drop a parent first
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    error           json,                       -- {step, message}
    data            json NOT NULL,
    node            text,
    message         text
);

CREATE INDEX runs_created_at ON runs (created_at DESC, id DESC);
CREATE INDEX runs_flow_created_at ON runs (flow, created_at DESC, id DESC);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE step_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- StepRunId
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step        text NOT NULL,
    attempt     integer NOT NULL CHECK (attempt >= 0),
    status      text NOT NULL CHECK (status IN
                    ('pending', 'running', 'succeeded', 'failed', 'ignored', 'skipped',
                     'cancelled', 'timed_out')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    result      json,
    error       text
);

CREATE INDEX step_runs_run_id ON step_runs (run_id, id);

CREATE TABLE step_logs (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- append order, per run
    run_id  uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step    text NOT NULL,
    attempt integer NOT NULL,
    ts      timestamptz NOT NULL,
    stream  text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'engine')),
    line    text NOT NULL
);

-- A follower reads a run's lines after the last it has: one range of this index.
CREATE INDEX step_logs_run_id ON step_logs (run_id, seq);
