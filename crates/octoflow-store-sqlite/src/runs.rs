//! The `runs` table: insert, update, read, list with filters, and interrupted-run recovery.

use chrono::{DateTime, Utc};
use octoflow_core::store::{
    Fence, Page, Paged, Progress, Run, RunError, RunFilter, RunId, RunStatus, RunUpdate,
    StepStatus, StoreError,
};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use crate::codec;
use crate::error::{conflict_or, from_sqlite};
use crate::query::{all, execute, one};

/// The columns of a run, in [`decode`] order.
macro_rules! run_columns {
    () => {
        "id, flow, flow_version, status, params, trigger, concurrency_key, parent_run_id, \
         created_at, started_at, finished_at, error, data, node, message, progress, claim"
    };
}
pub(crate) use run_columns;

/// The error message of a run its process left behind.
const INTERRUPTED: &str = "interrupted";

/// Records a new run.
pub(crate) fn insert(conn: &Connection, run: &Run) -> Result<(), StoreError> {
    insert_with(conn, run, None, None)
}

/// Records a new run with the concurrency limit claims must respect and its idempotency key.
pub(crate) fn insert_with(
    conn: &Connection,
    run: &Run,
    limit: Option<u32>,
    idempotency_key: Option<&str>,
) -> Result<(), StoreError> {
    RunRow::encode(run)?.insert(conn, limit, idempotency_key)
}

/// A run's row, every value encoded as it is stored: made where the run is, so the writer's
/// thread, which every write waits for, spends its time in `SQLite` only.
pub(crate) struct RunRow {
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
    claim: i64,
}

impl RunRow {
    /// Encodes `run`.
    pub(crate) fn encode(run: &Run) -> Result<Self, StoreError> {
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
            claim: codec::generation(run.generation),
        })
    }

    /// Inserts the row, with the concurrency limit claims must respect and the idempotency
    /// key.
    pub(crate) fn insert(
        &self,
        conn: &Connection,
        limit: Option<u32>,
        idempotency_key: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut stmt = conn
            .prepare_cached(concat!(
                "INSERT INTO runs (",
                run_columns!(),
                ", concurrency_limit, idempotency_key",
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .map_err(from_sqlite)?;
        stmt.execute(params![
            self.id,
            self.flow,
            self.flow_version,
            self.status,
            self.params,
            self.trigger,
            self.concurrency_key,
            self.parent_run_id,
            self.created_at,
            self.started_at,
            self.finished_at,
            self.error,
            self.data,
            self.node,
            self.message,
            self.progress,
            self.claim,
            limit,
            idempotency_key,
        ])
        .map_err(conflict_or("run id"))?;
        Ok(())
    }
}

/// Records a new run already owned by its executor: running under generation 1, leased
/// until `lease_until`.
pub(crate) fn insert_owned(
    conn: &Connection,
    run: &Run,
    lease_until: &str,
) -> Result<Run, StoreError> {
    let mut run = run.clone();
    run.status = RunStatus::Running;
    run.generation = 1;
    run.started_at.get_or_insert_with(codec::now);
    insert(conn, &run)?;
    execute(
        conn,
        "UPDATE runs SET lease_until = ? WHERE id = ?",
        params![lease_until, codec::run_id(&run.id)],
    )?;
    Ok(run)
}

/// Whether the run `fence` names is running under its generation: what every write of an
/// executor checks in its own transaction.
pub(crate) fn check_fence(conn: &Connection, fence: &Fence) -> Result<(), StoreError> {
    let held: Option<i64> = one(
        conn,
        "SELECT 1 AS held FROM runs WHERE id = ? AND status = 'running' AND claim = ?",
        params![
            codec::run_id(&fence.run),
            codec::generation(fence.generation)
        ],
        |row| codec::get(row, "held"),
    )?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced { run: fence.run }),
    }
}

/// Records a run's progress.
pub(crate) fn set_progress(
    conn: &Connection,
    id: &RunId,
    progress: &Progress,
) -> Result<(), StoreError> {
    execute(
        conn,
        "UPDATE runs SET progress = ? WHERE id = ?",
        params![codec::json("progress", progress)?, codec::run_id(id)],
    )?;
    Ok(())
}

/// Removes up to `limit` runs that ended before `before`, oldest first; their step runs and
/// log lines go with them (`ON DELETE CASCADE`).
pub(crate) fn prune(
    conn: &Connection,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<RunId>, StoreError> {
    all(
        conn,
        "DELETE FROM runs WHERE id IN (\
           SELECT id FROM runs \
           WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
             AND finished_at < ? \
           ORDER BY finished_at LIMIT ?) \
         RETURNING id",
        params![codec::time(before), limit],
        |row| codec::get_word(row, "id"),
    )
}

