//! Request bodies of any bytes to the routes that parse them: a webhook's query, JSON, form,
//! text and multipart bodies (params of every type), and the API's JSON and YAML bodies —
//! validate, dry run, a run's context, login (JSON and form), a user's save, a token, a
//! schedule, a job's callback, a run's start and a flow's `PUT`. The first byte picks the
//! route and the content type (see [`route`]); the rest is the body (a query after the first
//! `\n` for the webhook). Every request carries the admin token, so what an earlier input
//! stored (a user, a token) never turns later ones into `401`s. Any `4xx` is fine; a `5xx`
//! or a panic is a finding.
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
use octoflow_core::secrets::Secret;
use octoflow_core::service::{CallbackSigner, Service, ServiceConfig};
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

/// The admin token every request carries.
const ADMIN: &str = "fuzz-admin-token";

struct Target {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// A queued run's callback path, its token in the query.
    callback: String,
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
    let (router, callback) = runtime.block_on(async {
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
        let engine = Engine::new(store, EngineConfig::new(files))
            .with_catalog(catalog.clone())
            .with_callbacks(CallbackSigner::new(
                b"fuzz-key",
                Some("http://127.0.0.1:8080"),
            ));
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
        let auth = AuthSettings {
            admin_token: Some(Secret::new(ADMIN.to_owned())),
            ..AuthSettings::default()
        };
        let router = octoflow_server::router(AppState::new(
            service, library, auth, None, limits, scheduler,
        ));
        // A run that stays queued (no workers), for the callback route.
        let started = send(
            &router,
            "POST",
            "/api/v1/flows/intake/runs",
            "application/json",
            b"{}",
        )
        .await;
        assert_eq!(started.status().as_u16(), 201);
        let body = axum::body::to_bytes(started.into_body(), usize::MAX)
            .await
            .unwrap();
        let run: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let id = run["id"].as_str().unwrap().to_owned();
        let token = CallbackSigner::new(b"fuzz-key", None).token(&id.parse().unwrap());
        (router, format!("/api/v1/runs/{id}/callback?token={token}"))
    });
    Target {
        runtime,
        router,
        callback,
        _dir: dir,
    }
});

/// Sends one request with the admin token.
async fn send(
    router: &Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> axum::response::Response {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {ADMIN}"));
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    router.clone().oneshot(request).await.unwrap()
}

const BOUNDARY: &str = "fuzz";
const JSON: &str = "application/json";

/// The route, content type and body of an input: `pick % 16` chooses — 0 to 4 a webhook
/// (JSON, form, multipart, text, none; `GET` when the high bit is set), 5 validate, 6 a dry
/// run, 7 a run's context, 8 and 9 login (JSON, form), 10 a user's save, 11 a token, 12 a
/// schedule, 13 a job's callback, 14 a run's start, 15 a flow's `PUT`.
fn route(pick: u8, rest: &[u8], callback: &str) -> (&'static str, String, String, Vec<u8>) {
    let api = |method, path: &str, content_type: &str| {
        (
            method,
            path.to_owned(),
            content_type.to_owned(),
            rest.to_vec(),
        )
    };
    match pick % 16 {
        0..=4 => {
            let (query, body) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (&rest[..0], rest),
            };
            let query: String = String::from_utf8_lossy(query)
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '#')
                .collect();
            let content_type = match pick % 16 {
                0 => JSON.to_owned(),
                1 => "application/x-www-form-urlencoded".to_owned(),
                2 => format!("multipart/form-data; boundary={BOUNDARY}"),
                3 => "text/plain".to_owned(),
                _ => String::new(),
            };
            let method = if pick & 0x80 == 0 { "POST" } else { "GET" };
            (
                method,
                format!("/hooks/in/abc?{query}"),
                content_type,
                body.to_vec(),
            )
        }
        5 => api("POST", "/api/v1/validate", "application/yaml"),
        6 => api("POST", "/api/v1/flows/intake/dryrun", JSON),
        7 => api(
            "PATCH",
            "/api/v1/runs/0193a0e0-0000-7000-8000-000000000000/context",
            JSON,
        ),
        8 => api("POST", "/api/v1/auth/login", JSON),
        9 => api(
            "POST",
            "/api/v1/auth/login",
            "application/x-www-form-urlencoded",
        ),
        10 => api("PUT", "/api/v1/users/fuzz", JSON),
        11 => api("POST", "/api/v1/tokens", JSON),
        12 => api("POST", "/api/v1/schedules", JSON),
        13 => api("POST", callback, JSON),
        14 => api("POST", "/api/v1/flows/intake/runs", JSON),
        _ => api("PUT", "/api/v1/flows/scratch", "application/yaml"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let target = &*TARGET;
    let (method, path, content_type, body) = route(pick, rest, &target.callback);
    if axum::http::Uri::try_from(path.as_str()).is_err() {
        return;
    }
    let answer = target
        .runtime
        .block_on(send(&target.router, method, &path, &content_type, &body));
    assert!(
        !answer.status().is_server_error(),
        "{method} {path} answered {}",
        answer.status()
    );
});
