-- The index of a key's holders keeps only the runs that can hold it: queued or running, as
-- on SQLite. Every query of it asks for those (admission, locks, claims); a run recorded
-- once at its end writes no entry at all, and others leave it when they end.
DROP INDEX runs_concurrency_key;
CREATE INDEX runs_concurrency_key ON runs (concurrency_key, status)
    WHERE concurrency_key IS NOT NULL AND (status = 'queued' OR status = 'running');
