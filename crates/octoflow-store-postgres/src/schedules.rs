//! The `schedules` and `schedule_marks` tables (SPEC §7): schedules added through the API,
//! and each schedule key's last fire time, pause flag and, for a file schedule removed
//! through the API, the cadence removed.
//!
//! A round of due ticks is one transaction: for each tick it moves the key's mark on (the
//! mark's row lock makes concurrent fires of one tick take turns, and the later ones find
//! the tick taken) and admits its run. A tick fires at most once, whichever node or restart
//! tries it again. Every change to the schedules bumps the `schedule_changes` counter in its
//! transaction, so every node's scheduler sees it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::store::{
    Admitted, FILE_KEY_PREFIX, Fire, ScheduleMark, ScheduleStore, StoreError, StoredSchedule,
};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::error::{conflict_or, from_sqlx};
use crate::names::Names;
use crate::{PostgresStore, admission, codec};

fn catchup_word(catchup: Catchup) -> &'static str {
    match catchup {
        Catchup::None => "none",
        Catchup::Last => "last",
        Catchup::All => "all",
    }
}

fn parse_catchup(row: &PgRow) -> Result<Catchup, StoreError> {
    let word: String = codec::get(row, "catchup")?;
    serde_json::from_value(Value::String(word.clone())).map_err(|_| {
        StoreError::Backend(format!("invalid value `{word}` in column `catchup`").into())
    })
}

fn decode_schedule(row: &PgRow) -> Result<StoredSchedule, StoreError> {
    let every: Option<i64> = codec::get(row, "every_seconds")?;
    let paused: Option<bool> = codec::get(row, "paused")?;
    Ok(StoredSchedule {
        id: codec::get(row, "id")?,
        flow: codec::get(row, "flow")?,
        schedule: Schedule {
            cron: codec::get(row, "cron")?,
            every_seconds: every.and_then(|n| u64::try_from(n).ok()),
            timezone: codec::get(row, "timezone")?,
            catchup: parse_catchup(row)?,
            params: codec::get_json::<Map<String, Value>>(row, "params")?,
        },
        paused: paused.unwrap_or(false),
        created_at: codec::get(row, "created_at")?,
    })
}

/// A mark from a row with its `key`, `last_fire`, `paused` and `removed` columns.
pub(crate) fn decode_mark(row: &PgRow) -> Result<ScheduleMark, StoreError> {
    Ok(ScheduleMark {
        key: codec::get(row, "key")?,
        last_fire: codec::get(row, "last_fire")?,
        paused: codec::get(row, "paused")?,
        removed: codec::get(row, "removed")?,
    })
}

pub(crate) async fn add(
    conn: &mut PgConnection,
    schedule: &StoredSchedule,
) -> Result<(), StoreError> {
    let s = &schedule.schedule;
    sqlx::query(
        "INSERT INTO schedules (id, flow, cron, every_seconds, timezone, catchup, params, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8)",
    )
    .bind(&schedule.id)
    .bind(&schedule.flow)
    .bind(&s.cron)
    .bind(
        s.every_seconds
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    )
    .bind(&s.timezone)
    .bind(catchup_word(s.catchup))
    .bind(codec::json("params", &s.params)?)
    .bind(schedule.created_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict_or("schedule id"))?;
    if schedule.paused {
        set_paused(conn, &schedule.id, true, None).await?;
    }
    Ok(())
}

