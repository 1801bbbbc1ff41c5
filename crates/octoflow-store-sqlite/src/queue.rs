//! The queue of accepted runs: claims with a lease under concurrency limits, renewals,
//! expired leases, re-queueing and the queue's depth. Every write runs on the one write
//! connection, so two claims never see the same queued run.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octoflow_core::store::{
    Admission, Admitted, Fence, LeaseState, QueueStore, Run, RunId, RunStatus, StoreError,
};
use rusqlite::{Connection, params};

use crate::query::{all, execute, one};
use crate::runs::{decode, run_columns};
use crate::{SqliteStore, admission, codec, runs};

fn lease_end(lease: Duration) -> String {
    codec::time(codec::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
}

/// The queued runs a claim may take, oldest first, at most `?1`:
///
/// - `free`: runs without a concurrency limit, read in order from their partial index, so a
///   claim stays cheap however many runs wait;
/// - `limited`: runs with one. `keys` lists the keys of such runs by skipping through their
///   partial index (one seek per key); `walk` then steps through each key's runs, oldest
///   first, one index seek per run: the run at position `pos` of its key may start when
///   `pos` plus the key's `held` count (running runs whose lock was not freed by hand) is
///   within its limit. The walk of a key stops at the first run that may not start or that
///   fills the key, so a key's runs start in order, one batch never overshoots a limit, and
///   a key whose limit is reached costs a few seeks however many runs wait behind it. The
///   cost grows with the number of distinct keys waiting, not with the number of runs.
///
/// The limits read `(SELECT ?1)`: `SQLite` recompiles a statement whose plan depends on a
/// bound value each time it is bound again, and a bare `LIMIT ?1` is such a value.
macro_rules! claimable {
    () => {
        "WITH RECURSIVE \
        held(key, n) AS ( \
            SELECT concurrency_key, COUNT(*) FROM runs \
            WHERE status = 'running' AND concurrency_key IS NOT NULL AND lock_released = 0 \
            GROUP BY concurrency_key), \
        keys(key) AS ( \
            SELECT MIN(concurrency_key) FROM runs INDEXED BY runs_queued_limited \
            WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
            UNION ALL \
            SELECT (SELECT MIN(concurrency_key) FROM runs INDEXED BY runs_queued_limited \
                WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
                AND concurrency_key > keys.key) \
            FROM keys WHERE keys.key IS NOT NULL), \
        walk(key, id, created_at, lim, pos, taken) AS ( \
            SELECT keys.key, r.id, r.created_at, r.concurrency_limit, 1, COALESCE(h.n, 0) \
            FROM keys \
            JOIN runs AS r ON r.id = (SELECT id FROM runs INDEXED BY runs_queued_limited \
                WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
                AND concurrency_key = keys.key ORDER BY created_at, id LIMIT 1) \
            LEFT JOIN held AS h ON h.key = keys.key \
            WHERE keys.key IS NOT NULL \
            UNION ALL \
            SELECT w.key, r.id, r.created_at, r.concurrency_limit, w.pos + 1, w.taken \
            FROM walk AS w \
            JOIN runs AS r ON r.id = (SELECT id FROM runs INDEXED BY runs_queued_limited \
                WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
                AND concurrency_key = w.key AND (created_at, id) > (w.created_at, w.id) \
                ORDER BY created_at, id LIMIT 1) \
            WHERE w.pos < ?1 AND w.pos + w.taken < w.lim), \
        limited AS ( \
            SELECT id, created_at FROM walk WHERE pos + taken <= lim \
            ORDER BY created_at, id LIMIT (SELECT ?1)), \
        free AS ( \
            SELECT id, created_at FROM runs INDEXED BY runs_queued_free \
            WHERE status = 'queued' AND concurrency_limit IS NULL \
            ORDER BY created_at, id LIMIT (SELECT ?1)) \
        SELECT id FROM (SELECT id, created_at FROM free UNION ALL SELECT id, created_at FROM limited) \
        ORDER BY created_at, id LIMIT (SELECT ?1)"
    };
}

