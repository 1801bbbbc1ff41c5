-- Runs, their step runs and their log lines (SPEC §6).
--
-- Timestamps are TEXT in one fixed-width UTC form with microseconds,
-- `2026-11-23T02:20:34.123456Z`, so text order is time order.
-- JSON values (params, trigger, error, data, result) are TEXT.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY NOT NULL,  -- UUIDv7, hyphenated
    flow            TEXT NOT NULL,
    flow_version    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                        ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    params          TEXT NOT NULL,              -- JSON
    trigger         TEXT NOT NULL,              -- JSON {kind, detail}
    concurrency_key TEXT,
    parent_run_id   TEXT,                       -- no foreign key: retention may drop a parent first
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    error           TEXT,                       -- JSON {step, message}
    data            TEXT NOT NULL,              -- JSON
    node            TEXT,
    message         TEXT
);

CREATE INDEX runs_created_at ON runs (created_at DESC, id DESC);
CREATE INDEX runs_flow_created_at ON runs (flow, created_at DESC, id DESC);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE step_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- StepRunId
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step        TEXT NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 0),
    status      TEXT NOT NULL CHECK (status IN
                    ('pending', 'running', 'succeeded', 'failed', 'ignored', 'skipped',
                     'cancelled', 'timed_out')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    result      TEXT,                               -- JSON
    error       TEXT
);

CREATE INDEX step_runs_run_id ON step_runs (run_id);

CREATE TABLE step_logs (
    seq     INTEGER PRIMARY KEY,                    -- rowid: insertion order
    run_id  TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step    TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ts      TEXT NOT NULL,
    stream  TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'engine')),
    line    TEXT NOT NULL
);

CREATE INDEX step_logs_run_id ON step_logs (run_id);
