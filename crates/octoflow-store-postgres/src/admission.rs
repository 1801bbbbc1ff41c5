//! Admission under concurrency rules and idempotency keys (SPEC §8), cancel requests, and
//! the concurrency keys running runs hold.
//!
//! The rule itself is [`Admission::decide`]; this module gives it what it reads, race-free
//! across connections and nodes. In the caller's transaction, an admission first takes the
//! advisory lock of its idempotency key, then the one of its concurrency key (always in
//! that order, so admissions never deadlock), and only then reads: each statement sees what
//! the admission before it committed, so two admissions of one key never both find room.

use async_trait::async_trait;
use octoflow_core::flow::ConcurrencyPolicy;
use octoflow_core::store::{
    Admission, Admitted, Decision, LockInfo, LockStore, Run, RunError, RunId, RunStatus, StoreError,
};
use sqlx::PgConnection;

use crate::error::from_sqlx;
use crate::names::Names;
use crate::runs::{NewRow, decode, insert, run_columns};
use crate::{PostgresStore, codec};

/// The error message of a run cancelled while queued.
const CANCELLED: &str = "cancelled";

/// Cancels the runs a statement selects: queued ones end `cancelled` with error `$3` at `$2`,
/// running ones get a cancel request. A run claimed meanwhile is re-read by the `UPDATE` and
/// gets the request.
macro_rules! cancel_set {
    () => {
        "UPDATE runs SET \
           status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
           finished_at = CASE WHEN status = 'queued' THEN $2 ELSE finished_at END, \
           error = CASE WHEN status = 'queued' THEN $3::json ELSE error END, \
           cancel_requested = cancel_requested OR status = 'running' "
    };
}

/// Takes the transaction-level advisory lock `key`, waiting for its holder to commit.
async fn lock(conn: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(conn)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Records `run` as `queued` unless its rule or idempotency key says otherwise, in the
/// caller's transaction (a schedule's fire commits or rolls back with it). A recorded run
/// notifies `names.channel` when the transaction commits.
pub(crate) async fn admit(
    conn: &mut PgConnection,
    names: &Names,
    run: &Run,
    admission: &Admission,
) -> Result<Admitted, StoreError> {
    let idempotency_key = admission.idempotency_key.as_deref();
    if let Some(key) = idempotency_key {
        lock(conn, &names.idempotency_lock(&run.flow, key)).await?;
        let earlier = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE flow = $1 AND idempotency_key = $2"
        ))
        .bind(&run.flow)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(from_sqlx)?;
        if let Some(row) = earlier {
            return Ok(Admitted::Existing(decode(&row)?));
        }
    }
    let mut run = run.clone();
    run.status = RunStatus::Queued;
    let holders = match &run.concurrency_key {
        Some(key) if admission.needs_holders(&run) => {
            lock(conn, &names.admission_lock(key)).await?;
            holders(conn, key).await?
        }
        Some(key) if admission.policy == ConcurrencyPolicy::Replace => {
            lock(conn, &names.admission_lock(key)).await?;
            None
        }
        _ => None,
    };
    let decision = admission.decide(&run, holders.as_ref().map(|(run, n)| (run, *n)));
    let mut row = NewRow {
        idempotency_key,
        notify: Some(&names.channel),
        ..NewRow::default()
    };
    Ok(match decision {
        Decision::Create { limit } => {
            row.limit = limit;
            insert(conn, &run, &row).await?;
            Admitted::Created(run)
        }
        Decision::Refuse(answer) => *answer,
        Decision::Replace { limit } => {
            let key = run.concurrency_key.clone().unwrap_or_default();
            let cancelled = replace_holders(conn, &key, &run.id).await?;
            row.limit = Some(limit);
            insert(conn, &run, &row).await?;
            Admitted::Replaced { run, cancelled }
        }
    })
}

