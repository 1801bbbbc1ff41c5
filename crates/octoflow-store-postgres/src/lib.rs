//! The PostgreSQL store of octoflow: runs, step runs, logs, the queue, locks, state,
//! schedules and auth records in one database that many nodes share.
//!
//! [`PostgresStore`] implements [`octoflow_core::store::Store`] with the semantics of the
//! `SQLite` store — the same conformance suite passes on both — and stays correct when
//! several nodes write at once:
//!
//! - claims take queued runs with `FOR UPDATE SKIP LOCKED` and bump each run's generation;
//!   every later write of its executor names that generation (the fence) in its `WHERE`;
//! - admissions of one concurrency key, or one idempotency key, take turns under a
//!   transaction-level advisory lock, so a rule allowing one run never makes two;
//! - writes that make work `NOTIFY` in their transaction; every node `LISTEN`s (see
//!   `listen`), so an idle worker wakes on work admitted by any node;
//! - run ends are written in batches — those that arrive while one batch is written go out
//!   together, one statement and one commit, each still under its own fence (see `ends`);
//! - a tick fires at most once: its mark's row lock decides, in the transaction that admits
//!   its run.
//!
//! [`PostgresStore::connect`] opens a pool, brings the schema up to date (see `migrate`) and
//! starts listening.
//!
//! ```no_run
//! # async fn demo() -> Result<(), octoflow_core::store::StoreError> {
//! use octoflow_core::store::RunStore;
//! use octoflow_store_postgres::{PostgresOptions, PostgresStore};
//!
//! let options = PostgresOptions {
//!     schema: Some("octoflow".to_owned()),
//!     ..PostgresOptions::default()
//! };
//! let store = PostgresStore::connect("postgres://octoflow@db.internal/octoflow", &options).await?;
//! let running = store.running_runs().await?;
//! # Ok(()) }
//! ```

mod admission;
mod auth;
mod claim;
mod codec;
mod connect;
mod copy;
mod copy_records;
mod ends;
mod error;
mod leader;
mod listen;
mod logs;
mod migrate;
mod names;
mod notices;
mod queue;
mod runs;
mod schedules;
#[cfg(test)]
mod scratch;
mod state;
mod steps;

use std::fmt;
use std::sync::Arc;

use octoflow_core::store::StoreError;
use sqlx::PgPool;

use crate::ends::Ends;
use crate::leader::Leadership;
use crate::listen::Wakeups;
use crate::names::Names;
use octoflow_core::store::AuthSeen;

/// How to connect a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The most connections the store's pool opens (default 10). The store opens one more,
    /// its own, to listen for wake-ups.
    pub max_connections: u32,
    /// The schema the tables live in, created when missing: ASCII letters, digits and `_`,
    /// not starting with a digit. `None`: the first existing schema of the connection's
    /// `search_path` (usually `public`).
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            schema: None,
        }
    }
}

/// A PostgreSQL-backed store. Cloning is cheap: clones share the pool and the listening task,
/// which stops with the last clone.
#[derive(Clone)]
pub struct PostgresStore {
    /// The connections every statement runs on.
    pool: PgPool,
    /// The schema, its channel and its lock keys.
    names: Arc<Names>,
    /// The queue of run ends and the task writing them in batches.
    ends: Ends,
    /// The listening task and the wake-ups it hands out.
    wakeups: Arc<Wakeups>,
    /// This node's claim on the scheduler lock.
    leadership: Arc<Leadership>,
    /// Whether users or tokens exist, as last read.
    auth_seen: Arc<AuthSeen>,
}

impl fmt::Debug for PostgresStore {
    /// Names the schema and channel only: never the URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.names.schema)
            .field("channel", &self.names.channel)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://…` or `postgresql://…`), brings the
    /// schema up to date and starts listening for wake-ups. Errors never show the URL's
    /// password: they name the host, port and database only.
    pub async fn connect(url: &str, options: &PostgresOptions) -> Result<Self, StoreError> {
        connect::connect(url, options)
            .await
            .map_err(error::ConnectError::into_store)
    }
}
