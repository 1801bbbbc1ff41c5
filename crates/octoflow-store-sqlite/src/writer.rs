//! The one connection every write goes through, on a thread of its own, with group commit.
//!
//! `SQLite` allows one writer at a time. Callers queue write ops on a channel; the writer
//! thread takes every op waiting (up to [`MAX_BATCH`]) and runs them in one `IMMEDIATE`
//! transaction, so one commit serves the whole batch. An op that fails loses only its own
//! changes: should one fail after changing something, the transaction is rolled back and
//! the batch run again with each op inside a savepoint of its own. Savepoints are not taken
//! first because they are not free: `SQLite` copies aside every page an op changes in one.
//! An op may therefore run twice, and must do nothing but read and write the store (a log
//! line it writes may show twice). A caller hears its op's answer once the transaction it
//! ran in has committed, so an answered write is a stored write.
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
    /// transaction has committed. `op` runs again when its transaction had to be rolled
    /// back for another op's failure (see the module's doc).
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            op,
            result: None,
            reply,
        };
        self.ops.send(Box::new(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// An op as the writer thread sees it: applied in a transaction, then told how that ended.
trait Job: Send {
    /// Runs the op; `true` when it succeeded and its changes are to be kept. Run again after
    /// its transaction was rolled back, it answers its last result.
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
    op: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| (self.op)(conn))).unwrap_or_else(|panic| {
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

/// Runs a batch in as few transactions as it can: one without savepoints, unless an op
/// fails after changing something; then the batch again, each op in a savepoint.
fn run_batch(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    if batch.len() == 1
        && let Some(job) = batch.pop()
    {
        return run_alone(conn, job);
    }
    if conn.is_autocommit()
        && let Err(err) = statement(conn, "BEGIN IMMEDIATE")
    {
        let err = Arc::new(err);
        return batch.drain(..).for_each(|job| job.finish(Some(&err)));
    }
    if apply_all(conn, batch) {
        let failure = commit(conn);
        return batch.drain(..).for_each(|job| job.finish(failure.as_ref()));
    }
    if !conn.is_autocommit() {
        let _ = statement(conn, "ROLLBACK");
    }
    tracing::debug!(
        writes = batch.len(),
        "A store write failed after a change; its batch runs again, a savepoint each."
    );
    run_in_savepoints(conn, batch);
}

/// Applies every op of a batch in the open transaction, in order; `false` as soon as one
/// failed after changing something (or `SQLite` gave the transaction up), which only a
/// rollback of the whole transaction can undo. An op that failed without a change needs
/// no undoing: it answers its error and the others go on.
fn apply_all(conn: &Connection, batch: &mut [Box<dyn Job>]) -> bool {
    batch.iter_mut().all(|job| {
        let changes = conn.total_changes();
        let ok = job.apply(conn);
        !conn.is_autocommit() && (ok || conn.total_changes() == changes)
    })
}

/// Runs a batch with each op inside a savepoint, in as few transactions as it can: one,
/// unless `SQLite` abandons a transaction on an error (a full disk, say), which fails the
/// ops applied in it.
fn run_in_savepoints(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
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
    let failure = commit(conn);
    for job in applied {
        job.finish(failure.as_ref());
    }
}

/// Runs the only op of a batch in a transaction of its own, without a savepoint: the
/// transaction is the op's, so an op that fails is rolled back with it.
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
        commit(conn)
    } else {
        let _ = statement(conn, "ROLLBACK");
        None
    };
    job.finish(failure.as_ref());
}

/// Commits the open transaction; its error, after rolling back, when it could not.
fn commit(conn: &Connection) -> Option<Arc<rusqlite::Error>> {
    let committed = statement(conn, "COMMIT").map_err(Arc::new);
    if committed.is_err() && !conn.is_autocommit() {
        let _ = statement(conn, "ROLLBACK");
    }
    committed.err()
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
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    fn insert(v: i64) -> impl Fn(&Connection) -> Result<usize, StoreError> + Send {
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

    /// Queues `ops` while the writer is busy, so that they make one batch; their answers.
    async fn in_one_batch<F>(w: &Arc<Writer>, ops: Vec<F>) -> Vec<Result<usize, StoreError>>
    where
        F: Fn(&Connection) -> Result<usize, StoreError> + Send + 'static,
    {
        let (started, running) = oneshot::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let started = std::sync::Mutex::new(Some(started));
        let busy = tokio::spawn({
            let w = Arc::clone(w);
            async move {
                w.run(move |_| {
                    if let Some(started) = started.lock().unwrap().take() {
                        let _ = started.send(());
                    }
                    let _ = wait.recv();
                    Ok(())
                })
                .await
            }
        });
        running.await.unwrap();
        let mut answers = Box::pin(futures::future::join_all(
            ops.into_iter().map(|op| w.run(op)),
        ));
        // One poll queues every op.
        assert!(futures::poll!(&mut answers).is_pending());
        go.send(()).unwrap();
        busy.await.unwrap().unwrap();
        answers.await
    }

    /// A test op, boxed so that ops of different closures make one batch.
    type Op = Box<dyn Fn(&Connection) -> Result<usize, StoreError> + Send>;

    /// Ten ops that insert a row each, the sixth failing as `sixth` does; and a count of the
    /// ops' runs.
    fn ten_ops(sixth: fn(&Connection) -> Result<usize, StoreError>) -> (Arc<AtomicUsize>, Vec<Op>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let ops = (0..10)
            .map(|i| {
                let runs = Arc::clone(&runs);
                let op: Op = Box::new(move |c| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    if i == 5 { sixth(c) } else { insert(i)(c) }
                });
                op
            })
            .collect();
        (runs, ops)
    }

    /// An op of a batch that fails before changing anything needs no savepoints: every op
    /// runs once.
    #[tokio::test]
    async fn a_failure_without_a_change_runs_nothing_again() {
        let (_dir, w) = writer();
        let w = Arc::new(w);
        let (runs, ops) = ten_ops(|_| Err(StoreError::Backend("refused".into())));
        let answers = in_one_batch(&w, ops).await;
        assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 1);
        assert!(answers[5].is_err());
        assert_eq!(runs.load(Ordering::Relaxed), 10);
        assert_eq!(count(&w).await.unwrap(), 9);
    }

    /// An op of a batch that fails after a change makes the batch run again, each op in a
    /// savepoint: it loses its own change only.
    #[tokio::test]
    async fn a_failure_after_a_change_runs_the_batch_again() {
        let (_dir, w) = writer();
        let w = Arc::new(w);
        let (runs, ops) = ten_ops(|c| {
            insert(100)(c)?;
            Err(StoreError::Backend("refused".into()))
        });
        let answers = in_one_batch(&w, ops).await;
        assert_eq!(answers.iter().filter(|a| a.is_err()).count(), 1);
        assert!(answers[5].is_err());
        // Six ops until the failure, then all ten again.
        assert_eq!(runs.load(Ordering::Relaxed), 16);
        assert_eq!(count(&w).await.unwrap(), 9);
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
