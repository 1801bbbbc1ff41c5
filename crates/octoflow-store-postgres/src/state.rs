//! The `flow_state` table: each flow's key/value state.

use async_trait::async_trait;
use octoflow_core::store::{StateStore, StoreError};
use serde_json::{Map, Value};

use crate::error::from_sqlx;
use crate::{PostgresStore, codec};

#[async_trait]
impl StateStore for PostgresStore {
    async fn state(&self, flow: &str) -> Result<Map<String, Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value FROM flow_state WHERE flow = $1 ORDER BY key COLLATE \"C\"",
        )
        .bind(flow)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter()
            .map(|row| Ok((codec::get(row, "key")?, codec::get_json(row, "value")?)))
            .collect()
    }

    /// Every key in one statement: all or none.
    async fn set_state(&self, flow: &str, values: &Map<String, Value>) -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        let texts = values
            .values()
            .map(|value| codec::json("value", value))
            .collect::<Result<Vec<String>, _>>()?;
        sqlx::query(
            "INSERT INTO flow_state (flow, key, value, updated_at) \
             SELECT $1, k, v::json, $4 FROM unnest($2::text[], $3::text[]) AS s (k, v) \
             ON CONFLICT (flow, key) DO UPDATE \
             SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(flow)
        .bind(keys)
        .bind(texts)
        .bind(codec::now())
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }
}
