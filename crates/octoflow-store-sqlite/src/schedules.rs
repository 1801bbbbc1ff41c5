//! The `schedules` and `schedule_marks` tables (SPEC §7): schedules added through the API,
//! and each schedule key's last fire time and pause flag.
//!
//! A round of due ticks is one `BEGIN IMMEDIATE` transaction on the write connection: it
//! records each tick that may fire (checking the key's mark) and admits its run. A tick fires
//! at most once, whichever process or restart tries it again; and a round of a thousand
//! ticks costs a few statements and one commit, not a few per tick (each statement is a
//! round trip to `SQLite`'s worker thread).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

use octoflow_core::flow::{Catchup, ConcurrencyPolicy, Schedule};
use octoflow_core::store::{
    Admitted, FILE_KEY_PREFIX, Fire, Run, RunStatus, ScheduleMark, ScheduleStore, StoreError,
    StoredSchedule,
};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::error::{conflict_or, from_sqlx};
use crate::runs::run_columns;
use crate::{SqliteStore, admission, codec};

fn catchup_word(catchup: Catchup) -> &'static str {
    match catchup {
        Catchup::None => "none",
        Catchup::Last => "last",
        Catchup::All => "all",
    }
}

fn parse_catchup(row: &SqliteRow) -> Result<Catchup, StoreError> {
    let word = codec::get_text(row, "catchup")?;
    serde_json::from_value(Value::String(word.clone())).map_err(|_| {
        StoreError::Backend(format!("invalid value `{word}` in column `catchup`").into())
    })
}

