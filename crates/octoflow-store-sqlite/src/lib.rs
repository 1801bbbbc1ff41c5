//! The embedded `SQLite` store of octoflow: runs, step runs, logs, the queue, locks, state,
//! schedules and auth records in one WAL-mode file.
//!
//! [`SqliteStore`] implements [`octoflow_core::store::Store`]. Open it with
//! [`SqliteStore::open`] (a path) or [`SqliteStore::open_url`] (`sqlite://path`); both create
//! the file and bring its schema up to date.
//!
//! Writes go through one connection on a thread of its own, which runs the writes waiting
//! at a time in one transaction (group commit, see `writer`); reads use a few connections
//! of their own, which WAL mode lets run beside the writer. Timestamps are kept to the
//! microsecond.
//!
//! ```no_run
//! # async fn demo() -> Result<(), octoflow_core::store::StoreError> {
//! use octoflow_core::store::RunStore;
//! use octoflow_store_sqlite::SqliteStore;
//!
//! let store = SqliteStore::open_url("sqlite://data/octoflow.db").await?;
//! let running = store.running_runs().await?;
//! # Ok(()) }
//! ```

mod admission;
mod auth;
mod checkpoint;
mod codec;
mod conn;
mod copy;
mod copy_records;
mod error;
mod logs;
mod query;
mod queue;
mod readers;
mod runs;
mod schedules;
mod state;
mod steps;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octoflow_core::store::{
    Fence, LogLine, Page, Paged, Progress, Run, RunFilter, RunId, RunStatus, RunStore, RunUpdate,
    StateStore, StepFinish, StepRun, StepRunId, StoreError,
};
use rusqlite::Connection;
use serde_json::{Map, Value};
use tokio::sync::Notify;

pub use crate::conn::Synchronous;
use crate::error::OpenError;
use crate::readers::Readers;
use crate::writer::Writer;
use octoflow_core::store::AuthSeen;

/// A `SQLite`-backed store. Cloning is cheap: clones share the writer and the readers.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The thread every write goes through.
    writer: Arc<Writer>,
    /// A few connections for reads.
    readers: Arc<Readers>,
    /// Wakes `wait_for_work` in this process; `notify_one` keeps a wake-up nobody waited
    /// for as a permit.
    work: Arc<Notify>,
    /// Whether users or tokens exist, as last read.
    auth_seen: Arc<AuthSeen>,
}

impl SqliteStore {
    /// Opens (creating it and its directory when missing) the database file at `path` and
    /// brings its schema up to date; commits are [`Synchronous::Normal`].
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Normal).await
    }

    /// Opens the database file at `path` as [`open`](Self::open) does, with commits as
    /// durable as `synchronous` says.
    pub async fn open_with(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::try_open(path, synchronous))
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?
            .map_err(OpenError::into_store)
    }

    /// Opens the database named by a URL of the form `sqlite://path` or `sqlite:path`.
    ///
    /// `sqlite:///var/lib/octoflow.db` is an absolute path; `sqlite://octoflow.db` and
    /// `sqlite:octoflow.db` are relative to the working directory.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = parse_url(url).map_err(OpenError::into_store)?;
        Self::open(Path::new(path)).await
    }

    /// Opens the file on the calling (blocking) thread.
    fn try_open(path: PathBuf, synchronous: Synchronous) -> Result<Self, OpenError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn = conn::open_writer(&path, synchronous)?;
        let writer = Writer::start(conn, &path).map_err(|source| OpenError::Thread { source })?;
        tracing::info!(path = %path.display(), "Store opened.");
        Ok(Self {
            writer: Arc::new(writer),
            readers: Arc::new(Readers::new(path)),
            work: Arc::new(Notify::new()),
            auth_seen: Arc::default(),
        })
    }

    /// Runs a write op in the writer's next transaction (again, should another op of that
    /// transaction fail: see `writer`).
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.run(op).await
    }

    /// Runs a read op on a read connection.
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers.run(op).await
    }

    /// Says that work may have arrived.
    fn wake(&self) {
        self.work.notify_one();
    }
}

