//! Admission under concurrency rules and idempotency keys (SPEC §8), cancel requests, and
//! the concurrency keys running runs hold.
//!
//! Admission reads the key's holders and records the new run in one write op, which the
//! writer runs in its transaction: concurrent admissions with one key see each other's
//! runs.

use async_trait::async_trait;
use octoflow_core::store::{
    Admission, Admitted, Decision, LockInfo, LockStore, Run, RunError, RunId, RunStatus, StoreError,
};
use rusqlite::{Connection, params};

use crate::query::{all, execute, one};
use crate::runs::{decode, insert_with, run_columns};
use crate::{SqliteStore, codec};

/// The error message of a run cancelled while queued.
const CANCELLED: &str = "cancelled";

// The queries of a key's holders: queued or running runs, as `runs_concurrency_key` keeps
// them (the status rule written as there, so that `SQLite` sees the index applies).

/// The oldest holder of a key, with the number of holders.
const HOLDERS: &str = concat!(
    "SELECT ",
    run_columns!(),
    ", COUNT(*) OVER () AS holders FROM runs ",
    "WHERE concurrency_key = ? AND (status = 'queued' OR status = 'running') ",
    "AND lock_released = 0 ORDER BY created_at, id LIMIT 1"
);
/// A key's holders, oldest first.
const HOLDER_IDS: &str = "SELECT id, status FROM runs \
    WHERE concurrency_key = ? AND (status = 'queued' OR status = 'running') \
    AND lock_released = 0 ORDER BY created_at, id";
/// Running runs holding a key.
const LOCKS: &str = "SELECT concurrency_key, id, flow, status, started_at, node FROM runs \
    WHERE status = 'running' AND concurrency_key IS NOT NULL AND lock_released = 0 \
    ORDER BY started_at, created_at, id";
/// Frees the holds on a key (`?1`), or on all when it is null.
const RELEASE: &str = "UPDATE runs SET lock_released = 1 \
    WHERE status = 'running' AND concurrency_key IS NOT NULL AND lock_released = 0 \
    AND (?1 IS NULL OR concurrency_key = ?1)";

/// Records `run` as `queued` unless its rule or idempotency key says otherwise: reads the
/// key's holders and records the run as the rule says. Other writes of the caller's
/// transaction (a schedule's fire) commit or roll back with it.
pub(crate) fn admit(
    conn: &Connection,
    run: &Run,
    admission: &Admission,
) -> Result<Admitted, StoreError> {
    if let Some(key) = &admission.idempotency_key {
        let earlier = one(
            conn,
            concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs WHERE flow = ? AND idempotency_key = ?"
            ),
            params![run.flow, key],
            decode,
        )?;
        if let Some(run) = earlier {
            return Ok(Admitted::Existing(run));
        }
    }
    let mut run = run.clone();
    run.status = RunStatus::Queued;
    let idempotency_key = admission.idempotency_key.as_deref();
    let holders = match &run.concurrency_key {
        Some(key) if admission.needs_holders(&run) => holders(conn, key)?,
        _ => None,
    };
    let decision = admission.decide(&run, holders.as_ref().map(|(run, n)| (run, *n)));
    Ok(match decision {
        Decision::Create { limit } => {
            insert_with(conn, &run, limit, idempotency_key)?;
            Admitted::Created(run)
        }
        Decision::Refuse(answer) => *answer,
        Decision::Replace { limit } => {
            let key = run.concurrency_key.clone().unwrap_or_default();
            let cancelled = replace_holders(conn, &key, &run.id)?;
            insert_with(conn, &run, Some(limit), idempotency_key)?;
            Admitted::Replaced { run, cancelled }
        }
    })
}

/// The oldest queued-or-running holder of `key` (lock not freed by hand), with the number
/// of holders.
fn holders(conn: &Connection, key: &str) -> Result<Option<(Run, u64)>, StoreError> {
    one(conn, HOLDERS, [key], |row| {
        let count: i64 = codec::get(row, "holders")?;
        Ok((decode(row)?, u64::try_from(count).unwrap_or_default()))
    })
}

