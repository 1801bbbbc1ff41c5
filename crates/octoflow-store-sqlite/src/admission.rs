//! Admission under concurrency rules and idempotency keys (SPEC §8), cancel requests, and
//! the concurrency keys running runs hold.
//!
//! Admission reads the key's holders and records the new run in one `BEGIN IMMEDIATE`
//! transaction on the write connection, so concurrent admissions with one key see each
//! other's runs.

use async_trait::async_trait;
use octoflow_core::flow::ConcurrencyPolicy;
use octoflow_core::store::{
    Admission, Admitted, LockInfo, LockStore, Run, RunError, RunId, RunStatus, StoreError,
};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};

use crate::error::from_sqlx;
use crate::runs::{decode, insert_with, run_columns};
use crate::{SqliteStore, codec};

/// The error message of a run cancelled while queued.
const CANCELLED: &str = "cancelled";

/// Records `run` as `queued` unless its rule or idempotency key says otherwise, in a
/// transaction of its own.
pub(crate) async fn admit(
    conn: &mut SqliteConnection,
    run: &Run,
    admission: &Admission,
) -> Result<Admitted, StoreError> {
    if run.concurrency_key.is_none() && admission.idempotency_key.is_none() {
        // Nothing to check: one INSERT is atomic on its own (one round trip, not three).
        let mut queued = run.clone();
        queued.status = RunStatus::Queued;
        insert_with(conn, &queued, None, None).await?;
        return Ok(Admitted::Created(queued));
    }
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    let admitted = admit_in(&mut tx, run, admission).await?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(admitted)
}

/// Admits `run` inside a write transaction that the caller opened (`BEGIN IMMEDIATE`) and
/// commits: reads the key's holders and records the run as the rule says. Other writes of
/// the same transaction (a schedule's fire) commit or roll back with it.
pub(crate) async fn admit_in(
    tx: &mut SqliteConnection,
    run: &Run,
    admission: &Admission,
) -> Result<Admitted, StoreError> {
    if let Some(key) = &admission.idempotency_key {
        let earlier = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE flow = ? AND idempotency_key = ?"
        ))
        .bind(&run.flow)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if let Some(row) = earlier {
            return Ok(Admitted::Existing(decode(&row)?));
        }
    }
    let mut run = run.clone();
    run.status = RunStatus::Queued;
    let idempotency_key = admission.idempotency_key.as_deref();
    let limit = admission.limit.max(1);
    let admitted = match (run.concurrency_key.clone(), admission.policy) {
        (None, _) | (Some(_), ConcurrencyPolicy::Allow) => {
            insert_with(tx, &run, None, idempotency_key).await?;
            Admitted::Created(run)
        }
        (Some(_), ConcurrencyPolicy::Queue) => {
            insert_with(tx, &run, Some(limit), idempotency_key).await?;
            Admitted::Created(run)
        }
        (Some(key), policy @ (ConcurrencyPolicy::Skip | ConcurrencyPolicy::Dedupe)) => {
            let holders = holders(tx, &key).await?;
            match holders.into_iter().next() {
                Some((oldest, count)) if count >= u64::from(limit) => {
                    if policy == ConcurrencyPolicy::Skip {
                        Admitted::Skipped(oldest)
                    } else {
                        Admitted::Deduplicated(oldest)
                    }
                }
                _ => {
                    insert_with(tx, &run, Some(limit), idempotency_key).await?;
                    Admitted::Created(run)
                }
            }
        }
        (Some(key), ConcurrencyPolicy::Replace) => {
            let cancelled = replace_holders(tx, &key, &run.id).await?;
            insert_with(tx, &run, Some(limit), idempotency_key).await?;
            Admitted::Replaced { run, cancelled }
        }
    };
    Ok(admitted)
}

/// The oldest queued-or-running holder of `key` (lock not freed by hand), with the number
/// of holders.
async fn holders(conn: &mut SqliteConnection, key: &str) -> Result<Option<(Run, u64)>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        ", COUNT(*) OVER () AS holders FROM runs ",
        "WHERE concurrency_key = ? AND status IN ('queued', 'running') AND lock_released = 0 ",
        "ORDER BY created_at, id LIMIT 1"
    ))
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let count: i64 = row.try_get("holders").map_err(from_sqlx)?;
    Ok(Some((
        decode(&row)?,
        u64::try_from(count).unwrap_or_default(),
    )))
}

