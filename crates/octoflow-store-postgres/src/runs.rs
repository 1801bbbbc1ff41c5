//! The `runs` table: insert, end, read, list with filters, progress, retention and
//! interrupted-run recovery; and the [`RunStore`] implementation, whose step runs and log
//! lines live in `steps` and `logs`.
//!
//! Each write of an executor names its fence in its `WHERE`: `status = 'running' AND claim =
//! <generation>`. A write that matches no row was fenced out, and changed nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octoflow_core::store::{
    Fence, LogLine, Page, Paged, Progress, QueueStore, Run, RunError, RunFilter, RunId, RunStatus,
    RunStore, RunUpdate, StepFinish, StepRun, StepRunId, StepStatus, StoreError,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::ends::End;
use crate::error::{conflict_or, from_sqlx};
use crate::{PostgresStore, codec, logs, steps};

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

/// The lease of a run recorded `running` only to be ended in the next statement.
const ENDING_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// What a new run's row holds beyond the run itself.
#[derive(Debug, Default)]
pub(crate) struct NewRow<'a> {
    /// The concurrency limit claims must respect (`None`: no limit).
    pub(crate) limit: Option<u32>,
    /// The idempotency key it was admitted with.
    pub(crate) idempotency_key: Option<&'a str>,
    /// The end of its lease, for a run recorded running.
    pub(crate) lease_until: Option<DateTime<Utc>>,
    /// The channel to notify, in the same statement, that work arrived.
    pub(crate) notify: Option<&'a str>,
}

/// Records a new run; a run id already taken is a `Conflict`.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    run: &Run,
    row: &NewRow<'_>,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "WITH inserted AS (INSERT INTO runs (",
        run_columns!(),
        ", concurrency_limit, idempotency_key, lease_until) VALUES ",
        "($1, $2, $3, $4, $5::json, $6::json, $7, $8, $9, $10, $11, $12::json, $13::json, $14, ",
        "$15, $16::json, $17, $18, $19, $20) RETURNING 1) ",
        "SELECT 1 FROM inserted LEFT JOIN LATERAL ",
        "(SELECT pg_notify($21, '') WHERE $21 IS NOT NULL) AS woken ON true"
    ))
    .bind(run.id.0)
    .bind(&run.flow)
    .bind(&run.flow_version)
    .bind(run.status.as_str())
    .bind(codec::json("params", &run.params)?)
    .bind(codec::json("trigger", &run.trigger)?)
    .bind(&run.concurrency_key)
    .bind(run.parent_run_id.map(|id| id.0))
    .bind(run.created_at)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(codec::opt_json("error", run.error.as_ref())?)
    .bind(codec::json("data", &run.data)?)
    .bind(&run.node)
    .bind(&run.message)
    .bind(codec::opt_json("progress", run.progress.as_ref())?)
    .bind(codec::generation(run.generation))
    .bind(row.limit.map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
    .bind(row.idempotency_key)
    .bind(row.lease_until)
    .bind(row.notify)
    .execute(conn)
    .await
    .map_err(conflict_or("run id"))?;
    Ok(())
}

/// One run.
pub(crate) async fn get(conn: &mut PgConnection, id: &RunId) -> Result<Option<Run>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(conn)
    .await
    .map_err(from_sqlx)?
    .as_ref()
    .map(decode)
    .transpose()
}

/// The filter's conditions, ` WHERE …` (nothing without any), with their values bound.
fn push_filter(query: &mut QueryBuilder<Postgres>, filter: &RunFilter) {
    let mut joiner = " WHERE ";
    let mut next = |query: &mut QueryBuilder<Postgres>, condition: &str| {
        query.push(joiner).push(condition);
        joiner = " AND ";
    };
    if let Some(flow) = &filter.flow {
        next(query, "flow = ");
        query.push_bind(flow.clone());
    }
    if !filter.status.is_empty() {
        next(query, "status = ANY(");
        let words: Vec<&'static str> = filter.status.iter().map(|s| s.as_str()).collect();
        query.push_bind(words).push("::text[])");
    }
    if let Some(kind) = &filter.trigger {
        next(query, "trigger->>'kind' = ");
        query.push_bind(kind.clone());
    }
    if let Some(parent) = filter.parent {
        next(query, "parent_run_id = ");
        query.push_bind(parent.0);
    }
    if let Some(since) = filter.since {
        next(query, "created_at >= ");
        query.push_bind(since);
    }
    if let Some(until) = filter.until {
        next(query, "created_at < ");
        query.push_bind(until);
    }
}

