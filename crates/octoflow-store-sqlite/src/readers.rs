//! A few read connections, used off the async runtime.
//!
//! WAL mode lets readers run beside the writer, each on the last committed state. A read
//! takes an idle connection (or opens one) on a blocking thread; at most [`READERS`] reads
//! run at once, and idle connections stay open so their prepared statements stay cached.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use octoflow_core::store::StoreError;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::conn;
use crate::error::from_sqlite;

/// Reads that run at once, and read connections kept open.
const READERS: usize = 4;

/// The read connections of a store; clones of a store share them.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    /// Read connections on the file at `path`, opened when first needed.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::with_capacity(READERS)),
            permits: Semaphore::new(READERS),
        }
    }

    /// Runs `op` on a read connection on a blocking thread.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = op(&conn);
            readers.idle().push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        match self.idle().pop() {
            Some(conn) => Ok(conn),
            None => conn::open_reader(&self.path).map_err(from_sqlite),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while the lock was held leaves the list itself intact.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