/// Cancels every queued-or-running holder of `key` in favour of run `by`: queued ones end
/// `cancelled` now, running ones get a cancel request. Returns their ids, oldest first.
fn replace_holders(conn: &Connection, key: &str, by: &RunId) -> Result<Vec<RunId>, StoreError> {
    let holders: Vec<(RunId, RunStatus)> = all(conn, HOLDER_IDS, [key], |row| {
        Ok((codec::get_word(row, "id")?, codec::get_word(row, "status")?))
    })?;
    let error = RunError {
        step: None,
        message: format!("replaced by run {by}"),
    };
    let error = codec::json("error", &error)?;
    let now = codec::time(codec::now());
    for (id, status) in &holders {
        if *status == RunStatus::Queued {
            cancel_queued(conn, id, &now, &error)?;
        } else {
            request_running(conn, id)?;
        }
    }
    Ok(holders.into_iter().map(|(id, _)| id).collect())
}

fn cancel_queued(
    conn: &Connection,
    id: &RunId,
    now: &str,
    error: &str,
) -> Result<bool, StoreError> {
    let changed = execute(
        conn,
        "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = ?",
        params![
            RunStatus::Cancelled.as_str(),
            now,
            error,
            codec::run_id(id),
            RunStatus::Queued.as_str()
        ],
    )?;
    Ok(changed == 1)
}

fn request_running(conn: &Connection, id: &RunId) -> Result<bool, StoreError> {
    let changed = execute(
        conn,
        "UPDATE runs SET cancel_requested = 1 WHERE id = ? AND status = ?",
        params![codec::run_id(id), RunStatus::Running.as_str()],
    )?;
    Ok(changed == 1)
}

/// Cancels a queued run now or asks a running one to end; returns the run afterwards.
pub(crate) fn request_cancel(conn: &Connection, id: &RunId) -> Result<Option<Run>, StoreError> {
    let error = RunError {
        step: None,
        message: CANCELLED.to_owned(),
    };
    let now = codec::time(codec::now());
    if !cancel_queued(conn, id, &now, &codec::json("error", &error)?)? {
        request_running(conn, id)?;
    }
    one(
        conn,
        concat!("SELECT ", run_columns!(), " FROM runs WHERE id = ?"),
        [codec::run_id(id)],
        decode,
    )
}

/// Running runs holding a key whose lock was not freed, oldest first.
fn locks(conn: &Connection) -> Result<Vec<LockInfo>, StoreError> {
    all(conn, LOCKS, [], |row| {
        Ok(LockInfo {
            key: codec::get_text(row, "concurrency_key")?,
            run_id: codec::get_word(row, "id")?,
            flow: codec::get_text(row, "flow")?,
            status: codec::get_word(row, "status")?,
            since: codec::get_opt_time(row, "started_at")?,
            node: codec::get_opt_text(row, "node")?,
        })
    })
}

/// Frees the holds on `key`, or on every key when `None`; returns how many were freed.
fn release(conn: &Connection, key: Option<&str>) -> Result<u64, StoreError> {
    let changed = execute(conn, RELEASE, [key])?;
    Ok(u64::try_from(changed).unwrap_or(u64::MAX))
}

impl SqliteStore {
    async fn release(&self, key: Option<String>) -> Result<u64, StoreError> {
        let released = self.write(move |c| release(c, key.as_deref())).await?;
        if released > 0 {
            self.wake();
        }
        Ok(released)
    }
}

#[async_trait]
impl LockStore for SqliteStore {
    async fn locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        self.read(locks).await
    }

    async fn release_lock(&self, key: &str) -> Result<u64, StoreError> {
        self.release(Some(key.to_owned())).await
    }

    async fn release_all_locks(&self) -> Result<u64, StoreError> {
        self.release(None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queries of a key's holders read `runs_concurrency_key`, which keeps only queued
    /// and running runs; those of all running holders read an index too, not every run.
    #[tokio::test]
    async fn holders_are_read_from_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        for (sql, key, index) in [
            (HOLDERS, Some("k"), "USING INDEX runs_concurrency_key"),
            (HOLDER_IDS, Some("k"), "USING INDEX runs_concurrency_key"),
            (LOCKS, None, "USING INDEX"),
            (RELEASE, Some("k"), "USING INDEX"),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let plan = store
                .read(move |c| {
                    let bound: Vec<&dyn rusqlite::ToSql> = key.iter().map(|k| k as _).collect();
                    all(c, &explain, bound.as_slice(), |row| {
                        codec::get_text(row, "detail")
                    })
                })
                .await
                .unwrap()
                .join("\n");
            assert!(plan.contains(index), "{sql}:\n{plan}");
        }
    }
}