/// Runs matching a filter, newest first, with the number of matches in all pages: one
/// statement, so `total` and `items` agree.
async fn list(pool: &PgPool, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError> {
    let page_no = page.page.max(1);
    let per_page = page.per_page.max(1);
    let offset = i64::from(page_no - 1) * i64::from(per_page);
    // One row per run of the page, or one row of NULLs when the page is empty.
    let mut query = QueryBuilder::new("SELECT (SELECT count(*) FROM runs");
    push_filter(&mut query, filter);
    query.push(concat!(
        ") AS total, page.* FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT ",
        run_columns!(),
        " FROM runs"
    ));
    push_filter(&mut query, filter);
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(per_page))
        .push(" OFFSET ")
        .push_bind(offset)
        .push(") AS page ON true");
    let rows = query.build().fetch_all(pool).await.map_err(from_sqlx)?;
    let total = match rows.first() {
        Some(row) => codec::get_unsigned(row, "total")?,
        None => 0,
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        if codec::get::<Option<uuid::Uuid>>(row, "id")?.is_some() {
            items.push(decode(row)?);
        }
    }
    Ok(Paged {
        items,
        page: page_no,
        per_page,
        total,
    })
}

/// Fails a run left `running` under `fence`, and its running step runs, in one transaction.
/// The run's error names the most recently started step that was still running.
async fn mark_interrupted(pool: &PgPool, channel: &str, fence: &Fence) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let held = sqlx::query(
        "SELECT concurrency_key IS NOT NULL AND NOT lock_released AS frees FROM runs \
         WHERE id = $1 AND status = 'running' AND claim = $2 FOR UPDATE",
    )
    .bind(fence.run.0)
    .bind(codec::generation(fence.generation))
    .fetch_optional(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    let Some(held) = held else {
        return Ok(false);
    };
    let step: Option<String> = sqlx::query(
        "SELECT step FROM step_runs WHERE run_id = $1 AND status = 'running' \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(fence.run.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(from_sqlx)?
    .map(|row| codec::get(&row, "step"))
    .transpose()?;
    let error = RunError {
        step,
        message: INTERRUPTED.to_owned(),
    };
    let now = codec::now();
    sqlx::query(
        "UPDATE runs SET status = $2, finished_at = $3, error = $4::json, lease_until = NULL \
         WHERE id = $1",
    )
    .bind(fence.run.0)
    .bind(RunStatus::Failed.as_str())
    .bind(now)
    .bind(codec::json("error", &error)?)
    .execute(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    sqlx::query(
        "UPDATE step_runs SET status = $2, finished_at = $3, error = $4 \
         WHERE run_id = $1 AND status = $5",
    )
    .bind(fence.run.0)
    .bind(StepStatus::Failed.as_str())
    .bind(now)
    .bind(INTERRUPTED)
    .bind(StepStatus::Running.as_str())
    .execute(&mut *tx)
    .await
    .map_err(from_sqlx)?;
    if codec::get::<bool>(&held, "frees")? {
        notify(&mut tx, channel).await?;
    }
    tx.commit().await.map_err(from_sqlx)?;
    tracing::info!(run_id = %fence.run, step = ?error.step, "Interrupted run marked failed.");
    Ok(true)
}

/// Notifies `channel` when the caller's transaction commits.
pub(crate) async fn notify(conn: &mut PgConnection, channel: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Removes up to `limit` runs that ended before `before`, oldest first; their step runs and
/// log lines go with them (`ON DELETE CASCADE`).
async fn prune(pool: &PgPool, before: DateTime<Utc>, limit: u32) -> Result<Vec<RunId>, StoreError> {
    let rows = sqlx::query(
        "DELETE FROM runs WHERE id IN ( \
           SELECT id FROM runs \
           WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
             AND finished_at < $1 \
           ORDER BY finished_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, finished_at",
    )
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    let mut pruned = rows
        .iter()
        .map(|row| {
            Ok((
                codec::get::<DateTime<Utc>>(row, "finished_at")?,
                RunId(codec::get(row, "id")?),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    pruned.sort();
    Ok(pruned.into_iter().map(|(_, id)| id).collect())
}

/// A run from a row selected with [`run_columns`].
pub(crate) fn decode(row: &PgRow) -> Result<Run, StoreError> {
    Ok(Run {
        id: RunId(codec::get(row, "id")?),
        flow: codec::get(row, "flow")?,
        flow_version: codec::get(row, "flow_version")?,
        status: codec::get_word(row, "status")?,
        params: codec::get_json(row, "params")?,
        trigger: codec::get_json(row, "trigger")?,
        concurrency_key: codec::get(row, "concurrency_key")?,
        parent_run_id: codec::get::<Option<uuid::Uuid>>(row, "parent_run_id")?.map(RunId),
        created_at: codec::get(row, "created_at")?,
        started_at: codec::get(row, "started_at")?,
        finished_at: codec::get(row, "finished_at")?,
        error: codec::get_opt_json(row, "error")?,
        data: codec::get_json(row, "data")?,
        node: codec::get(row, "node")?,
        message: codec::get(row, "message")?,
        progress: codec::get_opt_json(row, "progress")?,
        generation: codec::get_unsigned(row, "claim")?,
    })
}

/// Every row of a query selecting [`run_columns`], decoded.
pub(crate) fn decode_all(rows: &[PgRow]) -> Result<Vec<Run>, StoreError> {
    rows.iter().map(decode).collect()
}

#[async_trait]
impl RunStore for PostgresStore {
    async fn insert_run(&self, run: &Run) -> Result<(), StoreError> {
        let queued = run.status == RunStatus::Queued;
        let row = NewRow {
            notify: queued.then_some(self.names.channel.as_str()),
            ..NewRow::default()
        };
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        insert(&mut conn, run, &row).await
    }

    async fn end_run(
        &self,
        fence: &Fence,
        steps: &[StepRun],
        update: &RunUpdate,
    ) -> Result<(), StoreError> {
        self.ends.write(End::new(fence, steps, update)?).await
    }

    /// The run `running`, then its end with its steps, as any run ends: two statements.
    /// (Deferred runs save a write on SQLite; on a shared store they are rare.)
    async fn insert_ended(&self, run: &Run, steps: &[StepRun]) -> Result<(), StoreError> {
        let owned = QueueStore::insert_owned(self, run, ENDING_LEASE).await?;
        self.end_run(&owned.fence(), steps, &RunUpdate::ended(run))
            .await
    }

    async fn insert_step_run(
        &self,
        fence: &Fence,
        step: &StepRun,
    ) -> Result<StepRunId, StoreError> {
        steps::insert(&self.pool, fence, step).await
    }

    async fn finish_step_run(
        &self,
        fence: &Fence,
        id: StepRunId,
        finish: &StepFinish,
    ) -> Result<(), StoreError> {
        steps::finish(&self.pool, fence, id, finish).await
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        logs::append(&self.pool, &self.names.log_lock_prefix(), lines).await
    }

    async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        get(&mut conn, id).await
    }

    async fn step_runs(&self, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
        steps::list(&self.pool, id).await
    }

    async fn logs(
        &self,
        id: &RunId,
        step: Option<&str>,
        after: u64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        logs::list(&self.pool, id, step, after).await
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError> {
        list(&self.pool, filter, page).await
    }

    async fn running_runs(&self) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE status = 'running' ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        decode_all(&rows)
    }

    async fn mark_interrupted(&self, fence: &Fence) -> Result<bool, StoreError> {
        mark_interrupted(&self.pool, &self.names.channel, fence).await
    }

    async fn set_progress(&self, id: &RunId, progress: &Progress) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET progress = $2::json WHERE id = $1")
            .bind(id.0)
            .bind(codec::json("progress", progress)?)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn prune_runs(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RunId>, StoreError> {
        prune(&self.pool, before, limit).await
    }
}
