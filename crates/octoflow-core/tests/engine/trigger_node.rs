//! A node with its workers and triggers over a data directory that outlives it (so a test
//! can stop the node and start another over the same files and store), for the folder-watch
//! and flow-trigger tests.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::{Engine, EngineConfig, FlowCatalog, RunRequest};
use octoflow_core::fs::FilesRoot;
use octoflow_core::library::FlowLibrary;
use octoflow_core::service::{Service, ServiceConfig};
use octoflow_core::step::Registry;
use octoflow_core::store::{Page, Run, RunFilter, Store};
use octoflow_core::triggers::{self, Triggers};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub(crate) struct TriggerNode {
    pub(crate) service: Service,
    pub(crate) library: Arc<FlowLibrary>,
    shutdown: CancellationToken,
    workers: tokio::task::JoinHandle<()>,
    triggers: Triggers,
}

fn registry() -> Arc<Registry> {
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    Arc::new(registry)
}

/// Writes the flows into `<data>/flows/` (replacing files of the same names).
pub(crate) fn write_flows(data: &Path, flows: &[(&str, &str)]) {
    let dir = data.join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, yaml) in flows {
        std::fs::write(dir.join(format!("{name}.yml")), yaml).unwrap();
    }
}

impl TriggerNode {
    /// Starts a node over `data` (its flows in `<data>/flows/`) and `store`, with workers,
    /// folder watches and flow triggers running.
    pub(crate) fn start(data: &Path, store: Arc<dyn Store>) -> Self {
        let files = FilesRoot::new(data, &[], false).unwrap();
        let library = FlowLibrary::open(
            data.join("flows"),
            registry(),
            data.join("templates"),
            files.clone(),
        )
        .unwrap();
        let catalog: Arc<dyn FlowCatalog> = library.clone();
        let engine = Engine::new(store, EngineConfig::new(files)).with_catalog(catalog.clone());
        let service = Service::new(engine, catalog, ServiceConfig::default());
        let shutdown = CancellationToken::new();
        let workers = tokio::spawn({
            let service = service.clone();
            let shutdown = shutdown.clone();
            async move { service.run_workers(shutdown).await }
        });
        let triggers = triggers::start(&service, &library, shutdown.clone());
        Self {
            service,
            library,
            shutdown,
            workers,
            triggers,
        }
    }

    /// Stops watching, lets the workers drain and stops the flow triggers.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.workers.await.unwrap();
        self.triggers.stop().await;
    }

    /// Starts a run of `flow` by hand.
    pub(crate) async fn submit(&self, flow: &str, params: Value) -> Run {
        let flow = self.library.flow(flow).unwrap();
        let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
        let admitted = self
            .service
            .start(&flow, RunRequest::new(params), None)
            .await
            .unwrap();
        admitted.run().clone()
    }

    /// The runs of `flow`, oldest first.
    pub(crate) async fn runs(&self, flow: &str) -> Vec<Run> {
        let filter = RunFilter {
            flow: Some(flow.to_owned()),
            ..RunFilter::default()
        };
        let page = Page {
            page: 1,
            per_page: 1000,
        };
        let mut runs = self
            .service
            .store()
            .list_runs(&filter, page)
            .await
            .unwrap()
            .items;
        runs.reverse();
        runs
    }

    /// Waits (bounded) until `flow` has `count` runs, all ended; returns them, oldest first.
    pub(crate) async fn until_ended(&self, flow: &str, count: usize) -> Vec<Run> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let runs = self.runs(flow).await;
            if runs.len() >= count && runs.iter().all(|r| r.status.is_final()) {
                assert_eq!(runs.len(), count, "{flow}: {runs:#?}");
                return runs;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{flow} has {} runs after 15 s, expected {count} ended",
                runs.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A fresh data directory: `(guard, canonical path)`.
pub(crate) fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap();
    (dir, path)
}
