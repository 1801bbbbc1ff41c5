-- The indexes on when runs were made, in ascending order. A new run is the newest, so it
-- goes at one end of each: in descending order that was the left end, where SQLite
-- rebalanced the leftmost pages and their parent at nearly every insert (four pages written
-- per run instead of one); in ascending order it is the right end, which SQLite appends to.
-- Newest-first listings read the same indexes backwards, as fast.
DROP INDEX runs_created_at;
CREATE INDEX runs_created_at ON runs (created_at, id);
DROP INDEX runs_flow_created_at;
CREATE INDEX runs_flow_created_at ON runs (flow, created_at, id);
DROP INDEX runs_parent;
CREATE INDEX runs_parent ON runs (parent_run_id, created_at, id)
    WHERE parent_run_id IS NOT NULL;
