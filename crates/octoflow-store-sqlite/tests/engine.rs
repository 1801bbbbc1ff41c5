//! The engine on the `SQLite` store: many futures of one run share the write connection.
//! Regression: a step recorded `running` while its children (futures of the same task)
//! waited for the connection used to deadlock, because the connection's lock was held by a
//! future that was not being polled.

use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::{DirCatalog, Engine, EngineConfig, RunRequest};
use octoflow_core::flow::FlowLoader;
use octoflow_core::fs::FilesRoot;
use octoflow_core::step::Registry;
use octoflow_core::store::{RunStatus, RunStore, StateStore, Store};
use octoflow_store_sqlite::SqliteStore;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_flow_loop_of_child_runs_finishes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows/item.yml"),
        "steps:\n  - { name: seen, state: { get: seen, default: 0 } }\n  - { name: mark, state: { set: { seen: '{{ seen + 1 }}' } } }\n",
    )
    .unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("octoflow.db"))
            .await
            .unwrap(),
    );
    let files = FilesRoot::new(dir.path(), &[], false).unwrap();
    let registry = Arc::new(Registry::with_core_kinds());
    let catalog = DirCatalog::new(
        dir.path().join("flows"),
        registry.clone(),
        dir.path().join("templates"),
        files.clone(),
    );
    let engine = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::new(files))
        .with_catalog(Arc::new(catalog));
    let yaml = "name: loop\nsteps: [{ name: each, flow_loop: { name: item, data_key: items, concurrency: 2 } }]\n";
    let flow = Arc::new(
        FlowLoader::new(&registry)
            .load_str(yaml, "loop.yml", None)
            .unwrap(),
    );
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
