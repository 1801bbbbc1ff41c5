//! The `step_runs` table: one row per step attempt, started then finished.

use octoflow_core::store::{RunId, StepFinish, StepRun, StepRunId, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use crate::codec;
use crate::error::from_sqlx;

/// Records the start of one step attempt; its id is the row id.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    step: &StepRun,
) -> Result<StepRunId, StoreError> {
    let done = sqlx::query(
        "INSERT INTO step_runs \
         (run_id, step, attempt, status, started_at, finished_at, result, error) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(codec::run_id(&step.run_id))
    .bind(&step.step)
    .bind(i64::from(step.attempt))
    .bind(step.status.as_str())
    .bind(codec::time(step.started_at))
    .bind(codec::opt_time(step.finished_at))
    .bind(codec::opt_json("result", step.result.as_ref())?)
    .bind(step.error.as_deref())
    .execute(conn)
    .await
    .map_err(from_sqlx)?;
    Ok(done.last_insert_rowid())
}

/// Records the end of one step attempt.
pub(crate) async fn finish(
    conn: &mut SqliteConnection,
    id: StepRunId,
    finish: &StepFinish,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE step_runs SET status = ?, finished_at = ?, result = ?, error = ? WHERE id = ?",
    )
    .bind(finish.status.as_str())
    .bind(codec::time(finish.finished_at))
    .bind(codec::opt_json("result", finish.result.as_ref())?)
    .bind(finish.error.as_deref())
    .bind(id)
    .execute(conn)
    .await
    .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        tracing::warn!(step_run_id = id, "Finish of an unknown step run ignored.");
    }
    Ok(())
}

/// A run's step runs in the order they were recorded as started.
pub(crate) async fn list(pool: &SqlitePool, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
    sqlx::query(
        "SELECT run_id, step, attempt, status, started_at, finished_at, result, error \
         FROM step_runs WHERE run_id = ? ORDER BY id",
    )
    .bind(codec::run_id(id))
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(decode)
    .collect()
}

fn decode(row: &SqliteRow) -> Result<StepRun, StoreError> {
    Ok(StepRun {
        run_id: codec::get_word(row, "run_id")?,
        step: codec::get_text(row, "step")?,
        attempt: codec::get_attempt(row)?,
        status: codec::get_word(row, "status")?,
        started_at: codec::get_time(row, "started_at")?,
        finished_at: codec::get_opt_time(row, "finished_at")?,
        result: codec::get_opt_json(row, "result")?,
        error: codec::get_opt_text(row, "error")?,
    })
}
