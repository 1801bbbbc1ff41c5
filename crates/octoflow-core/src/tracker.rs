//! Job tracker documents (SPEC §13): a run as the tracker file its users know — the steps
//! by number, the current step, the job's status, the previous step's status and the run's
//! data as context. Every document is checked against `schemas/tracker.schema.json` before it
//! is handed out or written; an invalid one is never written.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::instrument::WithSubscriber;

use crate::engine::{Observer, RunEvent};
use crate::flow::Flow;
use crate::store::{Run, RunStatus, StepRun, StepStatus};

/// The schema every document must satisfy.
pub const SCHEMA: &str = include_str!("../schemas/tracker.schema.json");

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::validator_for(&schema).map_err(|e| e.to_string())
});

/// A job tracker document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    /// The run id.
    pub job_ticket_id: String,
    /// The flow.
    pub job_name: String,
    /// Steps and statuses.
    pub job_management: JobManagement,
    /// The run's data.
    pub context: Value,
    /// When the run was created (`%Y-%m-%d %H:%M:%S`, local time).
    pub creation_date: String,
    /// When the document last changed.
    pub last_modified_date: String,
}

/// The `job_management` part of a tracker document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobManagement {
    /// 1-based number of the step running or last run.
    pub current_step: usize,
    /// Step names by number, `"1"`, `"2"`, … in flow order.
    pub steps: Map<String, Value>,
    /// The run's status (`""` before it starts).
    pub job_status: String,
    /// The status of the step that ended last (`""` before any).
    pub previous_step_status: String,
}

/// A document that does not satisfy the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tracker document is not valid: {0}")]
pub struct TrackerError(pub String);

fn date(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Tracker {
    /// The document of a run that has not started: step 1, empty statuses.
    pub fn new(run: &Run, steps: &[String]) -> Self {
        let numbered = steps
            .iter()
            .enumerate()
            .map(|(i, name)| ((i + 1).to_string(), Value::String(name.clone())))
            .collect();
        Self {
            job_ticket_id: run.id.to_string(),
            job_name: run.flow.clone(),
            job_management: JobManagement {
                current_step: 1,
                steps: numbered,
                job_status: String::new(),
                previous_step_status: String::new(),
            },
            context: Value::Object(Map::new()),
            creation_date: date(run.created_at),
            last_modified_date: date(run.created_at),
        }
    }

    /// The document of a recorded run, from its record and step runs.
    pub fn from_records(run: &Run, steps: &[String], step_runs: &[StepRun]) -> Self {
        let mut doc = Self::new(run, steps);
        if run.status != RunStatus::Queued {
            run.status
                .as_str()
                .clone_into(&mut doc.job_management.job_status);
        }
        let ran = step_runs.iter().filter(|s| s.status != StepStatus::Skipped);
        if let Some(last) = ran.clone().next_back() {
            doc.set_current(&last.step);
        }
        if let Some(done) = step_runs.iter().rfind(|s| s.finished_at.is_some()) {
            done.status
                .as_str()
                .clone_into(&mut doc.job_management.previous_step_status);
        }
        if run.data.is_object() {
            doc.context = run.data.clone();
        }
        let last = step_runs
            .iter()
            .filter_map(|s| s.finished_at.or(Some(s.started_at)))
            .max();
        let modified = [run.finished_at, run.started_at, last]
            .into_iter()
            .flatten()
            .max();
        doc.last_modified_date = date(modified.unwrap_or(run.created_at));
        doc
    }

    fn set_current(&mut self, step: &str) {
        let found = self
            .job_management
            .steps
            .iter()
            .find(|(_, name)| name.as_str() == Some(step));
        if let Some(n) = found.and_then(|(n, _)| n.parse().ok()) {
            self.job_management.current_step = n;
        }
    }

    /// Checks the document against the schema.
    pub fn validate(&self) -> Result<Value, TrackerError> {
        let value = serde_json::to_value(self).map_err(|e| TrackerError(e.to_string()))?;
        let validator = VALIDATOR
            .as_ref()
            .map_err(|e| TrackerError(format!("schema: {e}")))?;
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(TrackerError(errors.join("; ")))
        }
    }
}

