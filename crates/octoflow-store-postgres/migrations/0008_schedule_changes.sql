-- A counter of changes to the schedules (added, removed, paused, resumed), bumped in the
-- transaction of each change: a scheduler reading it sees changes made through any handle
-- or node, not only its own.
CREATE TABLE schedule_changes (
    id      integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO schedule_changes (id, version) VALUES (1, 0);
