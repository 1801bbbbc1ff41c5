//! The `flow_state` table: each flow's key/value state.

use octoflow_core::store::StoreError;
use rusqlite::{Connection, params};
use serde_json::{Map, Value};

use crate::codec;
use crate::query::{all, execute};

/// Every key of a flow's state.
pub(crate) fn get(conn: &Connection, flow: &str) -> Result<Map<String, Value>, StoreError> {
    let pairs = all(
        conn,
        "SELECT key, value FROM flow_state WHERE flow = ? ORDER BY key",
        [flow],
        |row| {
            Ok((
                codec::get_text(row, "key")?,
                codec::get_json::<Value>(row, "value")?,
            ))
        },
    )?;
    Ok(pairs.into_iter().collect())
}

/// Sets several keys (the caller's transaction makes it one change).
pub(crate) fn set(
    conn: &Connection,
    flow: &str,
    values: &Map<String, Value>,
) -> Result<(), StoreError> {
    let now = codec::time(codec::now());
    for (key, value) in values {
        execute(
            conn,
            "INSERT INTO flow_state (flow, key, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (flow, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![flow, key, codec::json("value", value)?, now],
        )?;
    }
    Ok(())
}
