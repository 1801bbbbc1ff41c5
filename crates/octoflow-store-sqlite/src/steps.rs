//! The `step_runs` table: one row per step attempt, started then finished.

use octoflow_core::store::{Fence, RunId, StepFinish, StepRun, StepRunId, StoreError};
use rusqlite::{Connection, Row, params};

use crate::codec;
use crate::query::{all, execute};
use crate::runs::check_fence;

/// Records the start of one step attempt of the run `fence` holds; its id is the row id.
pub(crate) fn insert(
    conn: &Connection,
    fence: &Fence,
    step: &StepRun,
) -> Result<StepRunId, StoreError> {
    check_fence(conn, fence)?;
    insert_unchecked(conn, step)
}

/// Records a step attempt, whoever holds its run (the caller checked the fence, or no
/// executor holds it: a copied run).
pub(crate) fn insert_unchecked(conn: &Connection, step: &StepRun) -> Result<StepRunId, StoreError> {
    StepRow::encode(step)?.insert(conn)
}

/// A step attempt's row, encoded where the attempt is (see [`RunRow`](crate::runs::RunRow)).
pub(crate) struct StepRow {
    run_id: String,
    step: String,
    attempt: u32,
    status: &'static str,
    started_at: String,
    finished_at: Option<String>,
    result: Option<String>,
    error: Option<String>,
}

impl StepRow {
    /// Encodes `step`.
    pub(crate) fn encode(step: &StepRun) -> Result<Self, StoreError> {
        Ok(Self {
            run_id: codec::run_id(&step.run_id),
            step: step.step.clone(),
            attempt: step.attempt,
            status: step.status.as_str(),
            started_at: codec::time(step.started_at),
            finished_at: codec::opt_time(step.finished_at),
            result: codec::opt_json("result", step.result.as_ref())?,
            error: step.error.clone(),
        })
    }

    /// Inserts the row, whoever holds its run; its id.
    pub(crate) fn insert(&self, conn: &Connection) -> Result<StepRunId, StoreError> {
        execute(
            conn,
            "INSERT INTO step_runs \
             (run_id, step, attempt, status, started_at, finished_at, result, error) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                self.run_id,
                self.step,
                self.attempt,
                self.status,
                self.started_at,
                self.finished_at,
                self.result,
                self.error,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }
}

/// Records step attempts that ended, in order, for the run `fence` holds (checked once).
pub(crate) fn insert_all(
    conn: &Connection,
    fence: &Fence,
    steps: &[StepRun],
) -> Result<(), StoreError> {
    check_fence(conn, fence)?;
    for step in steps {
        insert_unchecked(conn, step)?;
    }
    Ok(())
}

/// Records the end of one step attempt of the run `fence` holds.
pub(crate) fn finish(
    conn: &Connection,
    fence: &Fence,
    id: StepRunId,
    finish: &StepFinish,
) -> Result<(), StoreError> {
    check_fence(conn, fence)?;
    let changed = execute(
        conn,
        "UPDATE step_runs SET status = ?, finished_at = ?, result = ?, error = ? WHERE id = ?",
        params![
            finish.status.as_str(),
            codec::time(finish.finished_at),
            codec::opt_json("result", finish.result.as_ref())?,
            finish.error,
            id,
        ],
    )?;
    if changed == 0 {
        tracing::warn!(step_run_id = id, "Finish of an unknown step run ignored.");
    }
    Ok(())
}

/// A run's step runs in the order they were recorded as started.
pub(crate) fn list(conn: &Connection, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
    all(
        conn,
        "SELECT run_id, step, attempt, status, started_at, finished_at, result, error \
         FROM step_runs WHERE run_id = ? ORDER BY id",
        [codec::run_id(id)],
        decode,
    )
}

fn decode(row: &Row<'_>) -> Result<StepRun, StoreError> {
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
