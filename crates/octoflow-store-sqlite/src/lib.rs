//! The embedded `SQLite` store of octoflow: runs, step runs, logs, the queue, locks, state,
//! schedules and auth records in one WAL-mode file.
//!
//! [`SqliteStore`] implements [`octoflow_core::store::Store`]. Open it with
//! [`SqliteStore::open`] (a path) or [`SqliteStore::open_url`] (`sqlite://path`); both create
//! the file and bring its schema up to date.
//!
//! Writes go through one connection behind an async lock, so in-process writers queue
//! instead of contending for `SQLite`'s file lock; reads use a small pool, which WAL mode
//! lets run beside the writer. Timestamps are kept to the microsecond.
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
mod codec;
mod error;
mod logs;
mod queue;
mod runs;
mod schedules;
mod state;
mod steps;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use octoflow_core::store::{
    LogLine, Page, Paged, Progress, Run, RunFilter, RunId, RunStore, RunUpdate, StateStore,
    StepFinish, StepRun, StepRunId, StoreError,
};
use serde_json::{Map, Value};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqlSafeStr};

use octoflow_core::store::RunStatus;
use tokio::sync::Notify;

use crate::error::OpenError;
use crate::writer::Writer;

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections; WAL lets them run beside the single writer. Idle ones are kept open
/// (no idle or age limit) so their prepared statements stay cached.
const READERS: u32 = 4;

/// The schema, one entry per file in `migrations/`, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "runs", include_str!("../migrations/0001_runs.sql")),
    (2, "state", include_str!("../migrations/0002_state.sql")),
    (3, "queue", include_str!("../migrations/0003_queue.sql")),
    (
        4,
        "admission",
        include_str!("../migrations/0004_admission.sql"),
    ),
    (
        5,
        "schedules",
        include_str!("../migrations/0005_schedules.sql"),
    ),
];

/// A `SQLite`-backed store. Cloning is cheap: clones share the write connection and the read
/// pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The one connection every write goes through.
    writer: Arc<Writer>,
    /// A few connections for reads.
    reader: SqlitePool,
    /// Wakes `wait_for_work` in this process; `notify_one` keeps a wake-up nobody waited
    /// for as a permit.
    work: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating it and its directory when missing) the database file at `path` and
    /// brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::try_open(path).await.map_err(OpenError::into_store)
    }

    /// Opens the database named by a URL of the form `sqlite://path` or `sqlite:path`.
    ///
    /// `sqlite:///var/lib/octoflow.db` is an absolute path; `sqlite://octoflow.db` and
    /// `sqlite:octoflow.db` are relative to the working directory.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let path = parse_url(url).map_err(OpenError::into_store)?;
        Self::open(Path::new(path)).await
    }

    async fn try_open(path: &Path) -> Result<Self, OpenError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| OpenError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal);
        let connect_error = |source| OpenError::Connect {
            path: path.to_owned(),
            source,
        };

        // The writer opens first: it creates the file and switches it to WAL, which persists.
        let mut writer = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .map_err(connect_error)?;
        migrate(&mut writer, path).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_lazy_with(options);

        tracing::info!(path = %path.display(), "Store opened.");
        Ok(Self {
            writer: Arc::new(Writer::new(writer)),
            reader,
            work: Arc::new(Notify::new()),
        })
    }

    /// Says that work may have arrived.
    fn wake(&self) {
        self.work.notify_one();
    }
}

/// Brings the schema up to date. Two processes opening a new file at once race on the first
/// migration; the loser sees "already exists" or "duplicate column" (a table or column the
/// winner just made), or a busy lock, and its retry finds the migration applied.
async fn migrate(conn: &mut sqlx::SqliteConnection, path: &Path) -> Result<(), OpenError> {
    const ATTEMPTS: u32 = 20;
    let mut attempt = 1;
    loop {
        match migrator().run(&mut *conn).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < ATTEMPTS && is_race(&error) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(source) => {
                return Err(OpenError::Migrate {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

fn is_race(error: &sqlx::migrate::MigrateError) -> bool {
    let text = error.to_string();
    ["already exists", "duplicate column", "locked", "busy"]
        .iter()
        .any(|sign| text.contains(sign))
}

/// The embedded migrations (the `migrate!` macro would need sqlx's `macros` feature).
fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
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
        self.writer
            .run(move |c| Box::pin(async move { runs::insert(c, &run).await }))
            .await?;
        if queued {
            self.wake();
        }
        Ok(())
    }

    async fn update_run(&self, update: &RunUpdate) -> Result<(), StoreError> {
        // A final status may free a concurrency slot; a queued one is new work.
        let wake = update.status.is_final() || update.status == RunStatus::Queued;
        let update = update.clone();
        self.writer
            .run(move |c| Box::pin(async move { runs::update(c, &update).await }))
            .await?;
        if wake {
            self.wake();
        }
        Ok(())
    }

    async fn insert_step_run(&self, step: &StepRun) -> Result<StepRunId, StoreError> {
        let step = step.clone();
        self.writer
            .run(move |c| Box::pin(async move { steps::insert(c, &step).await }))
            .await
    }

    async fn finish_step_run(&self, id: StepRunId, finish: &StepFinish) -> Result<(), StoreError> {
        let finish = finish.clone();
        self.writer
            .run(move |c| Box::pin(async move { steps::finish(c, id, &finish).await }))
            .await
    }

    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        let lines = lines.to_vec();
        self.writer
            .run(move |c| Box::pin(async move { logs::append(c, &lines).await }))
            .await
    }

    async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError> {
        runs::get(&self.reader, id).await
    }

    async fn step_runs(&self, id: &RunId) -> Result<Vec<StepRun>, StoreError> {
        steps::list(&self.reader, id).await
    }

    async fn logs(&self, id: &RunId, step: Option<&str>) -> Result<Vec<LogLine>, StoreError> {
        logs::list(&self.reader, id, step).await
    }

    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError> {
        runs::list(&self.reader, filter, page).await
    }

    async fn running_runs(&self) -> Result<Vec<Run>, StoreError> {
        runs::running(&self.reader).await
    }

    async fn mark_interrupted(&self, id: &RunId) -> Result<bool, StoreError> {
        let id = *id;
        let marked = self
            .writer
            .run(move |c| Box::pin(async move { runs::mark_interrupted(c, &id).await }))
            .await?;
        if marked {
            self.wake();
        }
        Ok(marked)
    }

    async fn set_progress(&self, id: &RunId, progress: &Progress) -> Result<(), StoreError> {
        let (id, progress) = (*id, progress.clone());
        self.writer
            .run(move |c| Box::pin(async move { runs::set_progress(c, &id, &progress).await }))
            .await
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn state(&self, flow: &str) -> Result<Map<String, Value>, StoreError> {
        // Read on the writer: every run reads its flow's state as it starts, and a run must
        // see what the previous one wrote.
        let flow = flow.to_owned();
        self.writer
            .run(move |c| Box::pin(async move { state::get(c, &flow).await }))
            .await
    }

    async fn set_state(&self, flow: &str, values: &Map<String, Value>) -> Result<(), StoreError> {
        let (flow, values) = (flow.to_owned(), values.clone());
        self.writer
            .run(move |c| Box::pin(async move { state::set(c, &flow, &values).await }))
            .await
    }
}

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
