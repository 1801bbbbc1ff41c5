//! Bulk export and import of raw records ([`CopyStore`]), for `octoflow store copy`: runs
//! with their step runs and log lines here, the records beside them in `copy_records`.
//!
//! Rows are written with the encoders the other tables' modules use (`runs::insert_with`,
//! `steps::insert_unchecked`, `logs::append`). An export reads one page in one read
//! transaction; an import is one write op (one savepoint of the writer's transaction), so it
//! is all or none. A run already here is skipped with everything of it.

use async_trait::async_trait;
use octoflow_core::store::{
    CopyCounts, CopyStore, RunId, RunRecord, RunStatus, StoreError, StoreRecords,
};
use rusqlite::{Connection, Row, params};

use crate::codec::{self, CodecError};
use crate::error::from_sqlite;
use crate::query::{all, execute, one};
use crate::runs::{self, run_columns};
use crate::{SqliteStore, copy_records, logs, steps};

/// The stored text of the id runs are read after: the empty text sorts before every id.
fn after_text(after: Option<RunId>) -> String {
    after.as_ref().map(codec::run_id).unwrap_or_default()
}

/// The ids of up to `limit` runs after `after`, in id order.
fn run_ids(conn: &Connection, after: Option<RunId>, limit: u32) -> Result<Vec<RunId>, StoreError> {
    all(
        conn,
        "SELECT id FROM runs WHERE id > ? ORDER BY id LIMIT ?",
        params![after_text(after), limit],
        |row| codec::get_word(row, "id"),
    )
}

/// Up to `limit` runs after `after`, in id order, each with its step runs and log lines, in
/// one read transaction.
fn export(
    conn: &Connection,
    after: Option<RunId>,
    limit: u32,
) -> Result<Vec<RunRecord>, StoreError> {
    let tx = conn.unchecked_transaction().map_err(from_sqlite)?;
    let mut records = all(
        &tx,
        concat!(
            "SELECT ",
            run_columns!(),
            ", concurrency_limit, idempotency_key, lease_until, cancel_requested, lock_released \
             FROM runs WHERE id > ? ORDER BY id LIMIT ?"
        ),
        params![after_text(after), limit],
        decode,
    )?;
    for record in &mut records {
        record.steps = steps::list(&tx, &record.run.id)?;
        record.logs = logs::list(&tx, &record.run.id, None, 0)?;
    }
    tx.commit().map_err(from_sqlite)?;
    Ok(records)
}

/// A run and what its row keeps beside it; its step runs and logs are read apart.
fn decode(row: &Row<'_>) -> Result<RunRecord, StoreError> {
    let limit: Option<i64> = codec::get(row, "concurrency_limit")?;
    let concurrency_limit = limit
        .map(|value| {
            u32::try_from(value).map_err(|_| CodecError::Range {
                column: "concurrency_limit",
                value,
            })
        })
        .transpose()?;
    Ok(RunRecord {
        run: runs::decode(row)?,
        concurrency_limit,
        idempotency_key: codec::get_opt_text(row, "idempotency_key")?,
        lease_until: codec::get_opt_time(row, "lease_until")?,
        cancel_requested: codec::get(row, "cancel_requested")?,
        lock_released: codec::get(row, "lock_released")?,
        steps: Vec::new(),
        logs: Vec::new(),
    })
}

/// Records the runs not here yet, with their step runs and log lines (the caller's
/// transaction makes it one change).
fn import(conn: &Connection, records: &[RunRecord]) -> Result<CopyCounts, StoreError> {
    let mut counts = CopyCounts::default();
    for record in records {
        let id = codec::run_id(&record.run.id);
        if one(conn, "SELECT 1 FROM runs WHERE id = ?", [&id], |_| Ok(()))?.is_some() {
            continue;
        }
        runs::insert_with(
            conn,
            &record.run,
            record.concurrency_limit,
            record.idempotency_key.as_deref(),
        )?;
        if record.lease_until.is_some() || record.cancel_requested || record.lock_released {
            execute(
                conn,
                "UPDATE runs SET lease_until = ?, cancel_requested = ?, lock_released = ? \
                 WHERE id = ?",
                params![
                    codec::opt_time(record.lease_until),
                    record.cancel_requested,
                    record.lock_released,
                    id
                ],
            )?;
        }
        for step in &record.steps {
            steps::insert_unchecked(conn, step)?;
        }
        logs::append(conn, &record.logs)?;
        counts.runs += 1;
        counts.step_runs += record.steps.len() as u64;
        counts.log_lines += record.logs.len() as u64;
    }
    Ok(counts)
}

#[async_trait]
impl CopyStore for SqliteStore {
    async fn run_ids(&self, after: Option<RunId>, limit: u32) -> Result<Vec<RunId>, StoreError> {
        self.read(move |c| run_ids(c, after, limit)).await
    }

    async fn export_runs(
        &self,
        after: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.read(move |c| export(c, after, limit)).await
    }

    async fn import_runs(&self, runs: &[RunRecord]) -> Result<CopyCounts, StoreError> {
        if runs.is_empty() {
            return Ok(CopyCounts::default());
        }
        let queued = runs.iter().any(|r| r.run.status == RunStatus::Queued);
        let runs = runs.to_vec();
        let counts = self.write(move |c| import(c, &runs)).await?;
        if queued && counts.runs > 0 {
            self.wake();
        }
        Ok(counts)
    }

    async fn export_records(&self) -> Result<StoreRecords, StoreError> {
        self.read(copy_records::export).await
    }

    async fn import_records(&self, records: &StoreRecords) -> Result<CopyCounts, StoreError> {
        let records = records.clone();
        let counts = self
            .write(move |c| copy_records::import(c, &records))
            .await?;
        if counts.users + counts.tokens > 0 {
            self.auth_seen.forget();
        }
        Ok(counts)
    }
}
