//! Bulk export and import of the records beside the runs (see `copy`): users, tokens with
//! their digests, API schedules, schedule marks, flow state and the node key.
//!
//! An import inserts each record only where none with its key exists (`ON CONFLICT DO
//! NOTHING`), in the caller's transaction, and counts a change to the schedules when it
//! added a schedule or a mark, so every node's scheduler reads them again.

use chrono::{DateTime, Utc};
use octoflow_core::store::{
    CopyCounts, MarkRecord, StateRecord, StoreError, StoreRecords, StoredSchedule, TokenRecord,
};
use sqlx::PgConnection;

use crate::auth::{NODE_KEY, decode_token, decode_user, token_columns, user_columns};
use crate::codec;
use crate::error::from_sqlx;
use crate::schedules::{self, decode_mark};

/// Everything beside the runs, read in the caller's transaction.
pub(crate) async fn export(conn: &mut PgConnection) -> Result<StoreRecords, StoreError> {
    let users = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users ORDER BY name COLLATE \"C\""
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let tokens = sqlx::query(concat!(
        "SELECT digest, ",
        token_columns!(),
        " FROM api_tokens ORDER BY created_at, id COLLATE \"C\""
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let marks = sqlx::query(
        "SELECT key, last_fire, paused, removed, updated_at FROM schedule_marks \
         ORDER BY key COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let state = sqlx::query(
        "SELECT flow, key, value, updated_at FROM flow_state \
         ORDER BY flow COLLATE \"C\", key COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let node_key = sqlx::query_scalar("SELECT value FROM node_settings WHERE key = $1")
        .bind(NODE_KEY)
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(StoreRecords {
        users: users.iter().map(decode_user).collect::<Result<_, _>>()?,
        tokens: tokens
            .iter()
            .map(|row| {
                Ok(TokenRecord {
                    token: decode_token(row)?,
                    digest: codec::get(row, "digest")?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        schedules: schedules::list(conn).await?,
        marks: marks
            .iter()
            .map(|row| {
                Ok(MarkRecord {
                    mark: decode_mark(row)?,
                    updated_at: Some(codec::get(row, "updated_at")?),
                })
            })
            .collect::<Result<_, StoreError>>()?,
        state: state
            .iter()
            .map(|row| {
                Ok(StateRecord {
                    flow: codec::get(row, "flow")?,
                    key: codec::get(row, "key")?,
                    value: codec::get_json(row, "value")?,
                    updated_at: Some(codec::get(row, "updated_at")?),
                })
            })
            .collect::<Result<_, StoreError>>()?,
        node_key,
    })
}

/// Records what is not here yet, in the caller's transaction.
pub(crate) async fn import(
    conn: &mut PgConnection,
    records: &StoreRecords,
) -> Result<CopyCounts, StoreError> {
    let now = codec::now();
    let stamp = |at: Option<DateTime<Utc>>| at.unwrap_or(now);
    let mut counts = CopyCounts::default();
    for user in &records.users {
        counts.users += sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
        ))
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
    }
    for TokenRecord { token, digest } in &records.tokens {
        counts.tokens += crate::auth::token_insert(
            concat!(
                "INSERT INTO api_tokens (digest, ",
                token_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
            ),
            token,
            digest,
        )
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
    }
    for schedule in &records.schedules {
        let held = sqlx::query("SELECT 1 FROM schedules WHERE id = $1")
            .bind(&schedule.id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        if held.is_none() {
            // The pause flag comes with the schedule's mark.
            let unmarked = StoredSchedule {
                paused: false,
                ..schedule.clone()
            };
            schedules::add(conn, &unmarked).await?;
            counts.schedules += 1;
        }
    }
    for MarkRecord { mark, updated_at } in &records.marks {
        counts.schedule_marks += sqlx::query(
            "INSERT INTO schedule_marks (key, last_fire, paused, removed, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&mark.key)
        .bind(mark.last_fire)
        .bind(mark.paused)
        .bind(&mark.removed)
        .bind(stamp(*updated_at))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
    }
    for state in &records.state {
        counts.state_keys += sqlx::query(
            "INSERT INTO flow_state (flow, key, value, updated_at) VALUES ($1, $2, $3::json, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&state.flow)
        .bind(&state.key)
        .bind(codec::json("value", &state.value)?)
        .bind(stamp(state.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
    }
    if let Some(key) = &records.node_key {
        counts.node_keys = sqlx::query(
            "INSERT INTO node_settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(NODE_KEY)
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
    }
    if counts.schedules + counts.schedule_marks > 0 {
        schedules::bump(conn).await?;
    }
    Ok(counts)
}
