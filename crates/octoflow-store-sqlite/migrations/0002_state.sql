-- Each flow's key/value state, kept between runs.
CREATE TABLE flow_state (
    flow       TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (flow, key)
) WITHOUT ROWID;
