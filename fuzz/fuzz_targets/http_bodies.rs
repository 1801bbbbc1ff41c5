//! Request bodies of any bytes to the routes that parse them: a webhook's query, JSON, form,
//! text and multipart bodies (params of every type), and the API's JSON and YAML bodies. The
//! first byte picks the route and the content type; the rest is the body (a query after the
//! first `\n` for the webhook). Any `4xx` is fine; a `5xx` or a panic is a finding.
#![no_main]

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use octoflow_core::engine::{Engine, EngineConfig, FlowCatalog};
use octoflow_core::fs::FilesRoot;
use octoflow_core::library::FlowLibrary;
use octoflow_core::scheduler::{Autostart, Scheduler, SystemClock};
use octoflow_core::service::{Service, ServiceConfig};
use octoflow_core::step::Registry;
use octoflow_core::store::{MemoryStore, Store};
use octoflow_server::{AppState, AuthSettings, BodyLimits};
use tower::ServiceExt;

const FLOW: &str = r#"name: intake
params:
  n: { type: integer, minimum: 0 }
  f: { type: number }
  b: { type: boolean }
  s: { type: string, pattern: "^[a-z]+$" }
  e: { type: string, enum: [a, b] }
  o: { type: object }
  l: { type: array }
  doc: { type: file }
triggers:
  - webhook: { path: "in/{s}", methods: [GET, POST], dryrun: true }
steps:
  - name: a
    set_fact: { value: "{{ params.n }}" }
"#;

struct Target {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

static TARGET: LazyLock<Target> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("intake.yml"), FLOW).unwrap();
    let router = runtime.block_on(async {
        let files = FilesRoot::new(dir.path(), &[], false).unwrap();
        let mut registry = Registry::with_core_kinds();
        octoflow_steps::register_builtin(&mut registry);
        let library = FlowLibrary::open(
            flows,
            Arc::new(registry),
            dir.path().join("templates"),
            files.clone(),
        )
        .unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let catalog: Arc<dyn FlowCatalog> = library.clone();
        let engine = Engine::new(store, EngineConfig::new(files)).with_catalog(catalog.clone());
        let service = Service::new(engine, catalog, ServiceConfig::default());
        let scheduler = Scheduler::new(
            service.clone(),
            library.clone(),
            Autostart::all(),
            Arc::new(SystemClock),
        );
        let limits = BodyLimits {
            body: 256 * 1024,
            upload: 1024 * 1024,
            ..BodyLimits::default()
        };
        octoflow_server::router(AppState::new(
            service,
            library,
            AuthSettings::default(),
            None,
            limits,
            scheduler,
        ))
    });
    Target {
        runtime,
        router,
        _dir: dir,
    }
});

const BOUNDARY: &str = "fuzz";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (method, path, content_type, body) = match pick % 8 {
        0..=4 => {
            let (query, body) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (&rest[..0], rest),
            };
            let query: String = String::from_utf8_lossy(query)
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '#')
                .collect();
            let content_type = match pick % 8 {
                0 => "application/json".to_owned(),
                1 => "application/x-www-form-urlencoded".to_owned(),
                2 => format!("multipart/form-data; boundary={BOUNDARY}"),
                3 => "text/plain".to_owned(),
                _ => String::new(),
            };
            let method = if pick & 0x80 == 0 { "POST" } else { "GET" };
            (method, format!("/hooks/in/abc?{query}"), content_type, body)
        }
        5 => ("POST", "/api/v1/validate".to_owned(), "application/yaml".to_owned(), rest),
        6 => (
            "POST",
            "/api/v1/flows/intake/dryrun".to_owned(),
            "application/json".to_owned(),
            rest,
        ),
        _ => (
            "PATCH",
            "/api/v1/runs/0193a0e0-0000-7000-8000-000000000000/context".to_owned(),
            "application/json".to_owned(),
            rest,
        ),
    };
    let mut request = Request::builder().method(method).uri(&path).header("host", "127.0.0.1");
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let target = &*TARGET;
    let answer = target
        .runtime
        .block_on(target.router.clone().oneshot(request))
        .unwrap();
    assert!(
        !answer.status().is_server_error(),
        "{method} {path} answered {}",
        answer.status()
    );
});
