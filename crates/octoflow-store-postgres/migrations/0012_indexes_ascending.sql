-- The indexes on when runs were made, in ascending order, as on SQLite. A new run is the
-- newest: in ascending order it goes at the right end of each index, where PostgreSQL
-- inserts without a descent from the root and splits a full page leaving it 90 % full
-- (at the left end, pages split in halves). Newest-first listings scan the same indexes
-- backwards.
DROP INDEX runs_created_at;
CREATE INDEX runs_created_at ON runs (created_at, id);
DROP INDEX runs_flow_created_at;
CREATE INDEX runs_flow_created_at ON runs (flow, created_at, id);
DROP INDEX runs_parent;
CREATE INDEX runs_parent ON runs (parent_run_id, created_at, id)
    WHERE parent_run_id IS NOT NULL;
