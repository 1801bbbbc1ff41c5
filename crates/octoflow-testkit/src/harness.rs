//! Runs inline YAML flows through the real engine, on an in-memory store and a temporary
//! data directory, and asserts on what was recorded.
//!
//! ```ignore
//! Harness::new(registry)
//!     .flow("steps: [{name: a, set_fact: {value: 1}}]")
//!     .run()
//!     .await
//!     .assert_status(RunStatus::Succeeded)
//!     .assert_data("a", json!(1));
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::{DirCatalog, Engine, EngineConfig, RunRequest};
use octoflow_core::flow::{Flow, FlowLoader};
use octoflow_core::fs::FilesRoot;
use octoflow_core::secrets::Secrets;
use octoflow_core::step::Registry;
use octoflow_core::store::{
    LogLine, MemoryStore, Page, Run, RunFilter, RunStatus, RunStore, StateStore, StepRun,
    StepStatus,
};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// Builds and runs one flow.
pub struct Harness {
    registry: Arc<Registry>,
    dir: tempfile::TempDir,
    yaml: String,
    params: Map<String, Value>,
    input: Value,
    cancel_after: Option<Duration>,
    kill_grace: Duration,
    max_result_bytes: Option<usize>,
    secrets: Secrets,
}

impl Harness {
    /// A harness with these kinds and a fresh data directory (with `templates/`).
    ///
    /// # Panics
    /// If the temporary directory cannot be made.
    pub fn new(registry: Registry) -> Self {
        let dir = tempfile::tempdir().expect("temporary data directory");
        std::fs::create_dir_all(dir.path().join("templates")).expect("templates directory");
        std::fs::create_dir_all(dir.path().join("flows")).expect("flows directory");
        Self {
            registry: Arc::new(registry),
            dir,
            yaml: String::new(),
            params: Map::new(),
            input: Value::Null,
            cancel_after: None,
            kill_grace: Duration::from_secs(5),
            max_result_bytes: None,
            secrets: Secrets::default(),
        }
    }

    /// The flow's YAML (a `name` is added when missing).
    #[must_use]
    pub fn flow(mut self, yaml: &str) -> Self {
        yaml.clone_into(&mut self.yaml);
        self
    }

    /// A param.
    #[must_use]
    pub fn param(mut self, name: &str, value: Value) -> Self {
        self.params.insert(name.to_owned(), value);
        self
    }

    /// The run's input payload.
    #[must_use]
    pub fn input(mut self, value: Value) -> Self {
        self.input = value;
        self
    }

