//! The `runs` table: insert, update, read, list with filters, and interrupted-run recovery.

use octoflow_core::store::{
    Page, Paged, Progress, Run, RunError, RunFilter, RunId, RunStatus, RunUpdate, StepStatus,
    StoreError,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::codec;
use crate::error::{conflict_or, from_sqlx};

/// The columns of a run, in [`decode`] order.
macro_rules! run_columns {
    () => {
        "id, flow, flow_version, status, params, trigger, concurrency_key, parent_run_id, \
         created_at, started_at, finished_at, error, data, node, message, progress"
    };
}
pub(crate) use run_columns;

/// The error message of a run its process left behind.
const INTERRUPTED: &str = "interrupted";

/// Records a new run.
pub(crate) async fn insert(conn: &mut SqliteConnection, run: &Run) -> Result<(), StoreError> {
    insert_with(conn, run, None, None).await
}

/// Records a new run with the concurrency limit claims must respect and its idempotency key.
pub(crate) async fn insert_with(
    conn: &mut SqliteConnection,
    run: &Run,
    limit: Option<u32>,
    idempotency_key: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO runs (",
        run_columns!(),
        ", concurrency_limit, idempotency_key",
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(codec::run_id(&run.id))
    .bind(&run.flow)
    .bind(&run.flow_version)
    .bind(run.status.as_str())
    .bind(codec::json("params", &run.params)?)
    .bind(codec::json("trigger", &run.trigger)?)
    .bind(run.concurrency_key.as_deref())
    .bind(run.parent_run_id.as_ref().map(codec::run_id))
    .bind(codec::time(run.created_at))
    .bind(codec::opt_time(run.started_at))
    .bind(codec::opt_time(run.finished_at))
    .bind(codec::opt_json("error", run.error.as_ref())?)
    .bind(codec::json("data", &run.data)?)
    .bind(run.node.as_deref())
    .bind(run.message.as_deref())
    .bind(codec::opt_json("progress", run.progress.as_ref())?)
    .bind(limit.map(i64::from))
    .bind(idempotency_key.map(str::to_owned))
    .execute(conn)
    .await
    .map_err(conflict_or("run id"))?;
    Ok(())
}

/// Records a run's progress.
pub(crate) async fn set_progress(
    conn: &mut SqliteConnection,
    id: &RunId,
    progress: &Progress,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE runs SET progress = ? WHERE id = ?")
        .bind(codec::json("progress", progress)?)
        .bind(codec::run_id(id))
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Applies an update; fields the update leaves `None` keep their stored value.
pub(crate) async fn update(
    conn: &mut SqliteConnection,
    update: &RunUpdate,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET status = ?, \
         started_at = COALESCE(?, started_at), \
         finished_at = COALESCE(?, finished_at), \
         error = COALESCE(?, error), \
         data = COALESCE(?, data), \
         node = COALESCE(?, node), \
         message = COALESCE(?, message) \
         WHERE id = ?",
    )
    .bind(update.status.as_str())
    .bind(codec::opt_time(update.started_at))
    .bind(codec::opt_time(update.finished_at))
    .bind(codec::opt_json("error", update.error.as_ref())?)
    .bind(codec::opt_json("data", update.data.as_ref())?)
    .bind(update.node.as_deref())
    .bind(update.message.as_deref())
    .bind(codec::run_id(&update.id))
    .execute(conn)
    .await
    .map_err(from_sqlx)?;
    if done.rows_affected() == 0 {
        tracing::warn!(run_id = %update.id, "Update of an unknown run ignored.");
    }
    Ok(())
}

/// One run.
pub(crate) async fn get(pool: &SqlitePool, id: &RunId) -> Result<Option<Run>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE id = ?"
    ))
    .bind(codec::run_id(id))
    .fetch_optional(pool)
    .await
    .map_err(from_sqlx)?
    .as_ref()
    .map(decode)
    .transpose()
}

