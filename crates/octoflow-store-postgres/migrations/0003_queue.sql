-- The queue: a claimed run holds a lease until `lease_until`, renewed by its node.
ALTER TABLE runs ADD COLUMN lease_until timestamptz;

CREATE INDEX runs_queue ON runs (status, created_at, id);
