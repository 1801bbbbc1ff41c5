//! A scheduler under test: flow files in a data directory, a store, a clock and the
//! scheduler's loop, which a test can stop and start again over the same store (a restart).
//!
//! ```ignore
//! let clock = Arc::new(ManualClock::new(start));
//! let rig = SchedulerRig::new(store, clock.clone()).flow("poll.yml", YAML).start().await;
//! clock.advance(Duration::minutes(5));
//! rig.scheduler.settle().await;
//! assert_eq!(rig.ticks("flow:poll:0").await, ["2026-03-01T08:05:00Z"]);
//! ```

use std::path::Path;
use std::sync::Arc;

use octoflow_core::engine::{Engine, EngineConfig, FlowCatalog};
use octoflow_core::fs::FilesRoot;
use octoflow_core::library::FlowLibrary;
use octoflow_core::scheduler::{Autostart, Clock, Scheduler};
use octoflow_core::service::{Service, ServiceConfig};
use octoflow_core::step::Registry;
use octoflow_core::store::{Page, Run, RunFilter, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A scheduler over a store and a flows directory; its loop runs between
/// [`start`](Self::start) and [`stop`](Self::stop).
pub struct SchedulerRig {
    /// The scheduler.
    pub scheduler: Scheduler,
    /// The node it fires through (its workers are not started).
    pub service: Service,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The flows.
    pub library: Arc<FlowLibrary>,
    dir: Arc<tempfile::TempDir>,
    clock: Arc<dyn Clock>,
    autostart: Autostart,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl SchedulerRig {
    /// A rig over `store` with a fresh data directory and no flows yet.
    ///
    /// # Panics
    /// If the temporary directory cannot be made.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let dir = tempfile::tempdir().expect("temporary data directory");
        std::fs::create_dir_all(dir.path().join("flows")).expect("flows directory");
        Self::assemble(store, clock, Arc::new(dir), Autostart::all())
    }

    /// Writes a flow file (and reloads the flows).
    ///
    /// # Panics
    /// If the file cannot be written or the flows cannot be read.
    #[must_use]
    pub fn flow(self, file: &str, yaml: &str) -> Self {
        std::fs::write(self.dir.path().join("flows").join(file), yaml).expect("write flow file");
        self.rebuilt()
    }

    /// Which flows' file schedules start.
    #[must_use]
    pub fn autostart(mut self, autostart: Autostart) -> Self {
        self.autostart = autostart;
        self.rebuilt()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the scheduler's loop and waits until it has taken up the schedules (at the
    /// clock's current time).
    pub async fn start(mut self) -> Self {
        let shutdown = CancellationToken::new();
        let scheduler = self.scheduler.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { scheduler.run(token).await });
        self.running = Some((shutdown, task));
        self.scheduler.settle().await;
        self
    }

    /// Stops the loop and waits for it to end.
    ///
    /// # Panics
    /// If the loop panicked.
    pub async fn stop(&mut self) {
        if let Some((shutdown, task)) = self.running.take() {
            shutdown.cancel();
            task.await.expect("the scheduler's loop ended cleanly");
        }
    }

    /// A new scheduler (a restarted process) over the same store, flows and clock; its loop
    /// is not started.
    pub async fn restarted(mut self, store: Arc<dyn Store>) -> Self {
        self.stop().await;
        Self::assemble(
            store,
            self.clock.clone(),
            self.dir.clone(),
            self.autostart.clone(),
        )
    }

    /// The runs started by schedule `key`, oldest first.
    ///
    /// # Panics
    /// If the store fails.
    pub async fn runs(&self, key: &str) -> Vec<Run> {
        let page = Page {
            page: 1,
            per_page: 100_000,
        };
        let filter = RunFilter {
            trigger: Some("schedule".to_owned()),
            ..RunFilter::default()
        };
        let mut runs: Vec<Run> = self
            .store
            .list_runs(&filter, page)
            .await
            .expect("list runs")
            .items
            .into_iter()
            .filter(|r| r.trigger.detail["schedule"] == key)
            .collect();
        runs.sort_by_key(|r| (r.created_at, r.id));
        runs
    }

    /// The ticks (`trigger.detail.tick`) of the runs started by schedule `key`, in the order
    /// the runs were made.
    pub async fn ticks(&self, key: &str) -> Vec<String> {
        self.runs(key)
            .await
            .iter()
            .map(|r| r.trigger.detail["tick"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    fn rebuilt(self) -> Self {
        assert!(self.running.is_none(), "change a rig before starting it");
        Self::assemble(
            self.store.clone(),
            self.clock.clone(),
            self.dir.clone(),
            self.autostart.clone(),
        )
    }

    fn assemble(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        dir: Arc<tempfile::TempDir>,
        autostart: Autostart,
    ) -> Self {
        let files = FilesRoot::new(dir.path(), &[], false).expect("files root");
        let library = FlowLibrary::open(
            dir.path().join("flows"),
            Arc::new(Registry::with_core_kinds()),
            dir.path().join("templates"),
            files.clone(),
        )
        .expect("open the flows");
        let catalog: Arc<dyn FlowCatalog> = library.clone();
        let engine =
            Engine::new(store.clone(), EngineConfig::new(files)).with_catalog(catalog.clone());
        let service = Service::new(engine, catalog, ServiceConfig::default());
        let scheduler = Scheduler::new(
            service.clone(),
            library.clone(),
            autostart.clone(),
            clock.clone(),
        );
        Self {
            scheduler,
            service,
            store,
            library,
            dir,
            clock,
            autostart,
            running: None,
        }
    }
}

impl Drop for SchedulerRig {
    fn drop(&mut self) {
        if let Some((shutdown, _)) = &self.running {
            shutdown.cancel();
        }
    }
}
