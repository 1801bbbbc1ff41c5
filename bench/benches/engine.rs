//! Engine overhead per step: chains of `set_fact` and `jq` steps on the `SQLite` store, every
//! step attempt durably recorded (one insert when it starts, one update when it ends).
//!
//! Besides criterion's wall-clock figures, prints the process CPU time per step (engine,
//! templates, jq and `SQLite` together), measured with `getrusage` over repeated runs.

#![allow(clippy::print_stdout)] // a benchmark reports its figures on stdout
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use octoflow_core::engine::{Engine, EngineConfig, RunRequest};
use octoflow_core::flow::{Flow, FlowLoader};
use octoflow_core::fs::FilesRoot;
use octoflow_core::step::Registry;
use octoflow_core::store::{MemoryStore, RunStatus, Store};
use octoflow_store_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

struct Bench {
    engine: Engine,
    /// The same engine on an in-memory store: what the engine itself costs.
    memory: Engine,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn setup() -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = runtime
        .block_on(SqliteStore::open(&dir.path().join("octoflow.db")))
        .expect("store");
    let files = FilesRoot::new(dir.path(), &[], false).expect("files root");
    let store: Arc<dyn Store> = Arc::new(store);
    let engine = Engine::new(store, EngineConfig::new(files.clone()));
    let memory = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::new(files));
    Bench {
        engine,
        memory,
        runtime,
        _dir: dir,
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    octoflow_steps::register_builtin(&mut registry);
    registry
}

/// `n` steps of one kind, each reading the previous step's result.
fn chain(kind: &str, n: usize) -> Flow {
    let mut yaml = String::from("name: bench\nsteps:\n  - name: s0\n    set_fact: { value: 0 }\n");
    for i in 1..n {
        let step = match kind {
            "set_fact" => format!(
                "  - name: s{i}\n    set_fact: {{ value: \"{{{{ s{} + 1 }}}}\" }}\n",
                i - 1
            ),
            _ => format!(
                "  - name: s{i}\n    jq: {{ expression: \".s{} + 1\" }}\n",
                i - 1
            ),
        };
        yaml.push_str(&step);
    }
    FlowLoader::new(&registry())
        .load_str(&yaml, "bench.yml", None)
        .expect("bench flow loads")
}

fn run_once(bench: &Bench, flow: &Arc<Flow>) {
    run_on(bench, &bench.engine, flow);
}

fn run_on(bench: &Bench, engine: &Engine, flow: &Arc<Flow>) {
    bench.runtime.block_on(async {
        let run = engine
            .accept(flow, RunRequest::new(serde_json::Map::default()))
            .await
            .expect("accepted");
        let run = engine
            .execute(flow.clone(), run, CancellationToken::new(), None)
            .await
            .expect("recorded");
        assert_eq!(run.status, RunStatus::Succeeded);
    });
}

fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let user = usage.user_time();
    let system = usage.system_time();
    let micros = (user.tv_sec() + system.tv_sec()) * 1_000_000 + user.tv_usec() + system.tv_usec();
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// Prints wall and CPU time per step over `runs` runs.
fn report(name: &str, bench: &Bench, engine: &Engine, flow: &Arc<Flow>, steps: usize, runs: u32) {
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    for _ in 0..runs {
        run_on(bench, engine, flow);
    }
    let (cpu, wall) = (cpu_time().saturating_sub(cpu0), wall0.elapsed());
    let per = u32::try_from(steps).unwrap_or(1) * runs;
    println!(
        "{name}: {:.1} µs wall/step, {:.1} µs CPU/step ({runs} runs of {steps} steps)",
        wall.as_secs_f64() * 1e6 / f64::from(per),
        cpu.as_secs_f64() * 1e6 / f64::from(per),
    );
}

fn engine(c: &mut Criterion) {
    let bench = setup();
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for (kind, n) in [("set_fact", 40), ("set_fact", 400), ("jq", 40)] {
        let flow = Arc::new(chain(kind, n));
        let name = format!("{kind}_chain_{n}");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(&name, |b| b.iter(|| run_once(&bench, &flow)));
        let runs = if n > 100 { 10 } else { 50 };
        report(&name, &bench, &bench.engine, &flow, n, runs);
        report(
            &format!("{name} (memory store)"),
            &bench,
            &bench.memory,
            &flow,
            n,
            runs,
        );
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
