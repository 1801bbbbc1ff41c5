//! The `schedules` and `schedule_marks` tables (SPEC §7): schedules added through the API,
//! and each schedule key's last fire time, pause flag and, for a file schedule removed
//! through the API, the cadence removed.
//!
//! A round of due ticks is one write op: for each tick it records the fire (checking the
//! key's mark) and admits its run, so the fire and the run are one change. A tick fires at
//! most once, whichever process or restart tries it again; and a round of a thousand ticks
//! costs one trip to the writer and one commit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::store::{
    Admitted, FILE_KEY_PREFIX, Fire, ScheduleMark, ScheduleStore, StoreError, StoredSchedule,
};
use rusqlite::{Connection, Row, params};
use serde_json::{Map, Value};

use crate::error::{conflict_or, from_sqlite};
use crate::query::{all, execute, one};
use crate::{SqliteStore, admission, codec};

fn catchup_word(catchup: Catchup) -> &'static str {
    match catchup {
        Catchup::None => "none",
        Catchup::Last => "last",
        Catchup::All => "all",
    }
}

fn parse_catchup(row: &Row<'_>) -> Result<Catchup, StoreError> {
    let word = codec::get_text(row, "catchup")?;
    serde_json::from_value(Value::String(word.clone())).map_err(|_| {
        StoreError::Backend(format!("invalid value `{word}` in column `catchup`").into())
    })
}

fn decode_schedule(row: &Row<'_>) -> Result<StoredSchedule, StoreError> {
    let every: Option<i64> = codec::get(row, "every_seconds")?;
    let paused: Option<i64> = codec::get(row, "paused")?;
    Ok(StoredSchedule {
        id: codec::get_text(row, "id")?,
        flow: codec::get_text(row, "flow")?,
        schedule: Schedule {
            cron: codec::get_opt_text(row, "cron")?,
            every_seconds: every.and_then(|n| u64::try_from(n).ok()),
            timezone: codec::get_opt_text(row, "timezone")?,
            catchup: parse_catchup(row)?,
            params: codec::get_json::<Map<String, Value>>(row, "params")?,
        },
        paused: paused.unwrap_or(0) != 0,
        created_at: codec::get_time(row, "created_at")?,
    })
}

