//! WAL checkpoints off the writer's thread.
//!
//! In WAL mode every commit appends pages to the `-wal` file; a checkpoint copies them back
//! into the database file and syncs it to disk. `SQLite` runs one by itself on the committing
//! connection once the log passes 1,000 pages, which would stall the writer, and every write
//! queued behind it, for the length of a copy and an `fsync`. Instead the writer turns
//! automatic checkpoints off, learns the log's length from a WAL hook after each commit,
//! and nudges a [`Checkpointer`] thread with a connection of its own once the log is long:
//! the copy runs beside the writer, which WAL mode allows.
//!
//! A checkpoint beside a busy writer rarely finishes with nothing left to copy, and only a
//! log copied to its end starts over from its beginning. So when the log grows past
//! [`RESTART_PAGES`] the writer checkpoints between two transactions itself; the
//! checkpointer has copied nearly everything by then, so this copies only the last pages.

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::Connection;

use crate::conn;

/// Pages waiting to be copied at which the checkpointer is nudged, as `SQLite`'s own
/// automatic checkpoint would: each checkpoint ends with an `fsync` and copies a page written
/// many times once, so fewer, longer copies cost less than many short ones (BENCHMARKS.md).
pub(crate) const NUDGE_PAGES: i32 = 1000;
/// Log length, in pages, at which the writer checkpoints itself so the log can start over.
pub(crate) const RESTART_PAGES: i32 = 16_000;

thread_local! {
    /// Pages in the log after this thread's last commit, set by [`record_log_length`].
    static LOG_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// Makes `conn` leave checkpoints to its owner: automatic ones off, the log's length after
/// each commit kept for [`take_log_pages`] on the thread that committed.
pub(crate) fn take_over(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.wal_hook(Some(record_log_length));
    Ok(())
}

/// The WAL hook: `SQLite` calls it on the committing thread with the log's length.
#[allow(clippy::unnecessary_wraps)] // reason: the hook's signature is rusqlite's
fn record_log_length(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_PAGES.set(pages);
    Ok(())
}

/// Pages in the log after the calling thread's last commit through a connection given to
/// [`take_over`], or 0 when it has not committed a page since the last call.
pub(crate) fn take_log_pages() -> i32 {
    LOG_PAGES.take()
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpoint {
    /// Another checkpoint was running: this one did nothing.
    pub(crate) busy: bool,
    /// Pages in the log.
    pub(crate) log: i32,
    /// Pages of the log now copied into the database file.
    pub(crate) copied: i32,
}

/// Runs a passive checkpoint on `conn`: copies what it can without waiting for anyone.
pub(crate) fn passive(conn: &Connection) -> rusqlite::Result<Checkpoint> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok(Checkpoint {
            busy: row.get::<_, i32>(0)? != 0,
            log: row.get(1)?,
            copied: row.get(2)?,
        })
    })
}

/// A handle to the checkpointer thread, which ends when the handle is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    nudges: mpsc::SyncSender<()>,
    /// Pages of the current log copied by the last checkpoint.
    copied: Arc<AtomicI32>,
}

impl Checkpointer {
    /// Starts the thread with a connection of its own on the file at `path`.
    pub(crate) fn start(path: &Path) -> std::io::Result<Self> {
        let conn = conn::open_checkpointer(path).map_err(std::io::Error::other)?;
        let (nudges, wake) = mpsc::sync_channel(1);
        let copied = Arc::new(AtomicI32::new(0));
        let done = Arc::clone(&copied);
        std::thread::Builder::new()
            .name("octoflow-store-checkpoint".to_owned())
            .spawn(move || {
                while wake.recv().is_ok() {
                    match passive(&conn) {
                        Ok(checkpoint) if !checkpoint.busy => {
                            done.store(checkpoint.copied, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "Cannot checkpoint the store's log."),
                    }
                }
            })?;
        Ok(Self { nudges, copied })
    }

    /// Called by the writer after a commit that left `pages` in the log: nudges the
    /// checkpointer once [`NUDGE_PAGES`] are waiting to be copied, and once the log is
    /// [`RESTART_PAGES`] long checkpoints on `conn` itself, between two transactions, so
    /// the next one starts the log over.
    pub(crate) fn after_commit(&self, conn: &Connection, pages: i32) {
        if pages >= RESTART_PAGES {
            match passive(conn) {
                Ok(checkpoint) if !checkpoint.busy && checkpoint.copied == checkpoint.log => {
                    self.copied.store(0, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "Cannot checkpoint the store's log."),
            }
            return;
        }
        // A log that started over is shorter than what was copied of the one before.
        let copied = self.copied.load(Ordering::Relaxed);
        let waiting = if pages >= copied {
            pages - copied
        } else {
            pages
        };
        if waiting >= NUDGE_PAGES {
            // One nudge pending is enough: a checkpoint copies whatever is there by then.
            let _ = self.nudges.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::conn;
    use crate::error::from_sqlite;
    use crate::writer::Writer;

    /// Bytes a row carries: most of a page.
    const ROW: usize = 3000;

    /// Under a stream of writes the log is copied into the database file while the writer
    /// runs, and starts over instead of holding everything written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_copied_and_starts_over_under_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let conn = conn::open_writer(&path, conn::Synchronous::Normal).unwrap();
        conn.execute_batch("CREATE TABLE blobs (v BLOB NOT NULL)")
            .unwrap();
        let writer = Arc::new(Writer::start(conn, &path).unwrap());
        let rows = usize::try_from(super::RESTART_PAGES).unwrap() * 2;
        for chunk in 0..rows / 500 {
            let inserts = (0..500).map(|i| {
                let writer = Arc::clone(&writer);
                async move {
                    let blob = vec![u8::try_from((chunk + i) % 251).unwrap(); ROW];
                    writer
                        .run(move |c| {
                            c.execute("INSERT INTO blobs (v) VALUES (?)", [&blob])
                                .map_err(from_sqlite)
                        })
                        .await
                }
            });
            for written in futures::future::join_all(inserts).await {
                written.unwrap();
            }
        }
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        let written = u64::try_from(rows * ROW).unwrap();
        // Still open: only checkpoints can have put the rows into the database file (how much
        // of the last log is copied yet depends on the timing of the last nudges).
        assert!(size("o.db") > written / 4, "database file {}", size("o.db"));
        // A log that never started over would hold every page written.
        assert!(
            size("o.db-wal") < written * 3 / 4,
            "log {}",
            size("o.db-wal")
        );
    }
}
