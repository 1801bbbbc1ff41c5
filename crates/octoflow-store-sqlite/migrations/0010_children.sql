-- A run's children (`GET /api/v1/runs?parent=…`, the run page's links), newest first; only
-- child runs are in the index, so other runs' writes never touch it.
CREATE INDEX runs_parent ON runs (parent_run_id, created_at DESC, id DESC)
    WHERE parent_run_id IS NOT NULL;
