//! The one connection every write goes through, on a thread of its own, with group commit.
//!
//! `SQLite` allows one writer at a time. Callers queue write ops on a channel; the writer
//! thread takes every op waiting (up to [`MAX_BATCH`]) and runs them in one `IMMEDIATE`
//! transaction, each inside a savepoint of its own: an op that fails rolls back its own
//! changes only, and one commit serves the whole batch. An op alone in its batch (the
//! usual case without load) needs no savepoint: its transaction is its own. A caller hears
//! its op's answer once the transaction it ran in has committed, so an answered write is a
//! stored write.
//!
//! This is what makes writes cheap under load: a statement runs on the thread that owns
//! the connection (no hand-off to a driver thread and back per statement), and the commit,
//! the costly part of a small write, is shared. With no load a batch is one op, and the op
//! costs one hand-off to the thread and one back.
//!
//! Ops run in the order they were queued. An op that has been queued runs even if its
//! caller stops waiting. The thread ends, closing the connection, when the last handle to
//! the store is dropped, after it has run every op already queued.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use octoflow_core::store::StoreError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{self, Checkpointer};
use crate::error::is_unavailable;

/// The most ops one transaction takes, so a long queue still commits now and then.
const MAX_BATCH: usize = 512;

/// A handle to the writer thread; clones of a store share it.
#[derive(Debug)]
pub(crate) struct Writer {
    ops: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on an open connection.
    pub(crate) fn start(conn: Connection, path: &Path) -> std::io::Result<Self> {
        checkpoint::take_over(&conn).map_err(std::io::Error::other)?;
        let checkpointer = Checkpointer::start(path)?;
        let (ops, queue) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("octoflow-store-writer".to_owned())
            .spawn(move || serve(&conn, &checkpointer, queue))?;
        tracing::debug!(path = %path.display(), "Store writer started.");
        Ok(Self { ops })
    }

    /// Runs `op` in the writer's next transaction and answers its result once that
    /// transaction has committed.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            op: Some(op),
            result: None,
            reply,
        };
        self.ops.send(Box::new(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// An op as the writer thread sees it: applied in a transaction, then told how that ended.
trait Job: Send {
    /// Runs the op; `true` when it succeeded and its changes are to be kept.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: the op's result, or `failure` when its transaction did not commit
    /// (then its changes are gone, whatever the op answered).
    fn finish(self: Box<Self>, failure: Option<&Arc<rusqlite::Error>>);
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// A caller's op, its result once run, and where the answer goes.
struct Pending<T, F> {
    op: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| op(conn))).unwrap_or_else(|panic| {
            tracing::error!(
                cause = panic_text(panic.as_ref()),
                "A store write panicked."
            );
            Err(StoreError::Backend(
                "a store write failed unexpectedly".into(),
            ))
        });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, failure: Option<&Arc<rusqlite::Error>>) {
        let answer = match (failure, self.result) {
            // An op that failed answers its own error: its changes were rolled back anyway.
            (_, Some(Err(err))) => Err(err),
            (None, Some(ok)) => ok,
            (Some(cause), _) => Err(shared(cause)),
            (None, None) => Err(stopped()),
        };
        // A caller that stopped waiting does not need the answer.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: one batch of waiting ops per transaction until every handle is gone;
/// after each, a checkpoint when the log has grown (see `checkpoint`).
fn serve(
    conn: &Connection,
    checkpointer: &Checkpointer,
    mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(conn, &mut batch);
        let pages = checkpoint::take_log_pages();
        if pages > 0 {
            checkpointer.after_commit(conn, pages);
        }
    }
}

/// Runs a batch in as few transactions as it can: one, unless `SQLite` abandons a
/// transaction on an error (a full disk, say), which fails the ops applied in it.
fn run_batch(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    if batch.len() == 1
        && let Some(job) = batch.pop()
    {
        return run_alone(conn, job);
    }
    let mut applied: Vec<Box<dyn Job>> = Vec::with_capacity(batch.len());
    let mut jobs = batch.drain(..);
    while let Some(mut job) = jobs.next() {
        if conn.is_autocommit()
            && let Err(err) = statement(conn, "BEGIN IMMEDIATE")
        {
            let err = Arc::new(err);
            job.finish(Some(&err));
            jobs.by_ref().for_each(|job| job.finish(Some(&err)));
            return;
        }
        if let Err(err) = in_savepoint(conn, job.as_mut()) {
            // The savepoint statements failed: the transaction is in doubt, so is every op
            // in it.
            let err = Arc::new(err);
            let _ = statement(conn, "ROLLBACK");
            job.finish(Some(&err));
            applied.drain(..).for_each(|job| job.finish(Some(&err)));
            continue;
        }
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back on the op's error.
            let err = rolled_back();
            job.finish(Some(&err));
            applied.drain(..).for_each(|job| job.finish(Some(&err)));
            continue;
        }
        applied.push(job);
    }
    let committed = statement(conn, "COMMIT").map_err(Arc::new);
    if committed.is_err() && !conn.is_autocommit() {
        let _ = statement(conn, "ROLLBACK");
    }
    let failure = committed.err();
    for job in applied {
        job.finish(failure.as_ref());
    }
}