/// Runs matching a filter, newest first, with the number of matches in all pages.
///
/// Both queries run in one read transaction, so `total` and `items` agree.
pub(crate) async fn list(
    pool: &SqlitePool,
    filter: &RunFilter,
    page: Page,
) -> Result<Paged<Run>, StoreError> {
    let page_no = page.page.max(1);
    let per_page = page.per_page.max(1);
    let offset = i64::from(page_no - 1) * i64::from(per_page);

    let mut tx = pool.begin().await.map_err(from_sqlx)?;

    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM runs");
    push_where(&mut count, filter);
    let total: i64 = count
        .build()
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(from_sqlx)?;

    let mut select = QueryBuilder::<Sqlite>::new(concat!("SELECT ", run_columns!(), " FROM runs"));
    push_where(&mut select, filter);
    select
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(per_page))
        .push(" OFFSET ")
        .push_bind(offset);
    let rows = select
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    tx.commit().await.map_err(from_sqlx)?;

    Ok(Paged {
        items: rows.iter().map(decode).collect::<Result<_, _>>()?,
        page: page_no,
        per_page,
        total: u64::try_from(total).unwrap_or_default(),
    })
}

/// Runs whose status is `running`, oldest first.
pub(crate) async fn running(pool: &SqlitePool) -> Result<Vec<Run>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE status = ? ORDER BY created_at, id"
    ))
    .bind(RunStatus::Running.as_str())
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(decode)
    .collect()
}

/// Fails a run left `running`, and its running step runs, in one write transaction.
///
/// The run's error names the most recently started step that was still running.
pub(crate) async fn mark_interrupted(
    conn: &mut SqliteConnection,
    id: &RunId,
) -> Result<bool, StoreError> {
    let id_text = codec::run_id(id);
    let now = codec::time(codec::now());
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;

    let status: Option<String> = sqlx::query("SELECT status FROM runs WHERE id = ?")
        .bind(&id_text)
        .fetch_optional(&mut *tx)
        .await
        .and_then(|row| row.map(|r| r.try_get(0)).transpose())
        .map_err(from_sqlx)?;
    if status.as_deref() != Some(RunStatus::Running.as_str()) {
        return Ok(false);
    }

    let step: Option<String> = sqlx::query(
        "SELECT step FROM step_runs WHERE run_id = ? AND status = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(&id_text)
    .bind(StepStatus::Running.as_str())
    .fetch_optional(&mut *tx)
    .await
    .and_then(|row| row.map(|r| r.try_get(0)).transpose())
    .map_err(from_sqlx)?;
    let error = RunError {
        step,
        message: INTERRUPTED.to_owned(),
    };

    sqlx::query("UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?")
        .bind(RunStatus::Failed.as_str())
        .bind(&now)
        .bind(codec::json("error", &error)?)
        .bind(&id_text)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    sqlx::query(
        "UPDATE step_runs SET status = ?, finished_at = ?, error = ? \
         WHERE run_id = ? AND status = ?",
    )
    .bind(StepStatus::Failed.as_str())
    .bind(&now)
    .bind(INTERRUPTED)
    .bind(&id_text)
    .bind(StepStatus::Running.as_str())
    .execute(&mut *tx)
    .await
    .map_err(from_sqlx)?;

    tx.commit().await.map_err(from_sqlx)?;
    tracing::info!(run_id = %id, step = ?error.step, "Interrupted run marked failed.");
    Ok(true)
}

/// Appends ` WHERE …` for the filter's conditions, all values bound.
fn push_where(query: &mut QueryBuilder<Sqlite>, filter: &RunFilter) {
    let mut sep = " WHERE ";
    let mut next = |query: &mut QueryBuilder<Sqlite>| {
        query.push(sep);
        sep = " AND ";
    };
    if let Some(flow) = &filter.flow {
        next(query);
        query.push("flow = ").push_bind(flow.clone());
    }
    if !filter.status.is_empty() {
        next(query);
        query.push("status IN (");
        let mut list = query.separated(", ");
        for status in &filter.status {
            list.push_bind(status.as_str());
        }
        query.push(")");
    }
    if let Some(kind) = &filter.trigger {
        next(query);
        query
            .push("json_extract(trigger, '$.kind') = ")
            .push_bind(kind.clone());
    }
    if let Some(since) = filter.since {
        next(query);
        query.push("created_at >= ").push_bind(codec::time(since));
    }
    if let Some(until) = filter.until {
        next(query);
        query.push("created_at < ").push_bind(codec::time(until));
    }
}

/// A run from a row selected with [`run_columns`].
pub(crate) fn decode(row: &SqliteRow) -> Result<Run, StoreError> {
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
    })
}
