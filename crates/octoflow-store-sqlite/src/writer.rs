//! The one connection every write goes through.
//!
//! `SQLite` allows one writer at a time. Queueing writers on an in-process lock, instead of
//! letting several connections race for the file lock, avoids `SQLITE_BUSY` back-off
//! sleeps. Holding the connection directly, rather than in a one-connection pool, also
//! skips the pool's ping on every release, which would otherwise delay the next write
//! (about half of a write's time, measured). The connection is never replaced: a `SQLite`
//! connection only dies with its worker thread, and reopening the store opens a new one.

use sqlx::SqliteConnection;
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

    /// Waits for the connection. Writers are served in the order they asked.
    pub(crate) async fn lock(&self) -> MutexGuard<'_, SqliteConnection> {
        self.conn.lock().await
    }
}
