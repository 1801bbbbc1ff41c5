//! Bulk export and import of the records beside the runs (see `copy`): users, tokens with
//! their digests, API schedules, schedule marks, flow state and the node key.
//!
//! An import inserts each record only where none with its key exists (`ON CONFLICT DO
//! NOTHING`), and counts a change to the schedules when it added a schedule or a mark, so a
//! scheduler sharing the file reads them again.

use chrono::{DateTime, Utc};
use octoflow_core::store::{
    CopyCounts, MarkRecord, StateRecord, StoreError, StoreRecords, StoredSchedule, TokenRecord,
};
use rusqlite::{Connection, params};

use crate::auth::{NODE_KEY, decode_token, decode_user, token_columns, user_columns};
use crate::codec;
use crate::error::from_sqlite;
use crate::query::{all, execute, one};
use crate::schedules::{self, decode_mark};

/// Everything beside the runs, in one read transaction.
pub(crate) fn export(conn: &Connection) -> Result<StoreRecords, StoreError> {
    let tx = conn.unchecked_transaction().map_err(from_sqlite)?;
    let records = StoreRecords {
        users: all(
            &tx,
            concat!("SELECT ", user_columns!(), " FROM users ORDER BY name"),
            [],
            decode_user,
        )?,
        tokens: all(
            &tx,
            concat!(
                "SELECT digest, ",
                token_columns!(),
                " FROM api_tokens ORDER BY created_at, id"
            ),
            [],
            |row| {
                Ok(TokenRecord {
                    token: decode_token(row)?,
                    digest: codec::get_text(row, "digest")?,
                })
            },
        )?,
        schedules: schedules::list(&tx)?,
        marks: all(
            &tx,
            "SELECT key, last_fire, paused, removed, updated_at FROM schedule_marks ORDER BY key",
            [],
            |row| {
                Ok(MarkRecord {
                    mark: decode_mark(row)?,
                    updated_at: Some(codec::get_time(row, "updated_at")?),
                })
            },
        )?,
        state: all(
            &tx,
            "SELECT flow, key, value, updated_at FROM flow_state ORDER BY flow, key",
            [],
            |row| {
                Ok(StateRecord {
                    flow: codec::get_text(row, "flow")?,
                    key: codec::get_text(row, "key")?,
                    value: codec::get_json(row, "value")?,
                    updated_at: Some(codec::get_time(row, "updated_at")?),
                })
            },
        )?,
        node_key: one(
            &tx,
            "SELECT value FROM node_settings WHERE key = ?",
            [NODE_KEY],
            |row| codec::get::<Vec<u8>>(row, "value"),
        )?,
    };
    tx.commit().map_err(from_sqlite)?;
    Ok(records)
}

/// Records what is not here yet (the caller's transaction makes it one change).
pub(crate) fn import(conn: &Connection, records: &StoreRecords) -> Result<CopyCounts, StoreError> {
    let now = codec::time(codec::now());
    let stamp = |at: Option<DateTime<Utc>>| at.map_or_else(|| now.clone(), codec::time);
    let mut counts = CopyCounts::default();
    for user in &records.users {
        counts.users += added(execute(
            conn,
            concat!(
                "INSERT INTO users (",
                user_columns!(),
                ") VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            params![
                user.name,
                user.role.as_str(),
                user.password_hash,
                codec::time(user.created_at)
            ],
        )?);
    }
    for TokenRecord { token, digest } in &records.tokens {
        counts.tokens += added(execute(
            conn,
            concat!(
                "INSERT INTO api_tokens (digest, ",
                token_columns!(),
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            params![
                digest,
                token.id,
                token.name,
                token.role.as_str(),
                token.kind.as_str(),
                token.user,
                codec::time(token.created_at),
                codec::opt_time(token.expires_at),
                token.revoked,
            ],
        )?);
    }
    for schedule in &records.schedules {
        let held = one(
            conn,
            "SELECT 1 FROM schedules WHERE id = ?",
            [&schedule.id],
            |_| Ok(()),
        )?;
        if held.is_none() {
            // The pause flag comes with the schedule's mark.
            let unmarked = StoredSchedule {
                paused: false,
                ..schedule.clone()
            };
            schedules::add(conn, &unmarked)?;
            counts.schedules += 1;
        }
    }
    for MarkRecord { mark, updated_at } in &records.marks {
        counts.schedule_marks += added(execute(
            conn,
            "INSERT INTO schedule_marks (key, last_fire, paused, removed, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            params![
                mark.key,
                codec::opt_time(mark.last_fire),
                mark.paused,
                mark.removed,
                stamp(*updated_at)
            ],
        )?);
    }
    for state in &records.state {
        counts.state_keys += added(execute(
            conn,
            "INSERT INTO flow_state (flow, key, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            params![
                state.flow,
                state.key,
                codec::json("value", &state.value)?,
                stamp(state.updated_at)
            ],
        )?);
    }
    if let Some(key) = &records.node_key {
        counts.node_keys = added(execute(
            conn,
            "INSERT INTO node_settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
            params![NODE_KEY, key],
        )?);
    }
    if counts.schedules + counts.schedule_marks > 0 {
        schedules::bump(conn)?;
    }
    Ok(counts)
}

/// How many rows an insert added (0 or 1).
fn added(changed: usize) -> u64 {
    u64::from(changed > 0)
}
