-- Each flow's key/value state, kept between runs.
CREATE TABLE flow_state (
    flow       text NOT NULL,
    key        text NOT NULL,
    value      json NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (flow, key)
);
