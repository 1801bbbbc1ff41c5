//! The queue of accepted runs: claims with a lease, renewals, expired leases, re-queueing.
//! Every call runs on the one write connection, so two claims never see the same queued run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use octoflow_core::store::{Run, RunId, RunStatus, StoreError};
use sqlx::SqliteConnection;

use crate::codec;
use crate::error::from_sqlx;
use crate::runs::{decode, run_columns};

fn lease_end(lease: Duration) -> String {
    codec::time(codec::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
}

/// Leases up to `limit` queued runs, oldest first, to `node`; they become `running`.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    node: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Run>, StoreError> {
    let now = codec::time(codec::now());
    let mut runs: Vec<Run> = sqlx::query(concat!(
        "UPDATE runs SET status = ?, node = ?, lease_until = ?, started_at = COALESCE(started_at, ?) ",
        "WHERE id IN (SELECT id FROM runs WHERE status = ? ORDER BY created_at, id LIMIT ?) ",
        "RETURNING ",
        run_columns!()
    ))
    .bind(RunStatus::Running.as_str())
    .bind(node.to_owned())
    .bind(lease_end(lease))
    .bind(now)
    .bind(RunStatus::Queued.as_str())
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(decode)
    .collect::<Result<_, _>>()?;
    runs.sort_by_key(|r| (r.created_at, r.id));
    Ok(runs)
}

/// Extends a lease that `node` holds on a running run.
pub(crate) async fn renew(
    conn: &mut SqliteConnection,
    id: &RunId,
    node: &str,
    lease: Duration,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE runs SET lease_until = ? WHERE id = ? AND node = ? AND status = ?")
            .bind(lease_end(lease))
            .bind(codec::run_id(id))
            .bind(node.to_owned())
            .bind(RunStatus::Running.as_str())
            .execute(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Running runs whose lease ended before `now`.
pub(crate) async fn expired(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
) -> Result<Vec<Run>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE status = ? AND lease_until IS NOT NULL AND lease_until < ? ORDER BY created_at, id"
    ))
    .bind(RunStatus::Running.as_str())
    .bind(codec::time(now))
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(decode)
    .collect()
}

/// Puts a running run back in the queue.
pub(crate) async fn requeue(conn: &mut SqliteConnection, id: &RunId) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET status = ?, node = NULL, lease_until = NULL, started_at = NULL WHERE id = ? AND status = ?",
    )
    .bind(RunStatus::Queued.as_str())
    .bind(codec::run_id(id))
    .bind(RunStatus::Running.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(done.rows_affected() == 1)
}