/// The oldest queued-or-running holder of `key` (lock not freed by hand), with the number
/// of holders.
async fn holders(conn: &mut PgConnection, key: &str) -> Result<Option<(Run, u64)>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        ", count(*) OVER () AS holders FROM runs ",
        "WHERE concurrency_key = $1 AND status IN ('queued', 'running') AND NOT lock_released ",
        "ORDER BY created_at, id LIMIT 1"
    ))
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(from_sqlx)?;
    row.map(|row| Ok((decode(&row)?, codec::get_unsigned(&row, "holders")?)))
        .transpose()
}

/// Cancels every queued-or-running holder of `key` in favour of run `by`: queued ones end
/// `cancelled` now, running ones get a cancel request. Returns their ids, oldest first.
async fn replace_holders(
    conn: &mut PgConnection,
    key: &str,
    by: &RunId,
) -> Result<Vec<RunId>, StoreError> {
    let error = RunError {
        step: None,
        message: format!("replaced by run {by}"),
    };
    let rows = sqlx::query(concat!(
        cancel_set!(),
        "WHERE concurrency_key = $1 AND status IN ('queued', 'running') AND NOT lock_released ",
        "RETURNING id, created_at"
    ))
    .bind(key)
    .bind(codec::now())
    .bind(codec::json("error", &error)?)
    .fetch_all(conn)
    .await
    .map_err(from_sqlx)?;
    let mut holders = rows
        .iter()
        .map(|row| {
            Ok((
                codec::get::<chrono::DateTime<chrono::Utc>>(row, "created_at")?,
                RunId(codec::get(row, "id")?),
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    holders.sort();
    Ok(holders.into_iter().map(|(_, id)| id).collect())
}

/// Cancels a queued run now or asks a running one to end; returns the run afterwards.
pub(crate) async fn request_cancel(
    conn: &mut PgConnection,
    id: &RunId,
) -> Result<Option<Run>, StoreError> {
    let error = RunError {
        step: None,
        message: CANCELLED.to_owned(),
    };
    let changed = sqlx::query(concat!(
        cancel_set!(),
        "WHERE id = $1 AND status IN ('queued', 'running') RETURNING ",
        run_columns!()
    ))
    .bind(id.0)
    .bind(codec::now())
    .bind(codec::json("error", &error)?)
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    match changed {
        Some(row) => decode(&row).map(Some),
        None => crate::runs::get(conn, id).await,
    }
}

#[async_trait]
impl LockStore for PostgresStore {
    async fn locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT concurrency_key, id, flow, status, started_at, node FROM runs \
             WHERE status = 'running' AND concurrency_key IS NOT NULL AND NOT lock_released \
             ORDER BY started_at, created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter()
            .map(|row| {
                Ok(LockInfo {
                    key: codec::get(row, "concurrency_key")?,
                    run_id: RunId(codec::get(row, "id")?),
                    flow: codec::get(row, "flow")?,
                    status: codec::get_word(row, "status")?,
                    since: codec::get(row, "started_at")?,
                    node: codec::get(row, "node")?,
                })
            })
            .collect()
    }

    async fn release_lock(&self, key: &str) -> Result<u64, StoreError> {
        self.release(Some(key)).await
    }

    async fn release_all_locks(&self) -> Result<u64, StoreError> {
        self.release(None).await
    }
}

impl PostgresStore {
    /// Frees the holds on `key`, or on every key when `None`; returns how many were freed,
    /// and notifies when some were (queued runs of the keys may start).
    async fn release(&self, key: Option<&str>) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "WITH released AS ( \
               UPDATE runs SET lock_released = true \
               WHERE status = 'running' AND concurrency_key IS NOT NULL AND NOT lock_released \
                 AND ($1::text IS NULL OR concurrency_key = $1) \
               RETURNING 1), \
             counted AS (SELECT count(*) AS released FROM released) \
             SELECT counted.released FROM counted LEFT JOIN LATERAL \
               (SELECT pg_notify($2, '') WHERE counted.released > 0) AS woken ON true",
        )
        .bind(key)
        .bind(&self.names.channel)
        .fetch_one(&self.pool)
        .await
        .map_err(from_sqlx)?;
        codec::get_unsigned(&row, "released")
    }
}