/// Runs the only op of a batch in a transaction of its own, without a savepoint: the
/// transaction is the op's, so an op that fails is rolled back with it. (A savepoint copies
/// every page the op changes aside, in case it must be undone apart from the others.)
fn run_alone(conn: &Connection, mut job: Box<dyn Job>) {
    if conn.is_autocommit()
        && let Err(err) = statement(conn, "BEGIN IMMEDIATE")
    {
        return job.finish(Some(&Arc::new(err)));
    }
    let ok = job.apply(conn);
    let failure = if conn.is_autocommit() {
        // SQLite rolled the transaction back on an error: an op that failed answers its
        // own error, one that went on regardless learns its changes are gone.
        ok.then(rolled_back)
    } else if ok {
        let committed = statement(conn, "COMMIT").map_err(Arc::new);
        if committed.is_err() && !conn.is_autocommit() {
            let _ = statement(conn, "ROLLBACK");
        }
        committed.err()
    } else {
        let _ = statement(conn, "ROLLBACK");
        None
    };
    job.finish(failure.as_ref());
}

/// Applies one op inside a savepoint: released when the op succeeds, rolled back to when
/// it fails. An error here is of the savepoint statements themselves.
fn in_savepoint(conn: &Connection, job: &mut dyn Job) -> rusqlite::Result<()> {
    statement(conn, "SAVEPOINT op")?;
    let ok = job.apply(conn);
    if conn.is_autocommit() {
        return Ok(());
    }
    if !ok {
        statement(conn, "ROLLBACK TO op")?;
    }
    statement(conn, "RELEASE op")
}

/// Runs a statement without parameters, prepared once per connection.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// The error of the ops whose transaction `SQLite` rolled back on an error of a write.
fn rolled_back() -> Arc<rusqlite::Error> {
    Arc::new(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("transaction rolled back by an error in a write".to_owned()),
    ))
}

/// The error a caller gets when its op's transaction did not commit.
fn shared(cause: &Arc<rusqlite::Error>) -> StoreError {
    let source = Box::new(Arc::clone(cause));
    if is_unavailable(cause) {
        StoreError::Unavailable(source)
    } else {
        StoreError::Backend(source)
    }
}

/// The error of a writer thread that is gone (it only ends with the last store handle).
fn stopped() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_sqlite;

    fn sql<T>(result: rusqlite::Result<T>) -> Result<T, StoreError> {
        result.map_err(from_sqlite)
    }

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .unwrap();
        (dir, Writer::start(conn, &path).unwrap())
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<usize, StoreError> + Send {
        move |c| sql(c.execute("INSERT INTO t (v) VALUES (?)", [v]))
    }

    fn count(w: &Writer) -> impl Future<Output = Result<i64, StoreError>> + '_ {
        w.run(|c| sql(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))))
    }

    /// Ops queued together share a transaction, but one that fails loses only its own
    /// changes.
    #[tokio::test]
    async fn a_failed_op_rolls_back_only_itself() {
        let (_dir, w) = writer();
        let w = Arc::new(w);
        let answers = futures::future::join_all((0..100).map(|i| {
            let w = Arc::clone(&w);
            // Every tenth op inserts a row, then the same row again, breaking the key.
            async move {
                if i % 10 == 0 {
                    w.run(move |c| {
                        sql(c.execute("INSERT INTO t (v) VALUES (?)", [1000 + i]))?;
                        sql(c.execute("INSERT INTO t (v) VALUES (?)", [1000 + i]))
                    })
                    .await
                } else {
                    w.run(insert(i)).await
                }
            }
        }))
        .await;
        assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 10);
        assert_eq!(count(&w).await.unwrap(), 90);
    }

    /// An op alone in its transaction that fails after a change leaves nothing behind.
    #[tokio::test]
    async fn a_lone_failed_op_leaves_nothing() {
        let (_dir, w) = writer();
        let err = w
            .run::<(), _>(|c| {
                sql(c.execute("INSERT INTO t (v) VALUES (5)", []))?;
                Err(StoreError::Backend("refused".into()))
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            StoreError::Backend("refused".into()).to_string()
        );
        assert_eq!(count(&w).await.unwrap(), 0);
        w.run(insert(5)).await.unwrap();
        assert_eq!(count(&w).await.unwrap(), 1);
    }

    /// A panicking op answers an error and the writer goes on.
    #[tokio::test]
    async fn a_panicking_op_is_an_error() {
        let (_dir, w) = writer();
        let err = w
            .run::<(), _>(|c| {
                c.execute("INSERT INTO t (v) VALUES (7)", []).unwrap();
                panic!("boom")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
        w.run(insert(8)).await.unwrap();
        assert_eq!(count(&w).await.unwrap(), 1);
    }

    /// An answered write is visible to another connection: it has committed.
    #[tokio::test]
    async fn an_answered_write_has_committed() {
        let (dir, w) = writer();
        w.run(insert(1)).await.unwrap();
        let other = Connection::open(dir.path().join("w.db")).unwrap();
        let n: i64 = other
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
