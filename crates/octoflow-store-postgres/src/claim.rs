//! Claims: leasing the oldest queued runs to a node, under concurrency limits, with many
//! nodes claiming at once.
//!
//! A claim is one transaction of two statements:
//!
//! 1. **Keys.** Among the keys of queued runs with a limit (listed by skipping through their
//!    partial index, one seek per key), the ones whose oldest queued run looks startable,
//!    oldest first, at most `limit` of them; of those, the ones whose advisory lock this
//!    claim gets (`pg_try_advisory_xact_lock`): a key another claim is busy with is skipped,
//!    as `SKIP LOCKED` skips a row.
//! 2. **Runs.** A new statement, so its snapshot sees every run the key's previous claimer
//!    committed before releasing the lock: per locked key, its queued runs in order, the one
//!    at position `pos` startable while `pos` plus the key's running holders is within its
//!    limit, the walk stopping at the first that is not (a key's runs start in order, a batch
//!    never overshoots a limit); with them, the oldest runs without a limit, taken with
//!    `FOR UPDATE SKIP LOCKED` so concurrent claims share them out; the oldest `limit` of
//!    both become `running` under a new generation, on `node`, leased.
//!
//! The rule is the `SQLite` store's (`claimable!` there); only the way concurrent claims are
//! kept apart differs.

use std::time::Duration;

use octoflow_core::store::{Run, StoreError};
use sqlx::{PgPool, Row};

use crate::codec;
use crate::error::from_sqlx;
use crate::names::Names;
use crate::runs::{decode_all, run_columns};

/// Statement 1: the keys this claim takes (`$1`: at most this many; `$2`: the lock prefix).
const KEYS: &str = "\
WITH RECURSIVE keys (key) AS ( \
    SELECT min(concurrency_key) FROM runs \
    WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
  UNION ALL \
    SELECT (SELECT min(concurrency_key) FROM runs \
            WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
              AND concurrency_key > keys.key) \
    FROM keys WHERE keys.key IS NOT NULL), \
candidates AS ( \
    SELECT keys.key FROM keys \
    CROSS JOIN LATERAL (SELECT created_at, id, concurrency_limit FROM runs \
        WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
          AND concurrency_key = keys.key \
        ORDER BY created_at, id LIMIT 1) AS oldest \
    WHERE keys.key IS NOT NULL \
      AND (SELECT count(*) FROM runs WHERE concurrency_key = keys.key \
             AND status = 'running' AND NOT lock_released) < oldest.concurrency_limit \
    ORDER BY oldest.created_at, oldest.id \
    LIMIT $1) \
SELECT key FROM candidates \
WHERE pg_try_advisory_xact_lock(hashtextextended($2 || key, 0))";

/// Statement 2: the runs claimed (`$1`: at most this many; `$2`: the locked keys; `$3`…`$5`:
/// node, lease end, now).
const RUNS: &str = concat!(
    "WITH held AS ( \
        SELECT concurrency_key AS key, count(*) AS n FROM runs \
        WHERE status = 'running' AND concurrency_key = ANY($2) AND NOT lock_released \
        GROUP BY concurrency_key), \
    queued AS ( \
        SELECT locked.key, q.id, q.created_at, q.concurrency_limit AS lim, \
            row_number() OVER (PARTITION BY locked.key ORDER BY q.created_at, q.id) AS pos, \
            COALESCE(held.n, 0) AS taken \
        FROM unnest($2::text[]) AS locked (key) \
        CROSS JOIN LATERAL (SELECT id, created_at, concurrency_limit FROM runs \
            WHERE status = 'queued' AND concurrency_limit IS NOT NULL \
              AND concurrency_key = locked.key \
            ORDER BY created_at, id LIMIT $1) AS q \
        LEFT JOIN held ON held.key = locked.key), \
    walked AS ( \
        SELECT id, created_at, pos + taken <= lim AS fits, \
            COALESCE(bool_and(pos + taken < lim) OVER (PARTITION BY key \
                ORDER BY created_at, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), \
                true) AS room_before \
        FROM queued), \
    free AS ( \
        SELECT id, created_at FROM runs \
        WHERE status = 'queued' AND concurrency_limit IS NULL \
        ORDER BY created_at, id LIMIT $1 \
        FOR UPDATE SKIP LOCKED), \
    picked (pick_id) AS ( \
        SELECT id FROM ( \
            SELECT id, created_at FROM free \
            UNION ALL \
            SELECT id, created_at FROM walked WHERE fits AND room_before) AS startable \
        ORDER BY created_at, id LIMIT $1) \
    UPDATE runs SET status = 'running', node = $3, lease_until = $4, lock_released = false, \
        claim = claim + 1, started_at = COALESCE(started_at, $5) \
    FROM picked WHERE runs.id = picked.pick_id AND runs.status = 'queued' \
    RETURNING ",
    run_columns!()
);