fn decode_schedule(row: &SqliteRow) -> Result<StoredSchedule, StoreError> {
    let every: Option<i64> = row.try_get("every_seconds").map_err(from_sqlx)?;
    let paused: Option<i64> = row.try_get("paused").map_err(from_sqlx)?;
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

async fn add(conn: &mut SqliteConnection, schedule: &StoredSchedule) -> Result<(), StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    let s = &schedule.schedule;
    sqlx::query(
        "INSERT INTO schedules (id, flow, cron, every_seconds, timezone, catchup, params, \
         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&schedule.id)
    .bind(&schedule.flow)
    .bind(s.cron.as_deref())
    .bind(
        s.every_seconds
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    )
    .bind(s.timezone.as_deref())
    .bind(catchup_word(s.catchup))
    .bind(codec::json("params", &s.params)?)
    .bind(codec::time(schedule.created_at))
    .execute(&mut *tx)
    .await
    .map_err(conflict_or("schedule id"))?;
    if schedule.paused {
        set_paused(&mut tx, &schedule.id, true, None).await?;
    }
    tx.commit().await.map_err(from_sqlx)
}

async fn list(pool: &SqlitePool) -> Result<Vec<StoredSchedule>, StoreError> {
    sqlx::query(
        "SELECT s.id, s.flow, s.cron, s.every_seconds, s.timezone, s.catchup, s.params, \
         s.created_at, m.paused FROM schedules AS s \
         LEFT JOIN schedule_marks AS m ON m.key = s.id ORDER BY s.created_at, s.id",
    )
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(decode_schedule)
    .collect()
}

async fn remove(conn: &mut SqliteConnection, id: &str) -> Result<bool, StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    let done = sqlx::query("DELETE FROM schedules WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    sqlx::query("DELETE FROM schedule_marks WHERE key = ?")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

async fn marks(pool: &SqlitePool) -> Result<Vec<ScheduleMark>, StoreError> {
    let rows = sqlx::query("SELECT key, last_fire, paused FROM schedule_marks ORDER BY key")
        .fetch_all(pool)
        .await
        .map_err(from_sqlx)?;
    rows.iter()
        .map(|row| {
            let paused: Option<i64> = row.try_get("paused").map_err(from_sqlx)?;
            Ok(ScheduleMark {
                key: codec::get_text(row, "key")?,
                last_fire: codec::get_opt_time(row, "last_fire")?,
                paused: paused.map(|p| p != 0),
            })
        })
        .collect()
}

/// Sets a key's pause flag, and moves its last fire time up to `caught_up` when given.
async fn set_paused(
    conn: &mut SqliteConnection,
    key: &str,
    paused: bool,
    caught_up: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO schedule_marks (key, last_fire, paused, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (key) DO UPDATE SET paused = excluded.paused, \
         updated_at = excluded.updated_at, \
         last_fire = CASE WHEN excluded.last_fire IS NOT NULL \
             AND (last_fire IS NULL OR last_fire < excluded.last_fire) \
             THEN excluded.last_fire ELSE last_fire END",
    )
    .bind(key)
    .bind(codec::opt_time(caught_up))
    .bind(i64::from(paused))
    .bind(codec::time(codec::now()))
    .execute(conn)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Fires ticks in one transaction: records the ticks that may fire (one statement per chunk,
/// which checks each key's mark and, for an API schedule, that it still exists), then admits
/// their runs in order — runs that need no admission check in multi-row inserts, the others
/// through [`admission::admit_in`].
async fn fire(
    conn: &mut SqliteConnection,
    fires: &[Fire],
) -> Result<Vec<Option<Admitted>>, StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    let mut recorded: HashSet<(String, String)> = HashSet::with_capacity(fires.len());
    for chunk in fires.chunks(ROWS_PER_STATEMENT) {
        recorded.extend(record_ticks(&mut tx, chunk).await?);
    }
    let mut answers = Vec::with_capacity(fires.len());
    let mut plain: Vec<(Run, Option<u32>)> = Vec::new();
    for fire in fires {
        // A tick given twice fires once: the first takes it.
        if !recorded.remove(&(fire.key.clone(), codec::time(fire.tick))) {
            answers.push(None);
            continue;
        }
        let mut run = fire.run.clone();
        run.status = RunStatus::Queued;
        let admission = &fire.admission;
        let limit = admission.limit.max(1);
        match (&run.concurrency_key, admission.policy) {
            _ if admission.idempotency_key.is_some() => {}
            (None, _) | (Some(_), ConcurrencyPolicy::Allow) => {
                plain.push((run.clone(), None));
                answers.push(Some(Admitted::Created(run)));
                continue;
            }
            (Some(_), ConcurrencyPolicy::Queue) => {
                plain.push((run.clone(), Some(limit)));
                answers.push(Some(Admitted::Created(run)));
                continue;
            }
            _ => {}
        }
        // Its rule reads the key's holders: the runs before it must be in.
        insert_runs(&mut tx, &std::mem::take(&mut plain)).await?;
        answers.push(Some(admission::admit_in(&mut tx, &run, admission).await?));
    }
    insert_runs(&mut tx, &plain).await?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(answers)
}

/// Bound values per statement stay well under `SQLite`'s limit (32,766).
const ROWS_PER_STATEMENT: usize = 500;

/// Records each fire's tick unless its key is paused, already fired at that tick or later,
/// or an API schedule that no longer exists; returns the `(key, tick)` pairs recorded.
async fn record_ticks(
    tx: &mut SqliteConnection,
    fires: &[Fire],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT INTO schedule_marks (key, last_fire, paused, updated_at) \
         SELECT v.column1, v.column2, NULL, v.column3 FROM (",
    );
    let now = codec::time(codec::now());
    query.push_values(fires, |mut row, fire| {
        row.push_bind(fire.key.clone())
            .push_bind(codec::time(fire.tick))
            .push_bind(now.clone());
    });
    query
        .push(") AS v WHERE substr(v.column1, 1, length(")
        .push_bind(FILE_KEY_PREFIX)
        .push(")) = ")
        .push_bind(FILE_KEY_PREFIX)
        .push(
            " OR EXISTS (SELECT 1 FROM schedules WHERE id = v.column1) \
             ON CONFLICT (key) DO UPDATE SET last_fire = excluded.last_fire, \
             updated_at = excluded.updated_at \
             WHERE (paused IS NULL OR paused = 0) \
             AND (last_fire IS NULL OR last_fire < excluded.last_fire) \
             RETURNING key, last_fire",
        );
    let rows = query.build().fetch_all(&mut *tx).await.map_err(from_sqlx)?;
    rows.iter()
        .map(|row| {
            Ok((
                codec::get_text(row, "key")?,
                codec::get_text(row, "last_fire")?,
            ))
        })
        .collect()
}

/// Records queued runs that need no admission check, many per statement.
async fn insert_runs(
    tx: &mut SqliteConnection,
    runs: &[(Run, Option<u32>)],
) -> Result<(), StoreError> {
    for chunk in runs.chunks(ROWS_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for (run, limit) in chunk {
            rows.push(RunRow::of(run, *limit)?);
        }
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "INSERT INTO runs (",
            run_columns!(),
            ", concurrency_limit) "
        ));
        query.push_values(rows, |mut b, row| {
            b.push_bind(row.id)
                .push_bind(row.flow)
                .push_bind(row.flow_version)
                .push_bind(row.status)
                .push_bind(row.params)
                .push_bind(row.trigger)
                .push_bind(row.concurrency_key)
                .push_bind(row.parent_run_id)
                .push_bind(row.created_at)
                .push_bind(row.started_at)
                .push_bind(row.finished_at)
                .push_bind(row.error)
                .push_bind(row.data)
                .push_bind(row.node)
                .push_bind(row.message)
                .push_bind(row.progress)
                .push_bind(row.limit);
        });
        query
            .build()
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("run id"))?;
    }
    Ok(())
}

