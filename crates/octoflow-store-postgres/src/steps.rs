//! The `step_runs` table: one row per step attempt, started then finished, written only by
//! the run's holder.
//!
//! A write checks the fence with `FOR SHARE` on the run's row: a hand-back or take-over of
//! the run (an `UPDATE` of that row) waits for the write to commit, or the write sees the
//! run moved on and records nothing.

use chrono::{DateTime, Utc};
use octoflow_core::store::{Fence, RunId, StepFinish, StepRun, StepRunId, StoreError};
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use crate::codec;
use crate::error::from_sqlx;

/// Step attempts as one array per column, bound to an `unnest` that inserts them in one
/// statement.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub(crate) run_id: Vec<uuid::Uuid>,
    pub(crate) step: Vec<String>,
    pub(crate) attempt: Vec<i32>,
    pub(crate) status: Vec<&'static str>,
    pub(crate) started_at: Vec<DateTime<Utc>>,
    pub(crate) finished_at: Vec<Option<DateTime<Utc>>>,
    pub(crate) result: Vec<Option<String>>,
    pub(crate) error: Vec<Option<String>>,
}

impl Columns {
    /// The columns of `steps`, in order.
    pub(crate) fn of(steps: &[StepRun]) -> Result<Self, StoreError> {
        let mut columns = Self::default();
        for step in steps {
            columns.run_id.push(step.run_id.0);
            columns.step.push(step.step.clone());
            columns.attempt.push(attempt(step.attempt));
            columns.status.push(step.status.as_str());
            columns.started_at.push(step.started_at);
            columns.finished_at.push(step.finished_at);
            columns
                .result
                .push(codec::opt_json("result", step.result.as_ref())?);
            columns.error.push(step.error.clone());
        }
        Ok(columns)
    }

    /// Appends a copy of `other`'s rows.
    pub(crate) fn extend(&mut self, other: &Self) {
        self.run_id.extend_from_slice(&other.run_id);
        self.step.extend_from_slice(&other.step);
        self.attempt.extend_from_slice(&other.attempt);
        self.status.extend_from_slice(&other.status);
        self.started_at.extend_from_slice(&other.started_at);
        self.finished_at.extend_from_slice(&other.finished_at);
        self.result.extend_from_slice(&other.result);
        self.error.extend_from_slice(&other.error);
    }
}

/// An attempt number as stored (`integer`).
fn attempt(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
}

/// Records the start of one step attempt of the run `fence` holds; its id is the row's.
pub(crate) async fn insert(
    pool: &PgPool,
    fence: &Fence,
    step: &StepRun,
) -> Result<StepRunId, StoreError> {
    let row = sqlx::query(
        "INSERT INTO step_runs \
           (run_id, step, attempt, status, started_at, finished_at, result, error) \
         SELECT $1, $2, $3, $4, $5, $6, $7::json, $8 \
         WHERE EXISTS (SELECT 1 FROM runs \
           WHERE id = $10 AND status = 'running' AND claim = $9 FOR SHARE) \
         RETURNING id",
    )
    .bind(step.run_id.0)
    .bind(&step.step)
    .bind(attempt(step.attempt))
    .bind(step.status.as_str())
    .bind(step.started_at)
    .bind(step.finished_at)
    .bind(codec::opt_json("result", step.result.as_ref())?)
    .bind(&step.error)
    .bind(codec::generation(fence.generation))
    .bind(fence.run.0)
    .fetch_optional(pool)
    .await
    .map_err(from_sqlx)?;
    match row {
        Some(row) => codec::get(&row, "id"),
        None => Err(StoreError::Fenced { run: fence.run }),
    }
}

/// Records the end of one step attempt of the run `fence` holds.
pub(crate) async fn finish(
    pool: &PgPool,
    fence: &Fence,
    id: StepRunId,
    finish: &StepFinish,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "WITH held AS (SELECT 1 FROM runs \
           WHERE id = $1 AND status = 'running' AND claim = $2 FOR SHARE), \
         finished AS (UPDATE step_runs \
           SET status = $4, finished_at = $5, result = $6::json, error = $7 \
           WHERE id = $3 AND run_id = $1 AND EXISTS (SELECT 1 FROM held) RETURNING 1) \
         SELECT EXISTS (SELECT 1 FROM held) AS held, EXISTS (SELECT 1 FROM finished) AS finished",
    )
    .bind(fence.run.0)
    .bind(codec::generation(fence.generation))
    .bind(id)
    .bind(finish.status.as_str())
    .bind(finish.finished_at)
    .bind(codec::opt_json("result", finish.result.as_ref())?)
    .bind(&finish.error)
    .fetch_one(pool)
    .await
    .map_err(from_sqlx)?;
    if !codec::get::<bool>(&row, "held")? {
        return Err(StoreError::Fenced { run: fence.run });
    }
    if !codec::get::<bool>(&row, "finished")? {
        tracing::warn!(step_run_id = id, run_id = %fence.run, "Finish of an unknown step run ignored.");
    }
    Ok(())
}

/// A run's step runs in the order they were recorded as started.
pub(crate) async fn list(pool: &PgPool, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
    let rows = sqlx::query(
        "SELECT run_id, step, attempt, status, started_at, finished_at, result, error \
         FROM step_runs WHERE run_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    rows.iter().map(decode).collect()
}

/// A step run from a row with its `run_id`, `step`, `attempt`, `status`, `started_at`,
/// `finished_at`, `result` and `error` columns.
pub(crate) fn decode(row: &PgRow) -> Result<StepRun, StoreError> {
    Ok(StepRun {
        run_id: RunId(codec::get(row, "run_id")?),
        step: codec::get(row, "step")?,
        attempt: codec::get_attempt(row)?,
        status: codec::get_word(row, "status")?,
        started_at: codec::get(row, "started_at")?,
        finished_at: codec::get(row, "finished_at")?,
        result: codec::get_opt_json(row, "result")?,
        error: codec::get(row, "error")?,
    })
}