/// Writes the document of an accepted run that has not started ([`Tracker::new`]) as
/// `<dir>/<run-id>.json`, unless the file is there already (the run's own writes may be
/// ahead of it). Blocking.
///
/// # Errors
/// When the file cannot be written.
pub fn write_accepted(dir: &Path, run: &Run, steps: &[String]) -> std::io::Result<()> {
    let doc = Tracker::new(run, steps)
        .validate()
        .map_err(std::io::Error::other)?;
    let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
    crate::fs::write_new(&dir.join(format!("{}.json", run.id)), &bytes)?;
    Ok(())
}

/// Keeps `<dir>/<run-id>.json` up to date while a run goes: rewritten atomically at every
/// step change, only when it satisfies the schema. Writes happen off the runtime, in order.
pub struct TrackerWriter {
    dir: PathBuf,
    doc: Mutex<Option<Tracker>>,
    steps: Vec<String>,
    tx: mpsc::UnboundedSender<(PathBuf, Vec<u8>)>,
}

impl TrackerWriter {
    /// A writer for runs of `flow` into `dir` (created when missing). Must be called inside a
    /// tokio runtime: it starts the task that writes the files.
    pub fn new(dir: PathBuf, flow: &Flow) -> Arc<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(PathBuf, Vec<u8>)>();
        let writer = async move {
            while let Some((path, bytes)) = rx.recv().await {
                let written =
                    tokio::task::spawn_blocking(move || crate::fs::write_atomic(&path, &bytes))
                        .await;
                if let Ok(Err(error)) = written {
                    tracing::warn!(error = %error, "Cannot write tracker file.");
                }
            }
        };
        tokio::spawn(writer.with_current_subscriber());
        let steps = flow.steps.iter().map(|s| s.name.clone()).collect();
        Arc::new(Self {
            dir,
            doc: Mutex::new(None),
            steps,
            tx,
        })
    }

    fn update(&self, change: impl FnOnce(&mut Tracker)) {
        let mut guard = self
            .doc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(doc) = guard.as_mut() else { return };
        change(doc);
        doc.last_modified_date = date(Utc::now());
        match doc.validate() {
            Ok(value) => {
                let path = self.dir.join(format!("{}.json", doc.job_ticket_id));
                let bytes = serde_json::to_vec_pretty(&value).unwrap_or_default();
                let _ = self.tx.send((path, bytes));
            }
            Err(error) => {
                tracing::error!(run_id = %doc.job_ticket_id, error = %error, "Tracker document not written.");
            }
        }
    }
}

impl Observer for TrackerWriter {
    fn wants_data(&self) -> bool {
        true
    }

    fn on_event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::RunStarted(run) => {
                {
                    let mut guard = self
                        .doc
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *guard = Some(Tracker::new(run, &self.steps));
                }
                self.update(|doc| {
                    RunStatus::Running
                        .as_str()
                        .clone_into(&mut doc.job_management.job_status);
                    if run.data.is_object() {
                        doc.context = run.data.clone();
                    }
                });
            }
            RunEvent::StepStarted { step, .. } => self.update(|doc| doc.set_current(step)),
            RunEvent::StepFinished { status, .. } => {
                if *status != StepStatus::Skipped {
                    self.update(|doc| {
                        status
                            .as_str()
                            .clone_into(&mut doc.job_management.previous_step_status);
                    });
                }
            }
            RunEvent::DataChanged(data) => {
                self.update(|doc| doc.context = Value::Object((*data).clone()));
            }
            RunEvent::LogsStored { .. } => {}
            RunEvent::RunFinished(run) => self.update(|doc| {
                run.status
                    .as_str()
                    .clone_into(&mut doc.job_management.job_status);
                doc.context = run.data.clone();
            }),
        }
    }
}
