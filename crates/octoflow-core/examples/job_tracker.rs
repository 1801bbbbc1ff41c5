//! The engine as a library, where programs used the job tracker library: loads the job
//! tracker example's `create_asset` flow, runs it in this process with the built-in step
//! kinds, keeps its tracker file up to date, updates the run's context while it runs, and
//! prints the final tracker document.
//!
//! ```sh
//! cargo run -p octoflow-core --example job_tracker [DATA_DIR]
//! ```
//!
//! `DATA_DIR` defaults to `examples/job-tracker/data`; the tracker file is written to its
//! `trackers/`, the asset to its `storage/`.
#![allow(clippy::print_stdout)] // a program whose output is what it prints

use std::path::{Path, PathBuf};
use std::sync::Arc;

use octoflow_core::engine::{Engine, EngineConfig, Observer, Observers, RunEvent, RunRequest};
use octoflow_core::flow::FlowLoader;
use octoflow_core::fs::FilesRoot;
use octoflow_core::step::Registry;
use octoflow_core::store::MemoryStore;
use octoflow_core::tracker::{self, TrackerWriter};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Wakes the program when the run has started (and can take context updates).
struct Started(Arc<Notify>);

impl Observer for Started {
    fn on_event(&self, event: &RunEvent<'_>) {
        if let RunEvent::RunStarted(_) = event {
            self.0.notify_one();
        }
    }
}

/// Runs `create_asset` on the image `source` in `data` and returns the final tracker
/// document as written to `<data>/trackers/<run id>.json`.
async fn ingest(data: &Path, asset_id: &str, source: &str) -> Result<Value, Error> {
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    let flow = FlowLoader::new(&registry)
        .load_file(&data.join("flows/create_asset.yml"))
        .map_err(|problems| problems.to_string())?;
    let flow = Arc::new(flow);
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        EngineConfig::new(FilesRoot::new(data, &[], false)?),
    );

    let params = json!({ "asset_id": asset_id, "source": source });
    let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
    let run = engine.accept(&flow, RunRequest::new(params)).await?;
    // As the library's `init_tracker_file`: the file exists before the job starts.
    let trackers = data.join("trackers");
    let steps: Vec<String> = flow.steps.iter().map(|s| s.name.clone()).collect();
    tracker::write_accepted(&trackers, &run, &steps)?;
    println!("accepted run {} of `{}`", run.id, flow.name);

    let started = Arc::new(Notify::new());
    let observer: Arc<dyn Observer> = Arc::new(Observers(vec![
        TrackerWriter::new(trackers.clone(), &flow),
        Arc::new(Started(started.clone())),
    ]));
    let execution = tokio::spawn({
        let (engine, flow, run) = (engine.clone(), flow.clone(), run.clone());
        async move {
            engine
                .execute(flow, run, CancellationToken::new(), Some(observer))
                .await
        }
    });

    // A worker of the ingest pipeline adds what it knows to the job's context.
    started.notified().await;
    let update = json!({ "operator": "job-tracker-example", "priority": 1 });
    let context = engine
        .update_context(&run.id, update.as_object().cloned().unwrap_or_default())
        .await?;
    println!("context updated: operator = {}", context["operator"]);

    let ended = execution.await??;
    println!("run {} {}", ended.id, ended.status);
    // The tracker's writer finishes its last write off the runtime: read once it is there.
    let path = trackers.join(format!("{}.json", run.id));
    for _ in 0..100 {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        if doc["job_management"]["job_status"] == ended.status.as_str() {
            return Ok(doc);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(format!("tracker file `{}` never showed the end", path.display()).into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let data = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/job-tracker/data"),
        PathBuf::from,
    );
    let doc = ingest(&data, "a-1", "origin/page-0001.jp2").await?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_program_runs_the_flow_and_updates_its_tracker() {
        let dir = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/job-tracker/data");
        copy_dir(&example, dir.path());
        let doc = ingest(dir.path(), "a-7", "origin/page-0001.jp2")
            .await
            .unwrap();
        assert_eq!(doc["job_name"], "create_asset");
        assert_eq!(doc["job_management"]["job_status"], "succeeded");
        assert_eq!(doc["job_management"]["current_step"], 6);
        assert_eq!(doc["context"]["operator"], "job-tracker-example");
        assert!(dir.path().join("storage/a-7/image.jp2").is_file());
    }
}