/// Cancels every queued-or-running holder of `key` in favour of run `by`: queued ones end
/// `cancelled` now, running ones get a cancel request. Returns their ids, oldest first.
async fn replace_holders(
    conn: &mut SqliteConnection,
    key: &str,
    by: &RunId,
) -> Result<Vec<RunId>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, status FROM runs \
         WHERE concurrency_key = ? AND status IN ('queued', 'running') AND lock_released = 0 \
         ORDER BY created_at, id",
    )
    .bind(key)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let error = RunError {
        step: None,
        message: format!("replaced by run {by}"),
    };
    let error = codec::json("error", &error)?;
    let now = codec::time(codec::now());
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: RunId = codec::get_word(row, "id")?;
        let status: RunStatus = codec::get_word(row, "status")?;
        if status == RunStatus::Queued {
            cancel_queued(conn, &id, &now, &error).await?;
        } else {
            request_running(conn, &id).await?;
        }
        ids.push(id);
    }
    Ok(ids)
}

async fn cancel_queued(
    conn: &mut SqliteConnection,
    id: &RunId,
    now: &str,
    error: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = ?",
    )
    .bind(RunStatus::Cancelled.as_str())
    .bind(now.to_owned())
    .bind(error.to_owned())
    .bind(codec::run_id(id))
    .bind(RunStatus::Queued.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

async fn request_running(conn: &mut SqliteConnection, id: &RunId) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = ? AND status = ?")
        .bind(codec::run_id(id))
        .bind(RunStatus::Running.as_str())
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a queued run now or asks a running one to end; returns the run afterwards.
pub(crate) async fn request_cancel(
    conn: &mut SqliteConnection,
    id: &RunId,
) -> Result<Option<Run>, StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    let error = RunError {
        step: None,
        message: CANCELLED.to_owned(),
    };
    let now = codec::time(codec::now());
    if !cancel_queued(&mut tx, id, &now, &codec::json("error", &error)?).await? {
        request_running(&mut tx, id).await?;
    }
    let run = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE id = ?"
    ))
    .bind(codec::run_id(id))
    .fetch_optional(&mut *tx)
    .await
    .map_err(from_sqlx)?
    .as_ref()
    .map(decode)
    .transpose()?;
    tx.commit().await.map_err(from_sqlx)?;
    Ok(run)
}

/// Running runs holding a key whose lock was not freed, oldest first.
async fn locks(pool: &SqlitePool) -> Result<Vec<LockInfo>, StoreError> {
    let rows = sqlx::query(
        "SELECT concurrency_key, id, flow, status, started_at, node FROM runs \
         WHERE status = ? AND concurrency_key IS NOT NULL AND lock_released = 0 \
         ORDER BY started_at, created_at, id",
    )
    .bind(RunStatus::Running.as_str())
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    rows.iter()
        .map(|row| {
            Ok(LockInfo {
                key: codec::get_text(row, "concurrency_key")?,
                run_id: codec::get_word(row, "id")?,
                flow: codec::get_text(row, "flow")?,
                status: codec::get_word(row, "status")?,
                since: codec::get_opt_time(row, "started_at")?,
                node: codec::get_opt_text(row, "node")?,
            })
        })
        .collect()
}

/// Frees the holds on `key`, or on every key when `None`; returns how many were freed.
async fn release(conn: &mut SqliteConnection, key: Option<&str>) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET lock_released = 1 \
         WHERE status = ?1 AND concurrency_key IS NOT NULL AND lock_released = 0 \
         AND (?2 IS NULL OR concurrency_key = ?2)",
    )
    .bind(RunStatus::Running.as_str())
    .bind(key.map(str::to_owned))
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(done.rows_affected())
}

impl SqliteStore {
    async fn release(&self, key: Option<String>) -> Result<u64, StoreError> {
        let released = self
            .writer
            .run(move |c| Box::pin(async move { release(c, key.as_deref()).await }))
            .await?;
        if released > 0 {
            self.wake();
        }
        Ok(released)
    }
}

#[async_trait]
impl LockStore for SqliteStore {
    async fn locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        locks(&self.reader).await
    }

    async fn release_lock(&self, key: &str) -> Result<u64, StoreError> {
        self.release(Some(key.to_owned())).await
    }

    async fn release_all_locks(&self) -> Result<u64, StoreError> {
        self.release(None).await
    }
}
