//! A node's service: queued runs claimed and run by its workers, concurrency policies,
//! cancel, retry `from_failed`, shutdown drain and recovery of runs a dead node left.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use octoflow_core::engine::{DirCatalog, Engine, EngineConfig, FlowCatalog, RunRequest};
use octoflow_core::fs::FilesRoot;
use octoflow_core::service::{Service, ServiceConfig};
use octoflow_core::step::Registry;
use octoflow_core::store::{Admitted, MemoryStore, Run, RunId, RunStatus, StepStatus, Store};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

struct Node {
    service: Service,
    catalog: Arc<dyn FlowCatalog>,
    shutdown: CancellationToken,
    workers: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

fn registry() -> Arc<Registry> {
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    registry.register(crate::kinds::Panic);
    Arc::new(registry)
}

impl Node {
    /// A node over a fresh store with these flow files, its workers not started.
    fn new(flows: &[(&str, &str)], config: ServiceConfig) -> Self {
        Self::with_store(Arc::new(MemoryStore::new()), flows, config, "test:1")
    }

    fn with_store(
        store: Arc<dyn Store>,
        flows: &[(&str, &str)],
        config: ServiceConfig,
        node: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let flows_dir = dir.path().join("flows");
        std::fs::create_dir_all(&flows_dir).unwrap();
        for (name, yaml) in flows {
            std::fs::write(flows_dir.join(format!("{name}.yml")), yaml).unwrap();
        }
        let files = FilesRoot::new(dir.path(), &[], false).unwrap();
        let mut engine_config = EngineConfig::new(files.clone());
        node.clone_into(&mut engine_config.node);
        let catalog: Arc<dyn FlowCatalog> = Arc::new(DirCatalog::new(
            flows_dir,
            registry(),
            dir.path().join("templates"),
            files,
        ));
        let engine = Engine::new(store, engine_config).with_catalog(catalog.clone());
        Self {
            service: Service::new(engine, catalog.clone(), config),
            catalog,
            shutdown: CancellationToken::new(),
            workers: None,
            _dir: dir,
        }
    }

    fn start_workers(&mut self) {
        let service = self.service.clone();
        let shutdown = self.shutdown.clone();
        self.workers = Some(tokio::spawn(
            async move { service.run_workers(shutdown).await },
        ));
    }

    async fn stop_workers(&mut self) {
        self.shutdown.cancel();
        if let Some(workers) = self.workers.take() {
            workers.await.unwrap();
        }
    }

    async fn submit(&self, flow: &str, params: Value) -> Admitted {
        let flow = self.catalog.by_name(flow).await.unwrap();
        let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
        self.service
            .start(&flow, RunRequest::new(params), None)
            .await
            .unwrap()
    }

    async fn run(&self, id: &RunId) -> Run {
        self.service.store().run(id).await.unwrap().unwrap()
    }