/// A run's column values, in `run_columns!` order, then its concurrency limit.
struct RunRow {
    id: String,
    flow: String,
    flow_version: String,
    status: &'static str,
    params: String,
    trigger: String,
    concurrency_key: Option<String>,
    parent_run_id: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    error: Option<String>,
    data: String,
    node: Option<String>,
    message: Option<String>,
    progress: Option<String>,
    limit: Option<i64>,
}

impl RunRow {
    fn of(run: &Run, limit: Option<u32>) -> Result<Self, StoreError> {
        Ok(Self {
            id: codec::run_id(&run.id),
            flow: run.flow.clone(),
            flow_version: run.flow_version.clone(),
            status: run.status.as_str(),
            params: codec::json("params", &run.params)?,
            trigger: codec::json("trigger", &run.trigger)?,
            concurrency_key: run.concurrency_key.clone(),
            parent_run_id: run.parent_run_id.as_ref().map(codec::run_id),
            created_at: codec::time(run.created_at),
            started_at: codec::opt_time(run.started_at),
            finished_at: codec::opt_time(run.finished_at),
            error: codec::opt_json("error", run.error.as_ref())?,
            data: codec::json("data", &run.data)?,
            node: run.node.clone(),
            message: run.message.clone(),
            progress: codec::opt_json("progress", run.progress.as_ref())?,
            limit: limit.map(i64::from),
        })
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn add_schedule(&self, schedule: &StoredSchedule) -> Result<(), StoreError> {
        let schedule = schedule.clone();
        self.writer
            .run(move |c| Box::pin(async move { add(c, &schedule).await }))
            .await
    }

    async fn schedules(&self) -> Result<Vec<StoredSchedule>, StoreError> {
        list(&self.reader).await
    }

    async fn remove_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |c| Box::pin(async move { remove(c, &id).await }))
            .await
    }

    async fn schedule_marks(&self) -> Result<Vec<ScheduleMark>, StoreError> {
        marks(&self.reader).await
    }

    async fn set_schedule_paused(
        &self,
        key: &str,
        paused: bool,
        caught_up: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.writer
            .run(move |c| Box::pin(async move { set_paused(c, &key, paused, caught_up).await }))
            .await
    }

    async fn fire(&self, fires: &[Fire]) -> Result<Vec<Option<Admitted>>, StoreError> {
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let fires = fires.to_vec();
        let answers = self
            .writer
            .run(move |c| Box::pin(async move { fire(c, &fires).await }))
            .await?;
        if answers
            .iter()
            .any(|a| matches!(a, Some(Admitted::Created(_) | Admitted::Replaced { .. })))
        {
            self.wake();
        }
        Ok(answers)
    }
}