/// Ends the run `fence` holds with `update`; fields the update leaves `None` keep their
/// stored value. [`StoreError::Fenced`] when the run is not running under that fence.
/// Returns whether the end frees a concurrency slot a queued run waits for: only then is
/// there new work for a claim.
pub(crate) fn end(
    conn: &Connection,
    fence: &Fence,
    update: &RunUpdate,
) -> Result<bool, StoreError> {
    let held_key: Option<Option<String>> = one(
        conn,
        "UPDATE runs SET status = ?, lease_until = NULL, \
         started_at = COALESCE(?, started_at), \
         finished_at = COALESCE(?, finished_at), \
         error = COALESCE(?, error), \
         data = COALESCE(?, data), \
         node = COALESCE(?, node), \
         message = COALESCE(?, message) \
         WHERE id = ? AND status = 'running' AND claim = ? \
         RETURNING CASE WHEN lock_released = 0 THEN concurrency_key END AS held_key",
        params![
            update.status.as_str(),
            codec::opt_time(update.started_at),
            codec::opt_time(update.finished_at),
            codec::opt_json("error", update.error.as_ref())?,
            codec::opt_json("data", update.data.as_ref())?,
            update.node,
            update.message,
            codec::run_id(&fence.run),
            codec::generation(fence.generation),
        ],
        |row| codec::get(row, "held_key"),
    )?;
    match held_key {
        None => Err(StoreError::Fenced { run: fence.run }),
        Some(None) => Ok(false),
        Some(Some(key)) => waited_for(conn, &key),
    }
}

/// Whether a queued run with a concurrency limit waits for `key` (one index seek).
fn waited_for(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    let waiting: Option<i64> = one(
        conn,
        "SELECT 1 AS waiting FROM runs INDEXED BY runs_queued_limited \
         WHERE status = 'queued' AND concurrency_limit IS NOT NULL AND concurrency_key = ? \
         LIMIT 1",
        [key],
        |row| codec::get(row, "waiting"),
    )?;
    Ok(waiting.is_some())
}

/// One run.
pub(crate) fn get(conn: &Connection, id: &RunId) -> Result<Option<Run>, StoreError> {
    one(
        conn,
        concat!("SELECT ", run_columns!(), " FROM runs WHERE id = ?"),
        [codec::run_id(id)],
        decode,
    )
}

/// Runs matching a filter, newest first, with the number of matches in all pages.
///
/// Both queries run in one read transaction, so `total` and `items` agree.
pub(crate) fn list(
    conn: &Connection,
    filter: &RunFilter,
    page: Page,
) -> Result<Paged<Run>, StoreError> {
    let page_no = page.page.max(1);
    let per_page = page.per_page.max(1);
    let offset = i64::from(page_no - 1) * i64::from(per_page);
    let (condition, mut values) = where_clause(filter);

    let tx = conn.unchecked_transaction().map_err(from_sqlite)?;
    let total: i64 = one(
        &tx,
        &format!("SELECT COUNT(*) AS total FROM runs{condition}"),
        params_from_iter(&values),
        |row| codec::get(row, "total"),
    )?
    .unwrap_or_default();
    values.extend([Value::Integer(i64::from(per_page)), Value::Integer(offset)]);
    let items = all(
        &tx,
        &list_query(&condition),
        params_from_iter(&values),
        decode,
    )?;
    tx.commit().map_err(from_sqlite)?;

    Ok(Paged {
        items,
        page: page_no,
        per_page,
        total: u64::try_from(total).unwrap_or_default(),
    })
}

/// One page of the runs meeting `condition` (a `WHERE` clause or nothing), newest first:
/// the indexes on `created_at` read backwards, never a sort.
fn list_query(condition: &str) -> String {
    format!(
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs{} ORDER BY created_at DESC, id DESC LIMIT (SELECT ?) OFFSET (SELECT ?)"
        ),
        condition
    )
}

/// Runs whose status is `running`, oldest first.
pub(crate) fn running(conn: &Connection) -> Result<Vec<Run>, StoreError> {
    all(
        conn,
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE status = 'running' ORDER BY created_at, id"
        ),
        [],
        decode,
    )
}

