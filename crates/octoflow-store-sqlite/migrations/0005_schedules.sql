-- Schedules (SPEC §7, §11.4): the ones added through the API, and per schedule key the tick
-- it last fired and its pause flag. File schedules are keyed `flow:<name>:<index>`, API ones
-- by their id.

CREATE TABLE schedules (
    id            TEXT PRIMARY KEY NOT NULL,
    flow          TEXT NOT NULL,
    cron          TEXT,
    every_seconds INTEGER CHECK (every_seconds IS NULL OR every_seconds >= 1),
    timezone      TEXT,
    catchup       TEXT NOT NULL CHECK (catchup IN ('none', 'last', 'all')),
    params        TEXT NOT NULL,              -- JSON object
    created_at    TEXT NOT NULL,
    CHECK ((cron IS NULL) <> (every_seconds IS NULL))
) WITHOUT ROWID;

CREATE TABLE schedule_marks (
    key       TEXT PRIMARY KEY NOT NULL,
    last_fire TEXT,                           -- the tick it last fired (or skipped, on resume)
    paused    INTEGER,                        -- 1 paused, 0 resumed, NULL never said
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