/// The path of a `sqlite://path` or `sqlite:path` URL.
fn parse_url(url: &str) -> Result<&str, OpenError> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        return Err(OpenError::Url {
            scheme: scheme.to_owned(),
        });
    };
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        Err(OpenError::EmptyPath)
    } else {
        Ok(path)
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn insert_run(&self, run: &Run) -> Result<(), StoreError> {
        let queued = run.status == RunStatus::Queued;
        let run = run.clone();
        self.write(move |c| runs::insert(c, &run)).await?;
        if queued {
            self.wake();
        }
        Ok(())
    }

    async fn end_run(
        &self,
        fence: &Fence,
        steps: &[StepRun],
        update: &RunUpdate,
    ) -> Result<(), StoreError> {
        let (fence, ended, update) = (*fence, steps.to_vec(), update.clone());
        let frees = self
            .write(move |c| {
                steps::insert_all(c, &fence, &ended)?;
                runs::end(c, &fence, &update)
            })
            .await?;
        // Workers look at the queue again only when the end lets a queued run start: a
        // claim per ended run would cost a write each.
        if frees {
            self.wake();
        }
        Ok(())
    }

    async fn insert_ended(&self, run: &Run, steps: &[StepRun]) -> Result<(), StoreError> {
        let row = runs::RunRow::encode(run)?;
        let ended = steps
            .iter()
            .map(steps::StepRow::encode)
            .collect::<Result<Vec<_>, _>>()?;
        self.write(move |c| {
            row.insert(c, None, None)?;
            ended.iter().try_for_each(|step| step.insert(c).map(drop))
        })
        .await
    }

    async fn insert_step_run(
        &self,
        fence: &Fence,
        step: &StepRun,
    ) -> Result<StepRunId, StoreError> {
        let (fence, step) = (*fence, step.clone());
        self.write(move |c| steps::insert(c, &fence, &step)).await
    }

    async fn finish_step_run(
        &self,
        fence: &Fence,
        id: StepRunId,
        finish: &StepFinish,
    ) -> Result<(), StoreError> {
        let (fence, finish) = (*fence, finish.clone());
        self.write(move |c| steps::finish(c, &fence, id, &finish))
            .await
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let lines = lines.to_vec();
        self.write(move |c| logs::append(c, &lines)).await
    }

    async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        let id = *id;
        self.read(move |c| runs::get(c, &id)).await
    }

    async fn step_runs(&self, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
        let id = *id;
        self.read(move |c| steps::list(c, &id)).await
    }

    async fn logs(
        &self,
        id: &RunId,
        step: Option<&str>,
        after: u64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let (id, step) = (*id, step.map(str::to_owned));
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |c| logs::list(c, &id, step.as_deref(), after))
            .await
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError> {
        let filter = filter.clone();
        self.read(move |c| runs::list(c, &filter, page)).await
    }

    async fn running_runs(&self) -> Result<Vec<Run>, StoreError> {
        self.read(runs::running).await
    }

    async fn mark_interrupted(&self, fence: &Fence) -> Result<bool, StoreError> {
        let fence = *fence;
        let marked = self
            .write(move |c| runs::mark_interrupted(c, &fence))
            .await?;
        if marked {
            self.wake();
        }
        Ok(marked)
    }

    async fn set_progress(&self, id: &RunId, progress: &Progress) -> Result<(), StoreError> {
        let (id, progress) = (*id, progress.clone());
        self.write(move |c| runs::set_progress(c, &id, &progress))
            .await
    }

    async fn prune_runs(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RunId>, StoreError> {
        self.write(move |c| runs::prune(c, before, limit)).await
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn state(&self, flow: &str) -> Result<Map<String, Value>, StoreError> {
        // Read on the writer: every run reads its flow's state as it starts, and a run must
        // see what the previous one wrote, in the order the writes were asked for.
        let flow = flow.to_owned();
        self.write(move |c| state::get(c, &flow)).await
    }

    async fn set_state(&self, flow: &str, values: &Map<String, Value>) -> Result<(), StoreError> {
        let (flow, values) = (flow.to_owned(), values.clone());
        self.write(move |c| state::set(c, &flow, &values)).await
    }
}

/// A file that one node uses: no other node to tell anything (processes sharing the file
/// on one host find runs and ends by reading it).
impl octoflow_core::store::NoticeStore for SqliteStore {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert_eq!(
            parse_url("sqlite:///var/lib/o.db").unwrap(),
            "/var/lib/o.db"
        );
        assert_eq!(parse_url("sqlite://data/o.db").unwrap(), "data/o.db");
        assert_eq!(parse_url("sqlite:o.db").unwrap(), "o.db");
    }

    #[test]
    fn other_schemes_name_the_expected_form() {
        let err = parse_url("postgres://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unsupported store url scheme `postgres`; expected `sqlite://path` or `sqlite:path`"
        );
        assert!(matches!(parse_url("sqlite://"), Err(OpenError::EmptyPath)));
    }

    #[tokio::test]
    async fn open_url_rejects_other_schemes_as_backend_errors() {
        let err = SqliteStore::open_url("mysql://h/db").await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
    }

    #[tokio::test]
    async fn open_creates_directories_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/octoflow.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.running_runs().await.unwrap().is_empty());
        drop(store);
        // A second open finds the migration applied and changes nothing.
        let again = SqliteStore::open(&path).await.unwrap();
        assert!(again.running_runs().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn open_on_a_directory_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open(dir.path()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