/// Fails a run left `running`, and its running step runs (the caller's transaction makes
/// this one change).
///
/// The run's error names the most recently started step that was still running.
pub(crate) fn mark_interrupted(conn: &Connection, fence: &Fence) -> Result<bool, StoreError> {
    let id = &fence.run;
    let id_text = codec::run_id(id);
    let now = codec::time(codec::now());

    match check_fence(conn, fence) {
        Ok(()) => {}
        Err(StoreError::Fenced { .. }) => return Ok(false),
        Err(other) => return Err(other),
    }

    let step: Option<String> = one(
        conn,
        "SELECT step FROM step_runs WHERE run_id = ? AND status = ? ORDER BY id DESC LIMIT 1",
        params![id_text, StepStatus::Running.as_str()],
        |row| codec::get_text(row, "step"),
    )?;
    let error = RunError {
        step,
        message: INTERRUPTED.to_owned(),
    };

    execute(
        conn,
        "UPDATE runs SET status = ?, finished_at = ?, error = ?, lease_until = NULL WHERE id = ?",
        params![
            RunStatus::Failed.as_str(),
            now,
            codec::json("error", &error)?,
            id_text
        ],
    )?;
    execute(
        conn,
        "UPDATE step_runs SET status = ?, finished_at = ?, error = ? \
         WHERE run_id = ? AND status = ?",
        params![
            StepStatus::Failed.as_str(),
            now,
            INTERRUPTED,
            id_text,
            StepStatus::Running.as_str()
        ],
    )?;
    tracing::info!(run_id = %id, step = ?error.step, "Interrupted run marked failed.");
    Ok(true)
}

/// ` WHERE …` for the filter's conditions (empty without any), and the values it binds.
fn where_clause(filter: &RunFilter) -> (String, Vec<Value>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut values = Vec::new();
    if let Some(flow) = &filter.flow {
        conditions.push("flow = ?".to_owned());
        values.push(Value::Text(flow.clone()));
    }
    if !filter.status.is_empty() {
        let marks = vec!["?"; filter.status.len()].join(", ");
        conditions.push(format!("status IN ({marks})"));
        values.extend(
            filter
                .status
                .iter()
                .map(|s| Value::Text(s.as_str().to_owned())),
        );
    }
    if let Some(kind) = &filter.trigger {
        conditions.push("json_extract(trigger, '$.kind') = ?".to_owned());
        values.push(Value::Text(kind.clone()));
    }
    if let Some(parent) = &filter.parent {
        conditions.push("parent_run_id = ?".to_owned());
        values.push(Value::Text(codec::run_id(parent)));
    }
    if let Some(since) = filter.since {
        conditions.push("created_at >= ?".to_owned());
        values.push(Value::Text(codec::time(since)));
    }
    if let Some(until) = filter.until {
        conditions.push("created_at < ?".to_owned());
        values.push(Value::Text(codec::time(until)));
    }
    if conditions.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", conditions.join(" AND ")), values)
    }
}

/// A run from a row selected with [`run_columns`].
pub(crate) fn decode(row: &Row<'_>) -> Result<Run, StoreError> {
    Ok(Run {
        id: codec::get_word(row, "id")?,
        flow: codec::get_text(row, "flow")?,
        flow_version: codec::get_text(row, "flow_version")?,
        status: codec::get_word(row, "status")?,
        params: codec::get_json(row, "params")?,
        trigger: codec::get_json(row, "trigger")?,
        concurrency_key: codec::get_opt_text(row, "concurrency_key")?,
        parent_run_id: codec::get_opt_word(row, "parent_run_id")?,
        created_at: codec::get_time(row, "created_at")?,
        started_at: codec::get_opt_time(row, "started_at")?,
        finished_at: codec::get_opt_time(row, "finished_at")?,
        error: codec::get_opt_json(row, "error")?,
        data: codec::get_json(row, "data")?,
        node: codec::get_opt_text(row, "node")?,
        message: codec::get_opt_text(row, "message")?,
        progress: codec::get_opt_json(row, "progress")?,
        generation: codec::get_generation(row)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    /// Listings newest first — all runs, one flow's, one run's children — read an index on
    /// `created_at` backwards (the indexes are ascending since schema 12) and never sort.
    #[tokio::test]
    async fn listings_read_an_index_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        let filters = [
            (RunFilter::default(), "runs_created_at"),
            (
                RunFilter {
                    flow: Some("f".to_owned()),
                    ..RunFilter::default()
                },
                "runs_flow_created_at",
            ),
            (
                RunFilter {
                    parent: Some(RunId::new()),
                    ..RunFilter::default()
                },
                "runs_parent",
            ),
        ];
        for (filter, index) in filters {
            let (condition, mut values) = where_clause(&filter);
            values.extend([Value::Integer(10), Value::Integer(0)]);
            let sql = format!("EXPLAIN QUERY PLAN {}", list_query(&condition));
            let plan = store
                .read(move |c| {
                    all(c, &sql, params_from_iter(&values), |row| {
                        codec::get_text(row, "detail")
                    })
                })
                .await
                .unwrap()
                .join("\n");
            assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
