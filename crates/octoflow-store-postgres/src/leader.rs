//! Which node fires schedules: the one whose session holds the store's scheduler lock (a
//! session-level advisory lock). The lock lives with its connection: when the leader dies
//! or its connection drops, the server frees it, and the next node that asks takes it.
//!
//! Each store keeps one connection of its own for it, kept out of the pool while it holds
//! the lock, and checked (`SELECT 1`) at each question, so a leader that lost its session
//! stops saying it leads.

use std::time::Duration;

use octoflow_core::store::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use tokio::sync::Mutex;

use crate::error::from_sqlx;

/// How long one try to open the leader's connection waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's claim on the scheduler lock.
#[derive(Debug)]
pub(crate) struct Leadership {
    pool: PgPool,
    /// The lock's key (hashed by the server).
    key: String,
    /// The connection holding the lock, while this node leads.
    held: Mutex<Option<PoolConnection<Postgres>>>,
}

impl Leadership {
    /// A claim on the lock `key`, over connections made with `options` (none opened yet).
    pub(crate) fn new(options: PgConnectOptions, key: String) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Self {
            pool,
            key,
            held: Mutex::new(None),
        }
    }

    /// Whether this node leads: it holds the lock on a live session, or takes it now.
    pub(crate) async fn lead(&self) -> Result<bool, StoreError> {
        let mut held = self.held.lock().await;
        if let Some(conn) = held.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(true);
            }
            tracing::warn!("Lost the scheduler lock with its connection.");
            // Closed with its session: the server freed the lock.
            *held = None;
        }
        let mut conn = self.pool.acquire().await.map_err(from_sqlx)?;
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(&self.key)
                .fetch_one(&mut *conn)
                .await
                .map_err(from_sqlx)?;
        if taken {
            tracing::info!("This node fires the schedules now.");
            *held = Some(conn);
        }
        Ok(taken)
    }
}
