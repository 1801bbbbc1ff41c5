//! The queue of accepted runs: claims with a lease under concurrency limits, renewals,
//! expired leases, re-queueing and the queue's depth. Every write runs on the one write
//! connection, so two claims never see the same queued run.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octoflow_core::store::{
    Admission, Admitted, LeaseState, QueueStore, Run, RunId, RunStatus, StoreError,
};
use sqlx::{SqliteConnection, SqlitePool};

use crate::error::from_sqlx;
use crate::runs::{decode, run_columns};
use crate::{SqliteStore, admission, codec};

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
            ORDER BY created_at, id LIMIT ?1), \
        free AS ( \
            SELECT id, created_at FROM runs INDEXED BY runs_queued_free \
            WHERE status = 'queued' AND concurrency_limit IS NULL \
            ORDER BY created_at, id LIMIT ?1) \
        SELECT id FROM (SELECT id, created_at FROM free UNION ALL SELECT id, created_at FROM limited) \
        ORDER BY created_at, id LIMIT ?1"
    };
}

/// Leases up to `limit` queued runs, oldest first, to `node`; they become `running`. A run
/// whose key already has its limit of holders stays queued.
async fn claim(
    conn: &mut SqliteConnection,
    node: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Run>, StoreError> {
    let now = codec::time(codec::now());
    let mut runs: Vec<Run> = sqlx::query(concat!(
        "UPDATE runs SET status = ?2, node = ?3, lease_until = ?4, lock_released = 0, ",
        "started_at = COALESCE(started_at, ?5) WHERE id IN (",
        claimable!(),
        ") RETURNING ",
        run_columns!()
    ))
    .bind(i64::from(limit))
    .bind(RunStatus::Running.as_str())
    .bind(node.to_owned())
    .bind(lease_end(lease))
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(from_sqlx)?
    .iter()
    .map(decode)
    .collect::<Result<_, _>>()?;
    runs.sort_by_key(|r| (r.created_at, r.id));
    Ok(runs)
}

/// Extends a lease that `node` holds on a running run, and reads its cancel request.
async fn renew(
    conn: &mut SqliteConnection,
    id: &RunId,
    node: &str,
    lease: Duration,
) -> Result<LeaseState, StoreError> {
    let cancel: Option<i64> = sqlx::query_scalar(
        "UPDATE runs SET lease_until = ? WHERE id = ? AND node = ? AND status = ? \
         RETURNING cancel_requested",
    )
    .bind(lease_end(lease))
    .bind(codec::run_id(id))
    .bind(node.to_owned())
    .bind(RunStatus::Running.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(match cancel {
        None => LeaseState::Lost,
        Some(0) => LeaseState::Held,
        Some(_) => LeaseState::CancelRequested,
    })
}

/// Running runs whose lease ended before `now`.
async fn expired(conn: &mut SqliteConnection, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
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
async fn requeue(conn: &mut SqliteConnection, id: &RunId) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE runs SET status = ?, node = NULL, lease_until = NULL, started_at = NULL, \
         lock_released = 0 WHERE id = ? AND status = ?",
    )
    .bind(RunStatus::Queued.as_str())
    .bind(codec::run_id(id))
    .bind(RunStatus::Running.as_str())
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// How many runs are queued.
async fn depth(pool: &SqlitePool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE status = ?")
        .bind(RunStatus::Queued.as_str())
        .fetch_one(pool)
        .await
        .map_err(from_sqlx)?;
    Ok(u64::try_from(n).unwrap_or_default())
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn admit(&self, run: &Run, admission: &Admission) -> Result<Admitted, StoreError> {
        let (run, admission) = (run.clone(), admission.clone());
        let admitted = self
            .writer
            .run(move |c| Box::pin(async move { admission::admit(c, &run, &admission).await }))
            .await?;
        if matches!(admitted, Admitted::Created(_) | Admitted::Replaced { .. }) {
            self.wake();
        }
        Ok(admitted)
    }

    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError> {
        let node = node.to_owned();
        self.writer
            .run(move |c| Box::pin(async move { claim(c, &node, limit, lease).await }))
            .await
    }

    async fn renew(
        &self,
        id: &RunId,
        node: &str,
        lease: Duration,
    ) -> Result<LeaseState, StoreError> {
        let (id, node) = (*id, node.to_owned());
        self.writer
            .run(move |c| Box::pin(async move { renew(c, &id, &node, lease).await }))
            .await
    }

    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        self.writer
            .run(move |c| Box::pin(async move { expired(c, now).await }))
            .await
    }

    async fn requeue(&self, id: &RunId) -> Result<bool, StoreError> {
        let id = *id;
        let requeued = self
            .writer
            .run(move |c| Box::pin(async move { requeue(c, &id).await }))
            .await?;
        if requeued {
            self.wake();
        }
        Ok(requeued)
    }

    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let id = *id;
        self.writer
            .run(move |c| Box::pin(async move { admission::request_cancel(c, &id).await }))
            .await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        depth(&self.reader).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        // Elapsing is an answer too: the caller polls again.
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// Queues `n` runs in one statement: every other one with limit 1 under key `k` (all but
    /// one blocked once one runs) or, with `distinct`, under a key of its own; the rest
    /// without a limit.
    async fn queue_many(store: &SqliteStore, n: i64, distinct: bool) {
        store
            .writer
            .run(move |c| {
                Box::pin(async move {
                    sqlx::query(
                        "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?) \
                         INSERT INTO runs (id, flow, flow_version, status, params, trigger, created_at, data, \
                             concurrency_key, concurrency_limit) \
                         SELECT printf('00000000-0000-7000-8000-%012d', i), 'bulk', 'v', 'queued', '{}', \
                             '{\"kind\":\"manual\"}', printf('2026-01-01T00:00:00.%06dZ', i), '{}', \
                             CASE WHEN i % 2 = 1 THEN NULL WHEN ?2 THEN 'k' || i ELSE 'k' END, \
                             CASE i % 2 WHEN 0 THEN 1 END FROM seq",
                    )
                    .bind(n)
                    .bind(distinct)
                    .execute(c)
                    .await
                    .map_err(from_sqlx)?;
                    Ok(())
                })
            })
            .await
            .unwrap();
    }

    /// The claim reads queued runs through their partial indexes, never by scanning the table.
    #[tokio::test]
    async fn claim_uses_the_queue_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        let plan = sqlx::query(concat!("EXPLAIN QUERY PLAN ", claimable!()))
            .bind(10_i64)
            .fetch_all(&store.reader)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(plan.contains("runs_queued_free"), "{plan}");
        assert!(plan.contains("runs_queued_limited"), "{plan}");
        assert!(plan.lines().all(|line| line != "SCAN runs"), "{plan}");
    }

    /// With 20,000 queued runs, half of them behind one busy key, claims stay quick and
    /// take only runs that may start.
    #[tokio::test]
    async fn claim_stays_quick_with_a_deep_queue() {
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
        let started = std::time::Instant::now();
        for _ in 0..20 {
            let claimed = store.claim("n", 10, lease).await.unwrap();
            assert!(claimed.iter().all(|r| r.concurrency_key.is_none()));
        }
        let each = started.elapsed() / 20;
        assert!(each < Duration::from_millis(50), "a claim took {each:?}");
    }

    /// With 10,000 queued runs each under a key of its own, a claim still takes the oldest.
    #[tokio::test]
    async fn claim_with_many_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        queue_many(&store, 20_000, true).await;
        let started = std::time::Instant::now();
        let claimed = store.claim("n", 10, Duration::from_secs(30)).await.unwrap();
        let took = started.elapsed();
        println!("a claim took {took:?}");
        assert_eq!(claimed.len(), 10);
        assert_eq!(
            claimed
                .iter()
                .filter(|r| r.concurrency_key.is_some())
                .count(),
            5
        );
        assert!(took < Duration::from_secs(1), "a claim took {took:?}");
    }
}
