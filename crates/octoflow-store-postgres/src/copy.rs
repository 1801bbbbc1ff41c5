//! Bulk export and import of raw records ([`CopyStore`]), for `octoflow store copy`: runs
//! with their step runs and log lines here, the records beside them in `copy_records`.
//!
//! An export reads in one `REPEATABLE READ` transaction, so a page and what belongs to it
//! are one snapshot. An import is one transaction: the runs not here yet are written with
//! the row encoder admissions use (`runs::insert`), their step runs and log lines with the
//! column encoders of `steps` and `logs`, each kind in one statement. A run already here is
//! skipped with everything of it. Imported queued runs wake the workers of every node.

use std::collections::HashSet;

use async_trait::async_trait;
use octoflow_core::store::{
    CopyCounts, CopyStore, LogLine, RunId, RunRecord, RunStatus, StepRun, StoreError, StoreRecords,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Transaction};

use crate::codec::CodecError;
use crate::error::from_sqlx;
use crate::runs::{self, NewRow, run_columns};
use crate::{PostgresStore, codec, copy_records, logs, steps};

/// A read-only transaction that sees one snapshot throughout.
async fn snapshot(pool: &PgPool) -> Result<Transaction<'_, Postgres>, StoreError> {
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    Ok(tx)
}

/// Ends a query of `runs` with the page after `after`: a range of the primary key's index
/// (none for the first page), in id order.
fn page_of(
    query: &mut QueryBuilder<Postgres>,
    after: Option<RunId>,
    limit: u32,
) -> &mut QueryBuilder<Postgres> {
    if let Some(after) = after {
        query.push(" WHERE id > ").push_bind(after.0);
    }
    query
        .push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(limit));
    query
}

