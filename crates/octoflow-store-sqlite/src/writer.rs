//! The one connection every write goes through.
//!
//! `SQLite` allows one writer at a time. Queueing writers on an in-process lock, instead of
//! letting several connections race for the file lock, avoids `SQLITE_BUSY` back-off
//! sleeps. Holding the connection directly, rather than in a one-connection pool, also
//! skips the pool's ping on every release, which would otherwise delay the next write
//! (about half of a write's time, measured). The connection is never replaced: a `SQLite`
//! connection only dies with its worker thread, and reopening the store opens a new one.

use sqlx::SqliteConnection;
use std::sync::Arc;

use futures::future::BoxFuture;
use octoflow_core::store::StoreError;
use tokio::sync::{Mutex, MutexGuard};

/// The write connection, shared by every clone of a store.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: Mutex<SqliteConnection>,
}

impl Writer {
    /// Wraps an open connection.
    pub(crate) fn new(conn: SqliteConnection) -> Self {
        Self {
            conn: Mutex::new(conn),
        }
    }

    /// Runs `op` on the connection in a task of its own, and waits for it.
    ///
    /// The task, not the caller's future, holds the connection. A caller whose future is not
    /// polled for a while (one of several steps run concurrently in one task) can then never
    /// hold the lock while another future of the same task waits for it; and a write that has
    /// started always completes, even if its caller is dropped. Writers are served in the
    /// order they asked.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let writer = Arc::clone(self);
        tokio::spawn(async move {
            let mut conn: MutexGuard<'_, SqliteConnection> = writer.conn.lock().await;
            op(&mut conn).await
        })
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?
    }
}
