//! The run itself: open the store, end the runs a dead process left `running`, accept and
//! execute the run with the terminal view (and the tracker file, when configured) watching,
//! and cancel it on Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use octoflow_core::engine::{
    Engine, EngineConfig, FlowCatalog, HandedBack, Observer, Observers, RunRequest,
    recover_interrupted,
};
use octoflow_core::flow::Flow;
use octoflow_core::secrets::Secrets;
use octoflow_core::store::{Run, RunStatus, StepRun};
use octoflow_core::tracker::{Tracker, TrackerWriter};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::input::accept_error;
use crate::config::{Database, StoreSection};
use crate::live::Progress;
use crate::node::Node;
use crate::output;

/// Everything a run needs once its flow and params are checked.
pub(super) struct Job {
    pub(super) engine: EngineConfig,
    pub(super) secrets: Secrets,
    pub(super) catalog: Arc<dyn FlowCatalog>,
    pub(super) node: Node,
    pub(super) flow: Arc<Flow>,
    pub(super) request: RunRequest,
    pub(super) progress: Arc<Progress>,
    pub(super) tracker_dir: Option<PathBuf>,
    pub(super) json: bool,
}

/// A run that ended, and what is left to do once the runtime is down.
pub(super) struct Ended {
    run: Run,
    steps: Vec<StepRun>,
    flow: Arc<Flow>,
    tracker_dir: Option<PathBuf>,
}

impl Job {
    /// Accepts and runs the flow, recording into the store `database` names.
    pub(super) async fn execute(self, database: Database, settings: StoreSection) -> Result<Ended> {
        let store = crate::store::open_database(database, &settings).await?;
        let node = &self.node;
        let (data_dir, judge) = (self.engine.files.data_dir().to_owned(), node.clone());
        tokio::task::spawn_blocking(move || {
            octoflow_core::process_groups::kill_left_behind(&data_dir, |n| judge.is_alive(n))
        })
        .await
        .context("cannot look for processes a stopped process left")?;
        let handed =
            recover_interrupted(store.as_ref(), self.catalog.as_ref(), |n| node.is_alive(n))
                .await
                .context("cannot check for interrupted runs")?;
        for (id, handed) in handed {
            let now = match handed {
                HandedBack::Requeued => "queued again (its flow says `on_interrupt: retry`)",
                HandedBack::Interrupted => "failed: interrupted",
                HandedBack::Unchanged => continue,
            };
            self.progress.info(&format!(
                "note: run {id} was left running by a process that is gone; it is now {now}"
            ));
        }

        let engine = Engine::new(store.clone(), self.engine)
            .with_secrets(&self.secrets)
            .with_catalog(self.catalog);
        let run = engine
            .accept(&self.flow, self.request)
            .await
            .map_err(accept_error)?;
        let id = run.id;
        let mut observers: Vec<Arc<dyn Observer>> = vec![self.progress.clone()];
        if let Some(dir) = &self.tracker_dir {
            observers.push(TrackerWriter::new(dir.clone(), &self.flow));
        }
        let cancel = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(cancel.clone(), self.progress));
        let observer: Arc<dyn Observer> = Arc::new(Observers(observers));
        let finished = engine
            .execute(self.flow.clone(), run, cancel, Some(observer))
            .await;
        signals.abort();
        let finished = finished.with_context(|| format!("cannot record run {id}"))?;

        let run = store.run(&id).await?.unwrap_or(finished);
        let steps = store.step_runs(&id).await?;
        if self.json {
            let mut value = serde_json::to_value(&run)?;
            if let Value::Object(map) = &mut value {
                map.insert("steps".to_owned(), serde_json::to_value(&steps)?);
            }
            output::stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
        }
        Ok(Ended {
            run,
            steps,
            flow: self.flow,
            tracker_dir: self.tracker_dir,
        })
    }
}

impl Ended {
    /// 0 when the run succeeded, 1 otherwise.
    pub(super) fn exit_code(&self) -> ExitCode {
        if self.run.status == RunStatus::Succeeded {
            ExitCode::SUCCESS
        } else {
            output::failure()
        }
    }

    /// Writes the run's final tracker document, when `tracker_dir` is set.
    pub(super) fn write_tracker(&self) -> Result<()> {
        let Some(dir) = &self.tracker_dir else {
            return Ok(());
        };
        let names: Vec<String> = self.flow.steps.iter().map(|s| s.name.clone()).collect();
        let doc = Tracker::from_records(&self.run, &names, &self.steps);
        let value = doc
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid tracker document: {e}"))?;
        let path = dir.join(format!("{}.json", self.run.id));
        let bytes = serde_json::to_vec_pretty(&value)?;
        octoflow_core::fs::write_atomic(&path, &bytes)
            .with_context(|| format!("cannot write tracker file `{}`", path.display()))
    }
}

/// The first Ctrl-C or SIGTERM cancels the run gracefully; a second one exits at once.
async fn cancel_on_signal(cancel: CancellationToken, progress: Arc<Progress>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("Cannot listen for signals; Ctrl-C will end the process at once.");
        return;
    };
    let mut first = true;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if first {
            first = false;
            progress.note("cancelling the run… (press Ctrl-C again to exit at once)");
            cancel.cancel();
        } else {
            progress.note("exiting at once; the next start marks the run `interrupted`");
            std::process::exit(130);
        }
    }
}
