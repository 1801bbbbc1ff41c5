-- Fewer pages written per run: every page a commit changes is written to the log once and
-- copied back by a checkpoint, so each index a run's writes touch costs twice.

-- Every query by status is answered by `runs_queue (status, created_at, id)`.
DROP INDEX runs_status;

-- Step run ids without AUTOINCREMENT: the same ids (the next is one above the highest),
-- without a write to `sqlite_sequence` for every step.
CREATE TABLE step_runs_new (
    id          INTEGER PRIMARY KEY,                -- StepRunId
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
INSERT INTO step_runs_new (id, run_id, step, attempt, status, started_at, finished_at, result, error)
    SELECT id, run_id, step, attempt, status, started_at, finished_at, result, error FROM step_runs;
DROP TABLE step_runs;
ALTER TABLE step_runs_new RENAME TO step_runs;
CREATE INDEX step_runs_run_id ON step_runs (run_id);
DELETE FROM sqlite_sequence WHERE name = 'step_runs';
