-- Fewer index writes per run: every query by status is answered by
-- `runs_queue (status, created_at, id)`. (On SQLite this change also rebuilt `step_runs`
-- without AUTOINCREMENT; its ids here come from an identity column, which needs nothing.)
DROP INDEX runs_status;
