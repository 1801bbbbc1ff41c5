-- The index of a key's holders keeps only the runs that can hold it: queued or running.
-- Every query of it asks for those (admission, locks, claims); a run recorded once at its
-- end (a waited run of steps without side effects) now writes no entry at all, and others
-- leave it when they end. The status rule is written as `OR` so that SQLite also uses the
-- index for `status = 'running'`.
DROP INDEX runs_concurrency_key;
CREATE INDEX runs_concurrency_key ON runs (concurrency_key, status)
    WHERE concurrency_key IS NOT NULL AND (status = 'queued' OR status = 'running');
