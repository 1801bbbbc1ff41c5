//! Composition overhead: a chain of 40 `rest` steps against a local HTTP server, and a
//! `flow_loop` over 1,000 items (each item a child run of one step), on the `SQLite` store.

#![allow(clippy::print_stdout)] // a benchmark reports its figures on stdout
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::response::Json;
use axum::routing::get;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use octoflow_core::engine::{DirCatalog, Engine, EngineConfig, RunRequest};
use octoflow_core::flow::{Flow, FlowLoader};
use octoflow_core::fs::FilesRoot;
use octoflow_core::step::Registry;
use octoflow_core::store::{RunStatus, Store};
use octoflow_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Bench {
    engine: Engine,
    registry: Arc<Registry>,
    runtime: tokio::runtime::Runtime,
    url: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("flows")).expect("flows dir");
    std::fs::write(
        dir.path().join("flows/item.yml"),
        "steps: [{ name: twice, set_fact: { value: '{{ n * 2 }}' } }]\n",
    )
    .expect("child flow");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("listener");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let router = Router::new().route(
        "/inc",
        get(
            |Query(q): Query<std::collections::HashMap<String, i64>>| async move {
                Json(json!({ "n": q.get("n").copied().unwrap_or(0) + 1 }))
            },
        ),
    );
    runtime.spawn(async move { axum::serve(listener, router).await });
    let store = runtime
        .block_on(SqliteStore::open(&dir.path().join("octoflow.db")))
        .expect("store");
    let files = FilesRoot::new(dir.path(), &[], false).expect("files root");
    let mut registry = Registry::with_core_kinds();
    octoflow_steps::register_builtin(&mut registry);
    let registry = Arc::new(registry);
    let catalog = DirCatalog::new(
        dir.path().join("flows"),
        registry.clone(),
        dir.path().join("templates"),
        files.clone(),
    );
    let store: Arc<dyn Store> = Arc::new(store);
    let engine = Engine::new(store, EngineConfig::new(files)).with_catalog(Arc::new(catalog));
    Bench {
        engine,
        registry,
        runtime,
        url,
        _dir: dir,
    }
}

fn load(bench: &Bench, yaml: &str) -> Arc<Flow> {
    Arc::new(
        FlowLoader::new(&bench.registry)
            .load_str(yaml, "bench.yml", None)
            .expect("flow loads"),
    )
}

fn rest_chain(bench: &Bench, n: usize) -> Arc<Flow> {
    let mut yaml = format!(
        "name: rest_chain\nsteps:\n  - name: s0\n    rest: {{ uri: \"{}/inc?n=0\" }}\n",
        bench.url
    );
    for i in 1..n {
        let _ = writeln!(
            yaml,
            "  - name: s{i}\n    rest: {{ uri: \"{}/inc?n={{{{ s{}.n }}}}\" }}",
            bench.url,
            i - 1
        );
    }
    load(bench, &yaml)
}

fn run_once(bench: &Bench, flow: &Arc<Flow>, input: &Value) -> Value {
    bench.runtime.block_on(async {
        let mut request = RunRequest::new(serde_json::Map::default());
        request.input = input.clone();
        let run = bench.engine.accept(flow, request).await.expect("accepted");
        let run = bench
            .engine
            .execute(flow.clone(), run, CancellationToken::new(), None)
            .await
            .expect("recorded");
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        run.data
    })
}

fn report(name: &str, units: &str, count: u32, runs: u32, f: impl Fn()) {
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / (f64::from(runs) * f64::from(count));
    println!("{name}: {per:.1} µs wall per {units} ({runs} runs of {count})");
}

fn compose(c: &mut Criterion) {
    let bench = setup();
    let mut group = c.benchmark_group("compose");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));

    let chain = rest_chain(&bench, 40);
    let data = run_once(&bench, &chain, &Value::Null);
    assert_eq!(data["s39"]["n"], 40);
    group.throughput(Throughput::Elements(40));
    group.bench_function("rest_chain_40", |b| {
        b.iter(|| run_once(&bench, &chain, &Value::Null));
    });
    report("rest_chain_40", "step", 40, 20, || {
        run_once(&bench, &chain, &Value::Null);
    });

    let looped = load(
        &bench,
        "name: loop\nsteps: [{ name: each, flow_loop: { name: item, data_key: items } }]\n",
    );
    let items: Vec<Value> = (0..1000).map(|n| json!({ "n": n })).collect();
    let input = json!({ "items": items });
    let data = run_once(&bench, &looped, &input);
    assert_eq!(data["each"][999]["twice"], 1998);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("flow_loop_1000", |b| {
        b.iter(|| run_once(&bench, &looped, &input));
    });
    report("flow_loop_1000", "item", 1000, 3, || {
        run_once(&bench, &looped, &input);
    });
    group.finish();
}

criterion_group!(benches, compose);
criterion_main!(benches);
