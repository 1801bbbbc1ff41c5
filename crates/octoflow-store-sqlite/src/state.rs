//! The `flow_state` table: each flow's key/value state.

use octoflow_core::store::StoreError;
use serde_json::{Map, Value};
use sqlx::{Connection, Row, SqliteConnection};

use crate::codec;
use crate::error::from_sqlx;

/// Every key of a flow's state.
pub(crate) async fn get(
    conn: &mut SqliteConnection,
    flow: &str,
) -> Result<Map<String, Value>, StoreError> {
    let rows = sqlx::query("SELECT key, value FROM flow_state WHERE flow = ? ORDER BY key")
        .bind(flow.to_owned())
        .fetch_all(conn)
        .await
        .map_err(from_sqlx)?;
    rows.iter()
        .map(|row| {
            let key: String = row.try_get("key").map_err(from_sqlx)?;
            let value = codec::get_json::<Value>(row, "value")?;
            Ok((key, value))
        })
        .collect()
}

/// Sets several keys in one transaction.
pub(crate) async fn set(
    conn: &mut SqliteConnection,
    flow: &str,
    values: &Map<String, Value>,
) -> Result<(), StoreError> {
    let now = codec::time(codec::now());
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    for (key, value) in values {
        sqlx::query(
            "INSERT INTO flow_state (flow, key, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (flow, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(flow.to_owned())
        .bind(key.clone())
        .bind(codec::json("value", value)?)
        .bind(now.clone())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    }
    tx.commit().await.map_err(from_sqlx)
}
