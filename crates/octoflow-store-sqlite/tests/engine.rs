//! The engine on the `SQLite` store: many futures of one run share the write connection.
//! Regression: a step recorded `running` while its children (futures of the same task)
//! waited for the connection used to deadlock, because the connection's lock was held by a
//! future that was not being polled.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::{DirCatalog, Engine, EngineConfig, RunRequest};
use octoflow_core::flow::{Flow, FlowLoader};
use octoflow_core::fs::FilesRoot;
use octoflow_core::step::Registry;
use octoflow_core::store::{
    QueueStore, Run, RunId, RunStatus, RunStore, StateStore, StepStatus, Store,
};
use octoflow_store_sqlite::SqliteStore;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// An engine on a new `SQLite` store in `dir`, with the flows of `dir/flows`.
async fn engine_on_sqlite(dir: &Path) -> (Arc<SqliteStore>, Engine, Arc<Registry>) {
    let store = Arc::new(
        SqliteStore::open(&dir.join("octoflow.db"))
            .await
            .expect("open the store"),
    );
    let files = FilesRoot::new(dir, &[], false).expect("files root");
    let registry = Arc::new(Registry::with_core_kinds());
    let catalog = DirCatalog::new(
        dir.join("flows"),
        registry.clone(),
        dir.join("templates"),
        files.clone(),
    );
    let engine = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::new(files))
        .with_catalog(Arc::new(catalog));
    (store, engine, registry)
}

/// A flow from its YAML text.
fn load(registry: &Registry, yaml: &str) -> Arc<Flow> {
    Arc::new(
        FlowLoader::new(registry)
            .load_str(yaml, "test.yml", None)
            .expect("a valid flow"),
    )
}

/// A new run of `flow` without params, accepted (recorded, not started).
async fn accepted(engine: &Engine, flow: &Flow) -> Run {
    engine
        .accept(flow, RunRequest::new(serde_json::Map::new()))
        .await
        .expect("accepted")
}