/// Leases up to `limit` queued runs, oldest first, to `node`; they become `running`. A run
/// whose key already has its limit of holders stays queued.
fn claim(
    conn: &Connection,
    node: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Run>, StoreError> {
    let now = codec::time(codec::now());
    let mut runs = all(
        conn,
        concat!(
            "UPDATE runs SET status = ?2, node = ?3, lease_until = ?4, lock_released = 0, claim = claim + 1, ",
            "started_at = COALESCE(started_at, ?5) WHERE id IN (",
            claimable!(),
            ") RETURNING ",
            run_columns!()
        ),
        params![
            limit,
            RunStatus::Running.as_str(),
            node,
            lease_end(lease),
            now
        ],
        decode,
    )?;
    runs.sort_by_key(|r| (r.created_at, r.id));
    Ok(runs)
}

/// Extends the lease of the run `fence` holds, and reads its cancel request.
fn renew(conn: &Connection, fence: &Fence, lease: Duration) -> Result<LeaseState, StoreError> {
    let cancel: Option<i64> = one(
        conn,
        "UPDATE runs SET lease_until = ? WHERE id = ? AND claim = ? AND status = ? \
         RETURNING cancel_requested",
        params![
            lease_end(lease),
            codec::run_id(&fence.run),
            codec::generation(fence.generation),
            RunStatus::Running.as_str()
        ],
        |row| codec::get(row, "cancel_requested"),
    )?;
    Ok(match cancel {
        None => LeaseState::Lost,
        Some(0) => LeaseState::Held,
        Some(_) => LeaseState::CancelRequested,
    })
}

/// Running runs whose lease ended before `now`.
fn expired(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
    all(
        conn,
        concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE status = 'running' AND lease_until IS NOT NULL AND lease_until < ? ",
            "ORDER BY created_at, id"
        ),
        [codec::time(now)],
        decode,
    )
}

/// Puts the run `fence` holds back in the queue.
fn requeue(conn: &Connection, fence: &Fence) -> Result<bool, StoreError> {
    let changed = execute(
        conn,
        "UPDATE runs SET status = ?, node = NULL, lease_until = NULL, started_at = NULL, \
         lock_released = 0 WHERE id = ? AND status = ? AND claim = ?",
        params![
            RunStatus::Queued.as_str(),
            codec::run_id(&fence.run),
            RunStatus::Running.as_str(),
            codec::generation(fence.generation)
        ],
    )?;
    Ok(changed == 1)
}