/// Sets a key's pause flag, and moves its last fire time up to `caught_up` when given.
async fn set_paused(
    conn: &mut PgConnection,
    key: &str,
    paused: bool,
    caught_up: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO schedule_marks AS m (key, last_fire, paused, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET paused = excluded.paused, \
           updated_at = excluded.updated_at, \
           last_fire = CASE WHEN excluded.last_fire IS NOT NULL \
               AND (m.last_fire IS NULL OR m.last_fire < excluded.last_fire) \
             THEN excluded.last_fire ELSE m.last_fire END",
    )
    .bind(key)
    .bind(caught_up)
    .bind(paused)
    .bind(codec::now())
    .execute(conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Keeps a file schedule removed: its mark remembers the removed cadence.
async fn remove_file(
    conn: &mut PgConnection,
    key: &str,
    definition: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO schedule_marks (key, last_fire, paused, removed, updated_at) \
         VALUES ($1, NULL, NULL, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET removed = excluded.removed, \
           updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(definition)
    .bind(codec::now())
    .execute(conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Every API schedule with its pause flag, oldest first.
pub(crate) async fn list(conn: &mut PgConnection) -> Result<Vec<StoredSchedule>, StoreError> {
    let rows = sqlx::query(
        "SELECT s.id, s.flow, s.cron, s.every_seconds, s.timezone, s.catchup, s.params, \
         s.created_at, m.paused FROM schedules AS s \
         LEFT JOIN schedule_marks AS m ON m.key = s.id \
         ORDER BY s.created_at, s.id COLLATE \"C\"",
    )
    .fetch_all(conn)
    .await
    .map_err(from_sqlx)?;
    rows.iter().map(decode_schedule).collect()
}

/// Removes an API schedule and its mark; whether there was one.
async fn remove(conn: &mut PgConnection, id: &str) -> Result<bool, StoreError> {
    let removed = sqlx::query("DELETE FROM schedules WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?
        .rows_affected();
    sqlx::query("DELETE FROM schedule_marks WHERE key = $1")
        .bind(id)
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(removed == 1)
}

/// Fires ticks in order in the caller's transaction: records each tick that may fire and
/// admits its run ([`admission::admit`]); a tick that may not fire answers `None`.
async fn fire(
    conn: &mut PgConnection,
    names: &Names,
    fires: &[Fire],
) -> Result<Vec<Option<Admitted>>, StoreError> {
    let now = codec::now();
    let mut answers = Vec::with_capacity(fires.len());
    for fire in fires {
        // A tick given twice fires once: the first takes it.
        if record_tick(conn, fire, now).await? {
            answers.push(Some(
                admission::admit(conn, names, &fire.run, &fire.admission).await?,
            ));
        } else {
            answers.push(None);
        }
    }
    Ok(answers)
}

/// Records a fire's tick unless its key is paused, already fired at that tick or later, or
/// an API schedule that no longer exists; says whether it was recorded.
///
/// An API schedule's row is locked (`FOR KEY SHARE`) until the transaction ends, so its
/// removal waits for the fire, or the fire sees it gone. Of two fires of one tick, the later
/// waits on the mark's row and then finds the tick taken.
async fn record_tick(
    conn: &mut PgConnection,
    fire: &Fire,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !fire.key.starts_with(FILE_KEY_PREFIX) {
        let exists = sqlx::query("SELECT 1 FROM schedules WHERE id = $1 FOR KEY SHARE")
            .bind(&fire.key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(from_sqlx)?;
        if exists.is_none() {
            return Ok(false);
        }
    }
    let recorded = sqlx::query(
        "INSERT INTO schedule_marks AS m (key, last_fire, paused, updated_at) \
         VALUES ($1, $2, NULL, $3) \
         ON CONFLICT (key) DO UPDATE SET last_fire = excluded.last_fire, \
           updated_at = excluded.updated_at \
         WHERE (m.paused IS NULL OR NOT m.paused) \
           AND (m.last_fire IS NULL OR m.last_fire < excluded.last_fire)",
    )
    .bind(&fire.key)
    .bind(fire.tick)
    .bind(now)
    .execute(conn)
    .await
    .map_err(from_sqlx)?
    .rows_affected();
    Ok(recorded == 1)
}

/// Counts a change to the schedules (in the caller's transaction).
pub(crate) async fn bump(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE schedule_changes SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Counts the change made in `tx`, and commits it.
async fn commit_change(mut tx: Transaction<'_, Postgres>) -> Result<(), StoreError> {
    bump(&mut tx).await?;
    tx.commit().await.map_err(from_sqlx)
}

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn add_schedule(&self, schedule: &StoredSchedule) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        add(&mut tx, schedule).await?;
        commit_change(tx).await
    }

    async fn schedules(&self) -> Result<Vec<StoredSchedule>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        list(&mut conn).await
    }

    async fn schedule_changes(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT version FROM schedule_changes WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        codec::get_unsigned(&row, "version")
    }

    async fn remove_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let removed = remove(&mut tx, id).await?;
        commit_change(tx).await?;
        Ok(removed)
    }

    async fn schedule_marks(&self) -> Result<Vec<ScheduleMark>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, last_fire, paused, removed FROM schedule_marks ORDER BY key COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(decode_mark).collect()
    }

    async fn set_schedule_paused(
        &self,
        key: &str,
        paused: bool,
        caught_up: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        set_paused(&mut tx, key, paused, caught_up).await?;
        commit_change(tx).await
    }

    async fn remove_file_schedule(&self, key: &str, definition: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        remove_file(&mut tx, key, definition).await?;
        commit_change(tx).await
    }

    async fn fire(&self, fires: &[Fire]) -> Result<Vec<Option<Admitted>>, StoreError> {
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let answers = fire(&mut tx, &self.names, fires).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(answers)
    }

    async fn lead_schedules(&self) -> Result<bool, StoreError> {
        self.leadership.lead().await
    }
}