    /// Writes a file into the data directory before the run.
    ///
    /// # Panics
    /// If the file cannot be written.
    #[must_use]
    pub fn file(self, relative: &str, contents: &str) -> Self {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent directory");
        }
        std::fs::write(path, contents).expect("fixture file");
        self
    }

    /// Another flow, in `flows/<name>.yml`, for `flow` and `flow_loop` steps.
    #[must_use]
    pub fn child_flow(self, name: &str, yaml: &str) -> Self {
        self.file(&format!("flows/{name}.yml"), yaml)
    }

    /// Secrets, as `secrets.yml` text.
    ///
    /// # Panics
    /// If the text is not a valid secrets list.
    #[must_use]
    pub fn secrets(mut self, yaml: &str) -> Self {
        self.secrets = Secrets::parse(yaml, "secrets.yml", &std::collections::BTreeMap::new())
            .expect("valid secrets");
        self
    }

    /// Cancels the run after this long.
    #[must_use]
    pub fn cancel_after(mut self, after: Duration) -> Self {
        self.cancel_after = Some(after);
        self
    }

    /// Grace between SIGTERM and SIGKILL for cancelled processes.
    #[must_use]
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The most bytes a step's result may take in its record (as JSON); a larger result is
    /// written to a file in the run's workspace instead.
    #[must_use]
    pub fn max_result_bytes(mut self, max: usize) -> Self {
        self.max_result_bytes = Some(max);
        self
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn files(&self) -> FilesRoot {
        FilesRoot::new(self.dir.path(), &[], false).expect("files root")
    }

    /// Loads the flow; `Err` holds each problem as `file:line:column: path: message`.
    pub fn load(&self) -> Result<Flow, Vec<String>> {
        FlowLoader::new(&self.registry)
            .with_templates_dir(self.dir.path().join("templates"))
            .with_files(self.files())
            .load_str(&self.yaml, "flow.yml", Some("test"))
            .map_err(|p| p.lines().collect())
    }

    /// Runs the flow to its end.
    ///
    /// # Panics
    /// If the flow does not load or its params are refused (use [`Harness::load`] to test
    /// load errors).
    pub async fn run(self) -> Report {
        let flow = Arc::new(
            self.load()
                .unwrap_or_else(|p| panic!("flow does not load:\n{}", p.join("\n"))),
        );
        let store = Arc::new(MemoryStore::new());
        let mut config = EngineConfig::new(self.files());
        config.kill_grace = self.kill_grace;
        if let Some(max) = self.max_result_bytes {
            config.max_result_bytes = max;
        }
        // Test processes need PATH to find programs; the harness stands in for the binary's
        // config module here.
        #[allow(clippy::disallowed_methods)]
        let path = std::env::var("PATH").unwrap_or_default();
        config.env = std::iter::once(("PATH".to_owned(), path)).collect();
        let catalog = DirCatalog::new(
            self.dir.path().join("flows"),
            self.registry.clone(),
            self.dir.path().join("templates"),
            self.files(),
        );
        let engine = Engine::new(store.clone(), config)
            .with_secrets(&self.secrets)
            .with_catalog(Arc::new(catalog));
        let mut request = RunRequest::new(self.params.clone());
        request.input = self.input.clone();
        let run = engine.accept(&flow, request).await.expect("run accepted");
        let cancel = CancellationToken::new();
        if let Some(after) = self.cancel_after {
            let token = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                token.cancel();
            });
        }
        let run = engine
            .execute(flow, run, cancel, None)
            .await
            .expect("run recorded");
        let steps = store.step_runs(&run.id).await.expect("step runs");
        let logs = store.logs(&run.id, None, 0).await.expect("logs");
        let page = Page {
            page: 1,
            per_page: 10_000,
        };
        let mut others = store
            .list_runs(&RunFilter::default(), page)
            .await
            .expect("runs")
            .items;
        others.retain(|r| r.id != run.id);
        others.sort_by_key(|r| r.created_at);
        let state = store.state(&run.flow).await.expect("state");
        Report {
            run,
            steps,
            logs,
            others,
            state,
            dir: self.dir,
        }
    }
}

/// What a run recorded.
pub struct Report {
    /// The final run record.
    pub run: Run,
    /// Every step run, in start order.
    pub steps: Vec<StepRun>,
    /// Every log line.
    pub logs: Vec<LogLine>,
    /// Every other run the store holds (child runs), oldest first.
    pub others: Vec<Run>,
    /// The flow's state as the store keeps it after the run.
    pub state: Map<String, Value>,
    dir: tempfile::TempDir,
}

impl Report {
    /// The data directory the run used.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Asserts the run's status, showing the run on failure.
    ///
    /// # Panics
    /// If the status differs.
    #[track_caller]
    pub fn assert_status(&self, status: RunStatus) -> &Self {
        assert_eq!(
            self.run.status, status,
            "run: {:#?}\nsteps: {:#?}",
            self.run, self.steps
        );
        self
    }

    /// Asserts one key of the final data.
    ///
    /// # Panics
    /// If the value differs.
    #[track_caller]
    #[allow(clippy::needless_pass_by_value)] // `json!(…)` at the call site reads best
    pub fn assert_data(&self, key: &str, expected: Value) -> &Self {
        assert_eq!(
            self.run.data.get(key),
            Some(&expected),
            "data: {:#}",
            self.run.data
        );
        self
    }

    /// The last attempt of a step.
    ///
    /// # Panics
    /// If the step never ran.
    #[track_caller]
    pub fn step(&self, name: &str) -> &StepRun {
        self.steps
            .iter()
            .rfind(|s| s.step == name)
            .unwrap_or_else(|| panic!("step `{name}` has no record; steps: {:#?}", self.steps))
    }

    /// Asserts the last attempt's status of a step.
    ///
    /// # Panics
    /// If the status differs.
    #[track_caller]
    pub fn assert_step(&self, name: &str, status: StepStatus) -> &Self {
        let step = self.step(name);
        assert_eq!(step.status, status, "step: {step:#?}");
        self
    }

    /// The log lines of a step, joined by newlines.
    pub fn log_text(&self, step: &str) -> String {
        self.logs
            .iter()
            .filter(|l| l.step == step)
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