/// Leases up to `limit` queued runs, oldest first, to `node`; they become `running`.
pub(crate) async fn claim(
    pool: &PgPool,
    names: &Names,
    node: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Run>, StoreError> {
    let limit = i64::from(limit);
    let mut tx = pool.begin().await.map_err(from_sqlx)?;
    let keys = sqlx::query(KEYS)
        .bind(limit)
        .bind(names.claim_lock_prefix())
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?
        .iter()
        .map(|row| row.try_get::<String, _>("key"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(from_sqlx)?;
    let rows = sqlx::query(RUNS)
        .bind(limit)
        .bind(keys)
        .bind(node)
        .bind(codec::lease_end(lease))
        .bind(codec::now())
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
    tx.commit().await.map_err(from_sqlx)?;
    let mut runs = decode_all(&rows)?;
    runs.sort_by_key(|r| (r.created_at, r.id));
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use octoflow_core::store::QueueStore;
    use sqlx::AssertSqlSafe;

    use super::*;
    use crate::PostgresStore;
    use crate::scratch::{drop_schema, store as scratch};

    const LEASE: Duration = Duration::from_secs(30);

    /// Queues `n` runs in one statement: every other one with limit 1 under key `k` (all but
    /// one blocked once one runs) or, with `distinct`, under a key of its own; the rest
    /// without a limit. Then refreshes the planner's statistics.
    async fn queue_many(store: &PostgresStore, n: i64, distinct: bool) {
        sqlx::query(
            "INSERT INTO runs (id, flow, flow_version, status, params, trigger, created_at, \
               data, concurrency_key, concurrency_limit) \
             SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bulk', 'v', \
               'queued', '{}', '{\"kind\":\"manual\"}', \
               timestamptz '2026-01-01' + i * interval '1 microsecond', '{}', \
               CASE WHEN i % 2 = 1 THEN NULL WHEN $2 THEN 'k' || i ELSE 'k' END, \
               CASE WHEN i % 2 = 0 THEN 1 END \
             FROM generate_series(0, $1 - 1) AS i",
        )
        .bind(n)
        .bind(distinct)
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::raw_sql("ANALYZE runs")
            .execute(&store.pool)
            .await
            .unwrap();
    }

    /// The plans of the two statements of a claim of 10 runs, one line per node.
    async fn plans(store: &PostgresStore) -> (String, String) {
        let keys = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!("EXPLAIN {KEYS}")))
            .bind(10_i64)
            .bind(store.names.claim_lock_prefix())
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let runs = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!("EXPLAIN {RUNS}")))
            .bind(10_i64)
            .bind(vec!["k".to_owned()])
            .bind("node")
            .bind(codec::now())
            .bind(codec::now())
            .fetch_all(&store.pool)
            .await
            .unwrap();
        (keys.join("\n"), runs.join("\n"))
    }

    /// A claim reads queued runs through their partial indexes, never by scanning the table,
    /// so its cost does not grow with the queue.
    #[tokio::test]
    async fn claim_reads_the_queue_through_its_indexes() {
        let Some(store) = scratch().await else {
            return;
        };
        queue_many(&store, 20_000, false).await;
        let (keys, runs) = plans(&store).await;
        for (name, plan) in [("keys", &keys), ("runs", &runs)] {
            assert!(plan.contains("runs_queued_limited"), "{name}:\n{plan}");
            assert!(!plan.contains("Seq Scan on runs"), "{name}:\n{plan}");
        }
        assert!(runs.contains("runs_queued_free"), "{runs}");
        drop_schema(store).await;
    }

    /// With 20,000 queued runs, half of them behind one busy key, claims take only runs that
    /// may start.
    #[tokio::test]
    async fn claims_from_a_deep_queue_respect_a_busy_key() {
        let Some(store) = scratch().await else {
            return;
        };
        queue_many(&store, 20_000, false).await;
        let first = store.claim("n", 10, LEASE).await.unwrap();
        assert_eq!(first.len(), 10);
        assert_eq!(
            first.iter().filter(|r| r.concurrency_key.is_some()).count(),
            1,
            "one run of the busy key"
        );
        for _ in 0..20 {
            let claimed = store.claim("n", 10, LEASE).await.unwrap();
            assert_eq!(claimed.len(), 10);
            assert!(claimed.iter().all(|r| r.concurrency_key.is_none()));
        }
        drop_schema(store).await;
    }

    /// With 10,000 queued runs each under a key of its own, a claim still takes the oldest.
    #[tokio::test]
    async fn claim_with_many_keys() {
        let Some(store) = scratch().await else {
            return;
        };
        queue_many(&store, 20_000, true).await;
        let claimed = store.claim("n", 10, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 10);
        assert_eq!(
            claimed
                .iter()
                .filter(|r| r.concurrency_key.is_some())
                .count(),
            5
        );
        drop_schema(store).await;
    }
}
