-- Fencing: each claim of a run bumps its generation, and every write of its executor names
-- the generation it was given, so a write from an executor that lost the run changes nothing.
ALTER TABLE runs ADD COLUMN claim bigint NOT NULL DEFAULT 0;
