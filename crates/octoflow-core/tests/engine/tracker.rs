//! Tracker documents: written from the start, moving step by step, valid, atomic.

use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::{Engine, EngineConfig, RunRequest};
use octoflow_core::flow::FlowLoader;
use octoflow_core::fs::FilesRoot;
use octoflow_core::store::{MemoryStore, RunStatus, RunStore};
use octoflow_core::tracker::{Tracker, TrackerWriter};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::kinds::{counter, registry};

const FLOW: &str = r"
name: create_asset
steps:
  - { name: generate_mock_manifest, echo: { value: { id: 7 } } }
  - { name: retrieve_image_from_origin, nap: { ms: 400 } }
  - { name: save_data, echo: { value: 'saved {{ generate_mock_manifest.id }}' } }
";

fn read(path: &std::path::Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_file_follows_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(counter());
    let flow = Arc::new(
        FlowLoader::new(&registry)
            .load_str(FLOW, "create_asset.yml", None)
            .unwrap(),
    );
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::new(
        store.clone(),
        EngineConfig::new(FilesRoot::new(dir.path(), &[], false).unwrap()),
    );
    let trackers = dir.path().join("trackers");
    let run = engine
        .accept(&flow, RunRequest::new(serde_json::Map::new()))
        .await
        .unwrap();
    let path = trackers.join(format!("{}.json", run.id));
    let writer = TrackerWriter::new(trackers.clone(), &flow);
    let task = {
        let (engine, flow) = (engine.clone(), flow.clone());
        tokio::spawn(async move {
            engine
                .execute(flow, run, CancellationToken::new(), Some(writer))
                .await
        })
    };

    // While step 2 naps, the file shows it as current and step 1 as done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let during = loop {
        if let Some(doc) = read(&path)
            && doc["job_management"]["current_step"] == json!(2)
        {
            break doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tracker never showed step 2"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(during["job_management"]["job_status"], json!("running"));
    assert_eq!(
        during["job_management"]["previous_step_status"],
        json!("succeeded")
    );
    assert_eq!(
        during["context"]["generate_mock_manifest"],
        json!({"id": 7})
    );
    assert_eq!(
        during["job_management"]["steps"],
        json!({"1": "generate_mock_manifest", "2": "retrieve_image_from_origin", "3": "save_data"})
    );

    let run = task.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let done = loop {
        if let Some(doc) =
            read(&path).filter(|d| d["job_management"]["job_status"] == json!("succeeded"))
        {
            break doc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tracker never showed the end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(done["job_management"]["current_step"], json!(3));
    assert_eq!(done["context"]["save_data"], json!("saved 7"));
    let leftovers: Vec<_> = std::fs::read_dir(&trackers)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != path.file_name().unwrap())
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // The API's view, rebuilt from the store, agrees.
    let steps: Vec<String> = flow.steps.iter().map(|s| s.name.clone()).collect();
    let record = store.run(&run.id).await.unwrap().unwrap();
    let step_runs = store.step_runs(&run.id).await.unwrap();
    let rebuilt = Tracker::from_records(&record, &steps, &step_runs)
        .validate()
        .unwrap();
    assert_eq!(rebuilt["job_management"], done["job_management"]);
    assert_eq!(rebuilt["context"], done["context"]);
}

#[test]
fn invalid_documents_are_refused() {
    let run = octoflow_core::store::Run {
        id: octoflow_core::store::RunId::new(),
        flow: "BAD NAME".to_owned(),
        flow_version: String::new(),
        status: RunStatus::Queued,
        params: json!({}),
        trigger: octoflow_core::store::TriggerInfo::new("manual"),
        concurrency_key: None,
        parent_run_id: None,
        created_at: chrono::Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
        data: Value::Null,
        node: None,
        message: None,
        progress: None,
        generation: 0,
    };
    let err = Tracker::new(&run, &["a".to_owned()])
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("/job_name"), "{err}");
}
