//! The queue of accepted runs: admission, claims (see `claim`), owned runs, renewals, expired
//! leases, re-queueing, cancel requests, the queue's depth and waiting for work.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octoflow_core::store::{
    Admission, Admitted, Fence, LeaseState, QueueStore, Run, RunId, RunStatus, StoreError,
};

use crate::error::from_sqlx;
use crate::runs::{NewRow, decode_all, insert, run_columns};
use crate::{PostgresStore, admission, claim, codec};

#[async_trait]
impl QueueStore for PostgresStore {
    async fn admit(&self, run: &Run, admission: &Admission) -> Result<Admitted, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let admitted = admission::admit(&mut tx, &self.names, run, admission).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(admitted)
    }

    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError> {
        claim::claim(&self.pool, &self.names, node, limit, lease).await
    }

    async fn insert_owned(&self, run: &Run, lease: Duration) -> Result<Run, StoreError> {
        let mut run = run.clone();
        run.status = RunStatus::Running;
        run.generation = 1;
        run.started_at.get_or_insert_with(codec::now);
        let row = NewRow {
            lease_until: Some(codec::lease_end(lease)),
            ..NewRow::default()
        };
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        insert(&mut conn, &run, &row).await?;
        Ok(run)
    }

    async fn renew(&self, fence: &Fence, lease: Duration) -> Result<LeaseState, StoreError> {
        let row = sqlx::query(
            "UPDATE runs SET lease_until = $3 \
             WHERE id = $1 AND claim = $2 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(fence.run.0)
        .bind(codec::generation(fence.generation))
        .bind(codec::lease_end(lease))
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(match row {
            None => LeaseState::Lost,
            Some(row) if codec::get::<bool>(&row, "cancel_requested")? => {
                LeaseState::CancelRequested
            }
            Some(_) => LeaseState::Held,
        })
    }

    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE status = 'running' AND lease_until < $1 ORDER BY created_at, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        decode_all(&rows)
    }

    /// Hands the run back and notifies, in one statement.
    async fn requeue(&self, fence: &Fence) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "WITH requeued AS ( \
               UPDATE runs SET status = 'queued', node = NULL, lease_until = NULL, \
                 started_at = NULL, lock_released = false \
               WHERE id = $1 AND status = 'running' AND claim = $2 RETURNING 1) \
             SELECT 1 FROM requeued, LATERAL (SELECT pg_notify($3, '')) AS woken",
        )
        .bind(fence.run.0)
        .bind(codec::generation(fence.generation))
        .bind(&self.names.channel)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(row.is_some())
    }

    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        admission::request_cancel(&mut conn, id).await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT count(*) AS n FROM runs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        codec::get_unsigned(&row, "n")
    }

    async fn wait_for_work(&self, timeout: Duration) -> Result<(), StoreError> {
        self.wakeups.wait(timeout).await;
        Ok(())
    }
}