pub(crate) fn add(conn: &Connection, schedule: &StoredSchedule) -> Result<(), StoreError> {
    let s = &schedule.schedule;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO schedules (id, flow, cron, every_seconds, timezone, catchup, params, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(from_sqlite)?;
    stmt.execute(params![
        schedule.id,
        schedule.flow,
        s.cron,
        s.every_seconds
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        s.timezone,
        catchup_word(s.catchup),
        codec::json("params", &s.params)?,
        codec::time(schedule.created_at),
    ])
    .map_err(conflict_or("schedule id"))?;
    if schedule.paused {
        set_paused(conn, &schedule.id, true, None)?;
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection) -> Result<Vec<StoredSchedule>, StoreError> {
    all(
        conn,
        "SELECT s.id, s.flow, s.cron, s.every_seconds, s.timezone, s.catchup, s.params, \
         s.created_at, m.paused FROM schedules AS s \
         LEFT JOIN schedule_marks AS m ON m.key = s.id ORDER BY s.created_at, s.id",
        [],
        decode_schedule,
    )
}

fn remove(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let removed = execute(conn, "DELETE FROM schedules WHERE id = ?", [id])?;
    execute(conn, "DELETE FROM schedule_marks WHERE key = ?", [id])?;
    Ok(removed == 1)
}

fn marks(conn: &Connection) -> Result<Vec<ScheduleMark>, StoreError> {
    all(
        conn,
        "SELECT key, last_fire, paused, removed FROM schedule_marks ORDER BY key",
        [],
        decode_mark,
    )
}

/// A mark from a row with its `key`, `last_fire`, `paused` and `removed` columns.
pub(crate) fn decode_mark(row: &Row<'_>) -> Result<ScheduleMark, StoreError> {
    let paused: Option<i64> = codec::get(row, "paused")?;
    Ok(ScheduleMark {
        key: codec::get_text(row, "key")?,
        last_fire: codec::get_opt_time(row, "last_fire")?,
        paused: paused.map(|p| p != 0),
        removed: codec::get_opt_text(row, "removed")?,
    })
}

/// Sets a key's pause flag, and moves its last fire time up to `caught_up` when given.
fn set_paused(
    conn: &Connection,
    key: &str,
    paused: bool,
    caught_up: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    execute(
        conn,
        "INSERT INTO schedule_marks (key, last_fire, paused, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key) DO UPDATE SET paused = excluded.paused, \
         updated_at = excluded.updated_at, \
         last_fire = CASE WHEN excluded.last_fire IS NOT NULL \
             AND (last_fire IS NULL OR last_fire < excluded.last_fire) \
             THEN excluded.last_fire ELSE last_fire END",
        params![
            key,
            codec::opt_time(caught_up),
            paused,
            codec::time(codec::now())
        ],
    )?;
    Ok(())
}

/// Keeps a file schedule removed: its mark remembers the removed cadence.
fn remove_file(conn: &Connection, key: &str, definition: &str) -> Result<(), StoreError> {
    execute(
        conn,
        "INSERT INTO schedule_marks (key, last_fire, paused, removed, updated_at) \
         VALUES (?1, NULL, NULL, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET removed = excluded.removed, \
         updated_at = excluded.updated_at",
        params![key, definition, codec::time(codec::now())],
    )?;
    Ok(())
}

/// Fires ticks in order: records each tick that may fire and admits its run
/// ([`admission::admit`]); a tick that may not fire answers `None`. The caller's transaction
/// makes the whole round one change.
fn fire(conn: &Connection, fires: &[Fire]) -> Result<Vec<Option<Admitted>>, StoreError> {
    let now = codec::time(codec::now());
    let mut answers = Vec::with_capacity(fires.len());
    for fire in fires {
        // A tick given twice fires once: the first takes it.
        if record_tick(conn, fire, &now)? {
            answers.push(Some(admission::admit(conn, &fire.run, &fire.admission)?));
        } else {
            answers.push(None);
        }
    }
    Ok(answers)
}

/// Records a fire's tick unless its key is paused, already fired at that tick or later, or
/// an API schedule that no longer exists; says whether it was recorded.
fn record_tick(conn: &Connection, fire: &Fire, now: &str) -> Result<bool, StoreError> {
    if !fire.key.starts_with(FILE_KEY_PREFIX)
        && one(
            conn,
            "SELECT 1 FROM schedules WHERE id = ?",
            [&fire.key],
            |_| Ok(()),
        )?
        .is_none()
    {
        return Ok(false);
    }
    // One row from `VALUES`, so SQLite keeps no statement journal for it; the count of
    // changed rows, not `RETURNING` (a temporary table per statement), says what happened:
    // 1 when the mark was inserted or moved on, 0 when paused or not later.
    let recorded = execute(
        conn,
        "INSERT INTO schedule_marks (key, last_fire, paused, updated_at) VALUES (?1, ?2, NULL, ?3) \
         ON CONFLICT (key) DO UPDATE SET last_fire = excluded.last_fire, \
         updated_at = excluded.updated_at \
         WHERE (paused IS NULL OR paused = 0) \
         AND (last_fire IS NULL OR last_fire < excluded.last_fire)",
        params![fire.key, codec::time(fire.tick), now],
    )?;
    Ok(recorded == 1)
}

/// Counts a change to the schedules (in the caller's transaction).
pub(crate) fn bump(conn: &Connection) -> Result<(), StoreError> {
    execute(
        conn,
        "UPDATE schedule_changes SET version = version + 1 WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// How many changes the schedules have had.
fn changes(conn: &Connection) -> Result<u64, StoreError> {
    let version: Option<i64> = one(
        conn,
        "SELECT version FROM schedule_changes WHERE id = 1",
        [],
        |row| codec::get(row, "version"),
    )?;
    Ok(version
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or_default())
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn add_schedule(&self, schedule: &StoredSchedule) -> Result<(), StoreError> {
        let schedule = schedule.clone();
        self.write(move |c| {
            add(c, &schedule)?;
            bump(c)
        })
        .await
    }

    async fn schedule_changes(&self) -> Result<u64, StoreError> {
        self.read(changes).await
    }

    async fn schedules(&self) -> Result<Vec<StoredSchedule>, StoreError> {
        self.read(list).await
    }

    async fn remove_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            let removed = remove(c, &id)?;
            bump(c)?;
            Ok(removed)
        })
        .await
    }

    async fn schedule_marks(&self) -> Result<Vec<ScheduleMark>, StoreError> {
        self.read(marks).await
    }

    async fn set_schedule_paused(
        &self,
        key: &str,
        paused: bool,
        caught_up: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |c| {
            set_paused(c, &key, paused, caught_up)?;
            bump(c)
        })
        .await
    }

    async fn remove_file_schedule(&self, key: &str, definition: &str) -> Result<(), StoreError> {
        let (key, definition) = (key.to_owned(), definition.to_owned());
        self.write(move |c| {
            remove_file(c, &key, &definition)?;
            bump(c)
        })
        .await
    }

    async fn fire(&self, fires: &[Fire]) -> Result<Vec<Option<Admitted>>, StoreError> {
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let fires = fires.to_vec();
        let answers = self.write(move |c| fire(c, &fires)).await?;
        if answers
            .iter()
            .any(|a| matches!(a, Some(Admitted::Created(_) | Admitted::Replaced { .. })))
        {
            self.wake();
        }
        Ok(answers)
    }
}
