-- A file schedule removed through the API stays removed: its mark keeps the cadence that was
-- removed (`cron:<expr>@<zone>` or `every:<seconds>`). The flow file declaring another cadence
-- under the same key makes a new schedule; NULL when never removed.
ALTER TABLE schedule_marks ADD COLUMN removed text;