/// Up to `limit` runs after `after`, in id order, each with its step runs and log lines.
async fn export(
    conn: &mut PgConnection,
    after: Option<RunId>,
    limit: u32,
) -> Result<Vec<RunRecord>, StoreError> {
    let mut query = QueryBuilder::new(concat!(
        "SELECT ",
        run_columns!(),
        ", concurrency_limit, idempotency_key, lease_until, cancel_requested, lock_released \
         FROM runs"
    ));
    let rows = page_of(&mut query, after, limit)
        .build()
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    let mut records = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<uuid::Uuid> = records.iter().map(|r| r.run.id.0).collect();
    let steps = sqlx::query(
        "SELECT run_id, step, attempt, status, started_at, finished_at, result, error \
         FROM step_runs WHERE run_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let lines = sqlx::query(
        "SELECT seq, run_id, step, attempt, ts, stream, line FROM step_logs \
         WHERE run_id = ANY($1) ORDER BY seq",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    for row in &steps {
        let step = steps::decode(row)?;
        if let Some(record) = records.iter_mut().find(|r| r.run.id == step.run_id) {
            record.steps.push(step);
        }
    }
    for row in &lines {
        let line = logs::decode(row)?;
        if let Some(record) = records.iter_mut().find(|r| r.run.id == line.run_id) {
            record.logs.push(line);
        }
    }
    Ok(records)
}

/// A run and what its row keeps beside it; its step runs and logs are read apart.
fn decode(row: &PgRow) -> Result<RunRecord, StoreError> {
    let limit: Option<i32> = codec::get(row, "concurrency_limit")?;
    let concurrency_limit = limit
        .map(|value| {
            u32::try_from(value).map_err(|_| CodecError::Range {
                column: "concurrency_limit",
                value: i64::from(value),
            })
        })
        .transpose()?;
    Ok(RunRecord {
        run: runs::decode(row)?,
        concurrency_limit,
        idempotency_key: codec::get(row, "idempotency_key")?,
        lease_until: codec::get(row, "lease_until")?,
        cancel_requested: codec::get(row, "cancel_requested")?,
        lock_released: codec::get(row, "lock_released")?,
        steps: Vec::new(),
        logs: Vec::new(),
    })
}

/// Records the runs not here yet, with their step runs and log lines, in `tx`.
async fn import(
    tx: &mut PgConnection,
    channel: &str,
    records: &[RunRecord],
) -> Result<CopyCounts, StoreError> {
    let ids: Vec<uuid::Uuid> = records.iter().map(|r| r.run.id.0).collect();
    let held: HashSet<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM runs WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?
        .into_iter()
        .collect();
    let new: Vec<&RunRecord> = records
        .iter()
        .filter(|r| !held.contains(&r.run.id.0))
        .collect();
    for record in &new {
        let row = NewRow {
            limit: record.concurrency_limit,
            idempotency_key: record.idempotency_key.as_deref(),
            lease_until: record.lease_until,
            notify: None,
        };
        runs::insert(&mut *tx, &record.run, &row).await?;
        if record.cancel_requested || record.lock_released {
            sqlx::query("UPDATE runs SET cancel_requested = $2, lock_released = $3 WHERE id = $1")
                .bind(record.run.id.0)
                .bind(record.cancel_requested)
                .bind(record.lock_released)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
    }
    let step_runs: Vec<StepRun> = new.iter().flat_map(|r| r.steps.iter().cloned()).collect();
    let lines: Vec<LogLine> = new.iter().flat_map(|r| r.logs.iter().cloned()).collect();
    insert_steps(tx, &step_runs).await?;
    insert_lines(tx, &lines).await?;
    if new.iter().any(|r| r.run.status == RunStatus::Queued) {
        runs::notify(tx, channel).await?;
    }
    Ok(CopyCounts {
        runs: new.len() as u64,
        step_runs: step_runs.len() as u64,
        log_lines: lines.len() as u64,
        ..CopyCounts::default()
    })
}

/// Records step runs of runs no executor holds, in order, in one statement.
async fn insert_steps(tx: &mut PgConnection, step_runs: &[StepRun]) -> Result<(), StoreError> {
    let columns = steps::Columns::of(step_runs)?;
    sqlx::query(
        "INSERT INTO step_runs (run_id, step, attempt, status, started_at, finished_at, result, \
           error) \
         SELECT s.run_id, s.step, s.attempt, s.status, s.started_at, s.finished_at, \
           s.result::json, s.error \
         FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::text[], $5::timestamptz[], \
           $6::timestamptz[], $7::text[], $8::text[]) WITH ORDINALITY \
           AS s (run_id, step, attempt, status, started_at, finished_at, result, error, n) \
         ORDER BY s.n",
    )
    .bind(columns.run_id)
    .bind(columns.step)
    .bind(columns.attempt)
    .bind(columns.status)
    .bind(columns.started_at)
    .bind(columns.finished_at)
    .bind(columns.result)
    .bind(columns.error)
    .execute(tx)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Records log lines of runs nobody follows yet, in order, in one statement (new places are
/// drawn in that order).
async fn insert_lines(tx: &mut PgConnection, lines: &[LogLine]) -> Result<(), StoreError> {
    let columns = logs::Columns::of(lines);
    sqlx::query(
        "INSERT INTO step_logs (run_id, step, attempt, ts, stream, line) \
         SELECT l.run_id, l.step, l.attempt, l.ts, l.stream, l.line \
         FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::timestamptz[], $5::text[], \
           $6::text[]) WITH ORDINALITY AS l (run_id, step, attempt, ts, stream, line, n) \
         ORDER BY l.n",
    )
    .bind(columns.run_id)
    .bind(columns.step)
    .bind(columns.attempt)
    .bind(columns.ts)
    .bind(columns.stream)
    .bind(columns.line)
    .execute(tx)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

#[async_trait]
impl CopyStore for PostgresStore {
    async fn run_ids(&self, after: Option<RunId>, limit: u32) -> Result<Vec<RunId>, StoreError> {
        let mut query = QueryBuilder::new("SELECT id FROM runs");
        let ids: Vec<uuid::Uuid> = page_of(&mut query, after, limit)
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(ids.into_iter().map(RunId).collect())
    }

    async fn export_runs(
        &self,
        after: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut tx = snapshot(&self.pool).await?;
        let records = export(&mut tx, after, limit).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(records)
    }

    async fn import_runs(&self, runs: &[RunRecord]) -> Result<CopyCounts, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let counts = import(&mut tx, &self.names.channel, runs).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(counts)
    }

    async fn export_records(&self) -> Result<StoreRecords, StoreError> {
        let mut tx = snapshot(&self.pool).await?;
        let records = copy_records::export(&mut tx).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(records)
    }

    async fn import_records(&self, records: &StoreRecords) -> Result<CopyCounts, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let counts = copy_records::import(&mut tx, records).await?;
        tx.commit().await.map_err(from_sqlx)?;
        if counts.users + counts.tokens > 0 {
            self.auth_seen.forget();
        }
        Ok(counts)
    }
}