    /// Waits (bounded) until the run has `status`.
    async fn until(&self, id: &RunId, status: RunStatus) -> Run {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let run = self.run(id).await;
            if run.status == status {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} is {} after 10 s, expected {status}",
                run.status
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

const QUICK: &str = "params:\n  n: { type: integer, default: 1 }\nsteps:\n  - name: a\n    set_fact: { value: '{{ params.n }}' }\n";
const SLOW: &str = "concurrency: { policy: queue, limit: 1 }\nparams:\n  secs: { type: number, default: 0.3 }\nsteps:\n  - name: nap\n    sleep: { seconds: '{{ params.secs }}' }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_queued_runs_to_their_end() {
    let mut node = Node::new(&[("quick", QUICK)], ServiceConfig::default());
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(node.submit("quick", json!({ "n": n })).await.run().id);
    }
    assert_eq!(node.service.store().queue_depth().await.unwrap(), 20);
    node.start_workers();
    for (n, id) in ids.iter().enumerate() {
        let run = node.until(id, RunStatus::Succeeded).await;
        assert_eq!(run.data["a"], json!(n), "{run:?}");
        assert_eq!(run.node.as_deref(), Some("test:1"));
    }
    node.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_policy_runs_one_at_a_time() {
    let mut node = Node::new(&[("slow", SLOW)], ServiceConfig::default());
    node.start_workers();
    let first = node.submit("slow", json!({})).await;
    let second = node.submit("slow", json!({})).await;
    assert!(matches!(first, Admitted::Created(_)));
    assert!(matches!(second, Admitted::Created(_)));
    let (first, second) = (first.run().id, second.run().id);
    node.until(&first, RunStatus::Running).await;
    assert_eq!(node.run(&second).await.status, RunStatus::Queued);
    let done = node.until(&first, RunStatus::Succeeded).await;
    let next = node.until(&second, RunStatus::Succeeded).await;
    assert!(next.started_at.unwrap() >= done.finished_at.unwrap());
    node.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_run_and_ends_a_queued_one() {
    let mut node = Node::new(&[("slow", SLOW)], ServiceConfig::default());
    node.start_workers();
    let running = node.submit("slow", json!({"secs": 30})).await.run().id;
    let queued = node.submit("slow", json!({"secs": 30})).await.run().id;
    node.until(&running, RunStatus::Running).await;
    let run = node.service.cancel(&queued).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    node.service.cancel(&running).await.unwrap().unwrap();
    let run = node.until(&running, RunStatus::Cancelled).await;
    assert_eq!(run.error.unwrap().message, "cancelled");
    let steps = node.service.store().step_runs(&running).await.unwrap();
    assert_eq!(steps[0].status, StepStatus::Cancelled);
    node.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_runs_finish_within_the_grace() {
    let config = ServiceConfig {
        shutdown_grace: Duration::from_secs(5),
        ..ServiceConfig::default()
    };
    let mut node = Node::new(&[("slow", SLOW)], config);
    node.start_workers();
    let id = node.submit("slow", json!({"secs": 0.3})).await.run().id;
    node.until(&id, RunStatus::Running).await;
    node.stop_workers().await;
    assert_eq!(node.run(&id).await.status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_runs_past_the_grace() {
    let config = ServiceConfig {
        shutdown_grace: Duration::from_millis(100),
        ..ServiceConfig::default()
    };
    let mut node = Node::new(&[("slow", SLOW)], config);
    node.start_workers();
    let id = node.submit("slow", json!({"secs": 60})).await.run().id;
    let waiting = node.submit("slow", json!({"secs": 60})).await.run().id;
    node.until(&id, RunStatus::Running).await;
    node.stop_workers().await;
    assert_eq!(node.run(&id).await.status, RunStatus::Cancelled);
    // What was never claimed stays queued for the next start.
    assert_eq!(node.run(&waiting).await.status, RunStatus::Queued);
}

const TWO_STEPS: &str = "params:\n  fail: { type: boolean, default: false }\nsteps:\n  - name: first\n    set_fact: { value: '{{ now() }}' }\n  - name: second\n    when: '{{ not params.fail }}'\n    exit: { message: done }\n  - name: boom\n    when: '{{ params.fail }}'\n    jq: { expression: 'error(\"boom\")' }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_from_failed_reuses_the_steps_that_succeeded() {
    let mut node = Node::new(&[("two", TWO_STEPS)], ServiceConfig::default());
    node.start_workers();
    let failed = node.submit("two", json!({"fail": true})).await.run().id;
    let failed = node.until(&failed, RunStatus::Failed).await;
    let retried = node.service.retry(&failed, true).await.unwrap();
    let retried = node.until(&retried.run().id, RunStatus::Failed).await;
    assert_eq!(retried.trigger.kind, "retry");
    assert_eq!(
        retried.trigger.detail["run_id"],
        json!(failed.id.to_string())
    );
    // `first` was not run again: its result is the one of the failed run.
    assert_eq!(retried.data["first"], failed.data["first"]);
    let fresh = node.service.retry(&failed, false).await.unwrap();
    let fresh = node.until(&fresh.run().id, RunStatus::Failed).await;
    assert_ne!(fresh.data["first"], failed.data["first"]);
    node.stop_workers().await;
}

const RESUMABLE: &str =
    "on_interrupt: retry\nresume: true\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_a_dead_node_are_requeued_or_interrupted() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let flows = [("resumable", RESUMABLE), ("quick", QUICK)];
    // A node claims two runs and dies.
    let dead = Node::with_store(store.clone(), &flows, ServiceConfig::default(), "gone:1");
    let retry = dead.submit("resumable", json!({})).await.run().id;
    let fail = dead.submit("quick", json!({})).await.run().id;
    let claimed = store
        .claim("gone:1", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);

    let mut node = Node::with_store(store.clone(), &flows, ServiceConfig::default(), "live:2");
    let handed_back = node.service.recover(|n| n == "live:2").await.unwrap();
    assert_eq!(handed_back, 2);
    let interrupted = node.run(&fail).await;
    assert_eq!(interrupted.status, RunStatus::Failed);
    assert_eq!(interrupted.error.unwrap().message, "interrupted");
    assert_eq!(node.run(&retry).await.status, RunStatus::Queued);
    node.start_workers();
    node.until(&retry, RunStatus::Succeeded).await;
    node.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_and_dedupe_answer_with_the_blocking_run() {
    let skip = SLOW.replace("policy: queue", "policy: skip");
    let dedupe = SLOW.replace("policy: queue", "policy: dedupe");
    let node = Node::new(
        &[("skip", &skip), ("dedupe", &dedupe)],
        ServiceConfig::default(),
    );
    for flow in ["skip", "dedupe"] {
        let first = node.submit(flow, json!({})).await.run().id;
        let second = node.submit(flow, json!({})).await;
        assert_eq!(second.run().id, first, "{flow}");
        match flow {
            "skip" => assert!(matches!(second, Admitted::Skipped(_))),
            _ => assert!(matches!(second, Admitted::Deduplicated(_))),
        }
    }
}

/// A panicking kind ends its run `failed`, saying so, and frees the run's concurrency key;
/// the node's other runs go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_kind_ends_only_its_run() {
    const BUGGY: &str = "concurrency: { key: shared, policy: queue, limit: 1 }\nsteps:\n  - name: buggy\n    panic: { message: kaboom }\n";
    const NEXT: &str = "concurrency: { key: shared, policy: queue, limit: 1 }\nsteps:\n  - name: a\n    set_fact: { value: 2 }\n";
    let mut node = Node::new(
        &[("buggy", BUGGY), ("next", NEXT), ("quick", QUICK)],
        ServiceConfig::default(),
    );
    node.start_workers();
    let buggy = node.submit("buggy", json!({})).await.run().id;
    let next = node.submit("next", json!({})).await.run().id;
    let quick = node.submit("quick", json!({})).await.run().id;
    let failed = node.until(&buggy, RunStatus::Failed).await;
    let error = failed.error.unwrap();
    assert_eq!(error.step.as_deref(), Some("buggy"));
    assert_eq!(error.message, "internal error: the step panicked: kaboom");
    // The key it held is free: the next run of the key runs.
    node.until(&next, RunStatus::Succeeded).await;
    node.until(&quick, RunStatus::Succeeded).await;
    node.stop_workers().await;
}