/// How many runs are queued.
fn depth(conn: &Connection) -> Result<u64, StoreError> {
    let n: Option<i64> = one(
        conn,
        "SELECT COUNT(*) AS n FROM runs WHERE status = 'queued'",
        [],
        |row| codec::get(row, "n"),
    )?;
    Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or_default())
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn admit(&self, run: &Run, admission: &Admission) -> Result<Admitted, StoreError> {
        let (run, admission) = (run.clone(), admission.clone());
        let admitted = self
            .write(move |c| admission::admit(c, &run, &admission))
            .await?;
        if matches!(admitted, Admitted::Created(_) | Admitted::Replaced { .. }) {
            self.wake();
        }
        Ok(admitted)
    }

    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError> {
        let node = node.to_owned();
        self.write(move |c| claim(c, &node, limit, lease)).await
    }

    async fn insert_owned(&self, run: &Run, lease: Duration) -> Result<Run, StoreError> {
        let run = run.clone();
        let until = lease_end(lease);
        self.write(move |c| runs::insert_owned(c, &run, &until))
            .await
    }

    async fn renew(&self, fence: &Fence, lease: Duration) -> Result<LeaseState, StoreError> {
        let fence = *fence;
        self.write(move |c| renew(c, &fence, lease)).await
    }

    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        self.write(move |c| expired(c, now)).await
    }

    async fn requeue(&self, fence: &Fence) -> Result<bool, StoreError> {
        let fence = *fence;
        let requeued = self.write(move |c| requeue(c, &fence)).await?;
        if requeued {
            self.wake();
        }
        Ok(requeued)
    }

    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let id = *id;
        self.write(move |c| admission::request_cancel(c, &id)).await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        self.read(depth).await
    }

    async fn wait_for_work(&self, timeout: Duration) -> Result<(), StoreError> {
        // Elapsing is an answer too: the caller polls again.
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues `n` runs in one statement: every other one with limit 1 under key `k` (all but
    /// one blocked once one runs) or, with `distinct`, under a key of its own; the rest
    /// without a limit.
    async fn queue_many(store: &SqliteStore, n: i64, distinct: bool) {
        store
            .write(move |c| {
                execute(
                    c,
                    "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?1) \
                     INSERT INTO runs (id, flow, flow_version, status, params, trigger, created_at, data, \
                         concurrency_key, concurrency_limit) \
                     SELECT printf('00000000-0000-7000-8000-%012d', i), 'bulk', 'v', 'queued', '{}', \
                         '{\"kind\":\"manual\"}', printf('2026-01-01T00:00:00.%06dZ', i), '{}', \
                         CASE WHEN i % 2 = 1 THEN NULL WHEN ?2 THEN 'k' || i ELSE 'k' END, \
                         CASE i % 2 WHEN 0 THEN 1 END FROM seq",
                    params![n, distinct],
                )
            })
            .await
            .unwrap();
    }

    /// The claim reads queued runs through their partial indexes, never by scanning the
    /// table, so its cost does not grow with the queue.
    #[tokio::test]
    async fn claim_uses_the_queue_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        let plan = store
            .read(|c| {
                all(
                    c,
                    concat!("EXPLAIN QUERY PLAN ", claimable!()),
                    [10_i64],
                    |row| codec::get_text(row, "detail"),
                )
            })
            .await
            .unwrap()
            .join("\n");
        assert!(plan.contains("runs_queued_free"), "{plan}");
        assert!(plan.contains("runs_queued_limited"), "{plan}");
        assert!(plan.lines().all(|line| line != "SCAN runs"), "{plan}");
    }

    /// A claim is compiled once per connection, not again each time it is bound.
    #[tokio::test]
    async fn claim_is_not_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        let recompiled = store
            .write(|c| {
                let mut stmt = c.prepare(claimable!()).map_err(crate::error::from_sqlite)?;
                for limit in [3_i64, 4, 4] {
                    let mut rows = stmt.query([limit]).map_err(crate::error::from_sqlite)?;
                    while rows.next().map_err(crate::error::from_sqlite)?.is_some() {}
                }
                Ok(stmt.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .await
            .unwrap();
        assert_eq!(recompiled, 0);
    }

    /// With 20,000 queued runs, half of them behind one busy key, claims take only runs
    /// that may start.
    #[tokio::test]
    async fn claims_from_a_deep_queue_respect_a_busy_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        queue_many(&store, 20_000, false).await;
        let lease = Duration::from_secs(30);
        let first = store.claim("n", 10, lease).await.unwrap();
        assert_eq!(first.len(), 10);
        assert_eq!(
            first.iter().filter(|r| r.concurrency_key.is_some()).count(),
            1,
            "one run of the busy key"
        );
        for _ in 0..20 {
            let claimed = store.claim("n", 10, lease).await.unwrap();
            assert_eq!(claimed.len(), 10);
            assert!(claimed.iter().all(|r| r.concurrency_key.is_none()));
        }
    }

    /// With 10,000 queued runs each under a key of its own, a claim still takes the oldest.
    #[tokio::test]
    async fn claim_with_many_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        queue_many(&store, 20_000, true).await;
        let claimed = store.claim("n", 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed.len(), 10);
        assert_eq!(
            claimed
                .iter()
                .filter(|r| r.concurrency_key.is_some())
                .count(),
            5
        );
    }
}
