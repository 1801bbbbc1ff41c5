//! End-to-end tests of the `octoflow` binary: the real executable, driven through
//! [`octoflow_testkit::cli::Octo`] in a temporary working directory whose data directory is
//! `data/`. User-facing text is pinned with insta snapshots in `snapshots/`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod auth;
mod browser;
mod chaos;
mod cli;
mod client;
mod cluster;
mod conformance;
mod hooks;
mod hostile;
mod init;
mod job_tracker;
mod kinds;
mod mail;
mod once;
mod pc_reserve;
mod peer;
mod recover;
mod redaction;
mod run;
mod schedules;
mod schema;
mod serve;
mod server;
mod spooler;
mod store_copy;
mod syncrator;
mod validate;
mod watch;
mod worker;

use std::io::{BufRead, BufReader, Read};
use std::thread::JoinHandle;
use std::time::Duration;

use octoflow_core::store::{Page, Run, RunFilter, RunStore, StepRun, StoreError};
use octoflow_store_sqlite::SqliteStore;
use octoflow_testkit::cli::{Octo, Output, Spawned};

/// A command of the binary under test, in a fresh working directory.
fn octo() -> Octo {
    Octo::new(env!("CARGO_BIN_EXE_octoflow"))
}

/// Copies a directory (an example's data directory) into the test's working directory.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Opens the store of the working directory's data directory, when it exists.
fn with_store<T>(octo: &Octo, f: impl AsyncFnOnce(&SqliteStore) -> T) -> Option<T> {
    try_with_store(octo, f).map(|r| r.unwrap_or_else(|e| panic!("cannot open the store: {e:?}")))
}

/// As [`with_store`], but an error opening the store (another process is creating it) is
/// returned, for tests that poll while `octoflow` runs.
fn try_with_store<T>(
    octo: &Octo,
    f: impl AsyncFnOnce(&SqliteStore) -> T,
) -> Option<Result<T, StoreError>> {
    let db = octo.path("data/octoflow.db");
    if !db.exists() {
        return None;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some(runtime.block_on(async {
        let store = SqliteStore::open(&db).await?;
        Ok(f(&store).await)
    }))
}

/// Every run recorded in `data/octoflow.db`, newest first (none when there is no store).
fn recorded_runs(octo: &Octo) -> Vec<Run> {
    with_store(octo, async |store| all_runs(store).await).unwrap_or_default()
}

/// Every run of a store (up to 1,000), newest first.
async fn all_runs(store: &SqliteStore) -> Vec<Run> {
    let page = Page {
        page: 1,
        per_page: 1000,
    };
    store
        .list_runs(&RunFilter::default(), page)
        .await
        .unwrap()
        .items
}

/// A run's step runs.
fn step_runs(octo: &Octo, run: &Run) -> Vec<StepRun> {
    with_store(octo, async |store| store.step_runs(&run.id).await.unwrap()).unwrap_or_default()
}

/// An `octoflow run` in the background whose stderr has said `run <id> of flow … started`,
/// so its store is set up and its run recorded.
struct Started {
    child: Spawned,
    head: String,
    rest: JoinHandle<String>,
}

/// Starts `octoflow` with these arguments and waits for its run to start.
fn start(octo: &Octo) -> Started {
    let mut child = octo.spawn();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "octoflow ended before its run started:\n{head}"
        );
        head.push_str(&line);
        if line.starts_with("run ") && line.trim_end().ends_with(" started") {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    });
    Started { child, head, rest }
}

impl Started {
    /// The process id.
    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL, leaving its run as it was.
    fn kill(mut self) {
        self.child.kill().unwrap();
        std::process::Child::wait(&mut self.child).unwrap();
    }

    /// Waits for the end; returns how it ended and all it printed on stderr.
    fn wait(self) -> (Output, String) {
        let out = self.child.wait(Duration::from_secs(30));
        let stderr = self.head + &self.rest.join().unwrap();
        (out, stderr)
    }
}
