-- Schedules (SPEC §7, §11.4): the ones added through the API, and per schedule key the tick
-- it last fired and its pause flag. File schedules are keyed `flow:<name>:<index>`, API ones
-- by their id.

CREATE TABLE schedules (
    id            text PRIMARY KEY,
    flow          text NOT NULL,
    cron          text,
    every_seconds bigint CHECK (every_seconds IS NULL OR every_seconds >= 1),
    timezone      text,
    catchup       text NOT NULL CHECK (catchup IN ('none', 'last', 'all')),
    params        json NOT NULL,              -- an object
    created_at    timestamptz NOT NULL,
    CHECK ((cron IS NULL) <> (every_seconds IS NULL))
);

CREATE TABLE schedule_marks (
    key        text PRIMARY KEY,
    last_fire  timestamptz,                   -- the tick it last fired (or skipped, on resume)
    paused     boolean,                       -- true paused, false resumed, NULL never said
    updated_at timestamptz NOT NULL
);