/// A run's step records as (step, status), in the order they were stored.
async fn steps_of(store: &SqliteStore, id: &RunId) -> Vec<(String, StepStatus)> {
    store
        .step_runs(id)
        .await
        .expect("step runs")
        .into_iter()
        .map(|s| (s.step, s.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_flow_loop_of_child_runs_finishes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows/item.yml"),
        "steps:\n  - { name: seen, state: { get: seen, default: 0 } }\n  - { name: mark, state: { set: { seen: '{{ seen + 1 }}' } } }\n",
    )
    .unwrap();
    let (store, engine, registry) = engine_on_sqlite(dir.path()).await;
    let yaml = "name: loop\nsteps: [{ name: each, flow_loop: { name: item, data_key: items, concurrency: 2 } }]\n";
    let flow = load(&registry, yaml);
    let mut request = RunRequest::new(serde_json::Map::new());
    request.input = json!({ "items": (0..300).collect::<Vec<u32>>() });
    let run = engine.accept(&flow, request).await.unwrap();
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        engine.execute(flow, run, CancellationToken::new(), None),
    )
    .await
    .expect("the run ended")
    .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.data["each"].as_array().unwrap().len(), 300);
    let children = store
        .list_runs(
            &octoflow_core::store::RunFilter::default(),
            octoflow_core::store::Page {
                page: 1,
                per_page: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(children.total, 301);
    // Two children at a time read and write `seen`: some updates overlap, none is lost
    // from the store's point of view (every set is one transaction).
    assert!(store.state("item").await.unwrap()["seen"].as_u64().unwrap() > 150);
}

/// A step that ends quickly leaves its record to the run, which writes it at once while
/// another step still runs (a record never waits for a long step), and writes the last
/// steps' records with the run's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_records_are_written_while_the_run_goes_on_and_with_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine, registry) = engine_on_sqlite(dir.path()).await;
    let yaml = "name: pair\nsteps:\n  - { name: slow, wait: { until: 'false' } }\n  - { name: quick, depends: [], state: { get: a, default: 1 } }\n  - { name: last, depends: [slow, quick], state: { get: b, default: 2 } }\n";
    let flow = load(&registry, yaml);
    let run = accepted(&engine, &flow).await;
    let id = run.id;
    let cancel = CancellationToken::new();
    let execution = tokio::spawn({
        let (engine, flow, cancel) = (engine.clone(), flow.clone(), cancel.clone());
        async move { engine.execute(flow, run, cancel, None).await }
    });
    // `quick` is stored while `slow` sleeps: the run is still going when its record shows.
    let quick = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let steps = store.step_runs(&id).await.unwrap();
            if let Some(quick) = steps.into_iter().find(|s| s.step == "quick") {
                return quick;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the quick step's record is stored while the run goes on");
    assert_eq!(quick.status, StepStatus::Succeeded);
    assert_eq!(
        store.run(&id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    cancel.cancel();
    let ended = execution.await.unwrap().unwrap();
    assert_eq!(ended.status, RunStatus::Cancelled);
    // The step skipped at the end is stored with the run's end, each step once.
    let steps = steps_of(&store, &id).await;
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(steps.contains(&("quick".to_owned(), StepStatus::Succeeded)));
    assert!(steps.contains(&("slow".to_owned(), StepStatus::Cancelled)));
    assert!(steps.contains(&("last".to_owned(), StepStatus::Skipped)));
}

/// The last step's record is stored with the run's end: once the run is recorded as ended,
/// its steps are there, in the order they ran — and after a failure, before the
/// `on_failure` steps'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_step_is_stored_with_the_end_and_before_recovery_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine, registry) = engine_on_sqlite(dir.path()).await;
    let yaml = "name: three\nsteps:\n  - { name: one, state: { get: a, default: 1 } }\n  - { name: two, state: { get: b, default: 2 } }\n  - { name: three, wait: { until: 'false', timeout: 10ms } }\non_failure:\n  - { name: tidy, state: { get: c, default: 3 } }\n";
    let flow = load(&registry, yaml);
    let run = accepted(&engine, &flow).await;
    let ended = engine
        .execute(flow, run, CancellationToken::new(), None)
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Failed, "{:?}", ended.error);
    let steps = steps_of(&store, &ended.id).await;
    assert_eq!(
        steps,
        [
            ("one".to_owned(), StepStatus::Succeeded),
            ("two".to_owned(), StepStatus::Succeeded),
            ("three".to_owned(), StepStatus::Failed),
            ("tidy".to_owned(), StepStatus::Succeeded),
        ]
    );
}

/// Two handles on one file, as two nodes: node A runs a run; its lease is taken over (the
/// run handed back and claimed by node B). A's lease renewal finds the lease lost and stops
/// its steps; every write A still tries is refused, so the run is B's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_executor_stops_when_its_run_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (_, engine, registry) = engine_on_sqlite(dir.path()).await;
    let mut config = engine.config().clone();
    config.renew_every = Duration::from_millis(50);
    let engine = Engine::new(engine.store().clone(), config);
    let other = SqliteStore::open(&dir.path().join("octoflow.db"))
        .await
        .unwrap();

    let flow = load(
        &registry,
        "name: slow\nsteps:\n  - { name: wait, wait: { until: 'false', interval: 20ms } }\n",
    );
    let run = accepted(&engine, &flow).await;
    let id = run.id;
    let executing = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .execute(flow, run, CancellationToken::new(), None)
                .await
        }
    });
    // A runs its step (recorded `running` once it lasts 100 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while steps_of(&other, &id).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node A never started its step"
        );
        tokio::task::yield_now().await;
    }

    // Node B finds the lease ended (as if A had stopped renewing), hands the run back and
    // claims it.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let expired = other.expired_leases(later).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert!(other.requeue(&expired[0].fence()).await.unwrap());
    let claimed = other
        .claim("node-b", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].generation, 2);

    let stopped = tokio::time::timeout(Duration::from_secs(5), executing)
        .await
        .expect("node A stopped its run")
        .unwrap();
    assert!(
        matches!(stopped, Err(octoflow_core::store::StoreError::Fenced { run }) if run == id),
        "{stopped:?}"
    );
    let run = other.run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running, "B runs it");
    assert_eq!(run.node.as_deref(), Some("node-b"));
    // A recorded its step `running` before the takeover; its end was refused.
    assert_eq!(
        steps_of(&other, &id).await,
        [("wait".to_owned(), StepStatus::Running)],
        "nothing of A's was recorded after the takeover"
    );
}
