//! A test server without a socket: a temp data dir with flow files, a `MemoryStore`, the
//! router driven by `oneshot`, and helpers to make requests and read answers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use octoflow_core::engine::{Engine, EngineConfig, FlowCatalog};
use octoflow_core::fs::FilesRoot;
use octoflow_core::library::FlowLibrary;
use octoflow_core::scheduler::{Autostart, ManualClock, Scheduler};
use octoflow_core::secrets::Secrets;
use octoflow_core::service::{CallbackSigner, Service, ServiceConfig};
use octoflow_core::step::Registry;
use octoflow_core::store::{AuthStore, MemoryStore, Role, RunStatus, Store, TokenKind};
use octoflow_server::access::{TokenRequest, issue_token, new_user};
use octoflow_server::{AppState, AuthSettings, BodyLimits, HookSettings};
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The time on the scheduler's clock when a test server starts.
pub(crate) const SCHEDULER_START: &str = "2026-06-01T08:00:00Z";

/// The key callback tokens are signed with in tests.
pub(crate) const CALLBACK_KEY: &[u8] = b"test-callback-key";

/// A flow with a param, a schedule and two steps; its `exec` step writes a log line.
pub(crate) const HELLO: &str = r#"name: hello
description: says hello
params:
  count: { type: integer, default: 1 }
schedule: { cron: "0 * * * *" }
steps:
  - name: greet
    exec: { command: [echo, "hello {{ params.count }}"] }
  - name: done
    set_fact: { value: { ok: true } }
"#;

/// A `skip` flow whose run waits for its callback.
pub(crate) const SKIPPER: &str = r"name: skipper
concurrency: { policy: skip }
steps:
  - name: wait
    wait: { callback: true }
";

/// A flow that never validated.
pub(crate) const BROKEN: &str = "name: broken\nsteps:\n  - name: a\n    exec: { comand: [echo] }\n";

/// Builds an [`App`].
#[derive(Default)]
pub(crate) struct AppBuilder {
    flows: Vec<(String, String)>,
    auth: AuthSettings,
    workers: bool,
    metrics: bool,
    secrets: Option<String>,
    max_body: Option<usize>,
    limits: Option<BodyLimits>,
    hooks: Option<HookSettings>,
    scheduler: bool,
    public_url: Option<String>,
}

impl AppBuilder {
    pub(crate) fn flow(mut self, file: &str, text: &str) -> Self {
        self.flows.push((file.to_owned(), text.to_owned()));
        self
    }

    pub(crate) fn auth(mut self, auth: AuthSettings) -> Self {
        self.auth = auth;
        self
    }

    pub(crate) fn workers(mut self) -> Self {
        self.workers = true;
        self
    }

    pub(crate) fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// The engine's secrets, as `secrets.yml` text.
    pub(crate) fn secrets(mut self, yaml: &str) -> Self {
        self.secrets = Some(yaml.to_owned());
        self
    }

    /// The largest body and upload (default: [`BodyLimits::default`]).
    pub(crate) fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Every bound of request bodies.
    pub(crate) fn limits(mut self, limits: BodyLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Runs the scheduler's loop (on [`App::clock`]).
    pub(crate) fn scheduler(mut self) -> Self {
        self.scheduler = true;
        self
    }

    pub(crate) fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    pub(crate) fn hooks(mut self, settings: HookSettings) -> Self {
        self.hooks = Some(settings);
        self
    }

    pub(crate) fn build(self) -> App {
        let dir = tempfile::tempdir().unwrap();
        let flows_dir = dir.path().join("flows");
        std::fs::create_dir_all(&flows_dir).unwrap();
        for (file, text) in &self.flows {
            std::fs::write(flows_dir.join(file), text).unwrap();
        }
        let files = FilesRoot::new(dir.path(), &[], false).unwrap();
        let mut registry = Registry::with_core_kinds();
        octoflow_steps::register_builtin(&mut registry);
        let library = FlowLibrary::open(
            flows_dir,
            Arc::new(registry),
            dir.path().join("templates"),
            files.clone(),
        )
        .unwrap();
        let store = Arc::new(MemoryStore::new());
        let dyn_store: Arc<dyn Store> = store.clone();
        let catalog: Arc<dyn FlowCatalog> = library.clone();
        let secrets = self
            .secrets
            .as_deref()
            .map_or_else(Secrets::default, |yaml| {
                Secrets::parse(yaml, "secrets.yml", &std::collections::BTreeMap::new()).unwrap()
            });
        let engine = Engine::new(dyn_store, EngineConfig::new(files))
            .with_secrets(&secrets)
            .with_catalog(catalog.clone())
            .with_callbacks(CallbackSigner::new(
                CALLBACK_KEY,
                Some("http://127.0.0.1:8080"),
            ));
        let service = Service::new(
            engine,
            catalog,
            ServiceConfig {
                workers: 2,
                ..ServiceConfig::default()
            },
        );
        let shutdown = CancellationToken::new();
        if self.workers {
            let service = service.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { service.run_workers(shutdown).await });
        }
        let clock = Arc::new(ManualClock::new(SCHEDULER_START.parse().unwrap()));
        let scheduler = Scheduler::new(
            service.clone(),
            library.clone(),
            Autostart::all(),
            clock.clone(),
        );
        if self.scheduler {
            let scheduler = scheduler.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { scheduler.run(shutdown).await });
        }
        let metrics = self.metrics.then(prometheus);
        let mut limits = self.limits.unwrap_or_default();
        if let Some(max) = self.max_body {
            limits.upload = max as u64;
            limits.body = max;
        }
        let mut state = AppState::new(
            service,
            library.clone(),
            self.auth,
            metrics,
            limits,
            scheduler.clone(),
        )
        .with_public_url(self.public_url.as_deref());
        if let Some(hooks) = self.hooks {
            state.hooks = hooks;
        }
        App {
            router: octoflow_server::router(state),
            store,
            flows: library,
            dir,
            shutdown,
            scheduler,
            clock,
        }
    }
}

/// One recorder for the whole test binary (metrics macros record into the global one).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            octoflow_server::recorder::prometheus()
                .install_recorder()
                .unwrap()
        })
        .clone()
}

/// A server under test.
pub(crate) struct App {
    router: Router,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) flows: Arc<FlowLibrary>,
    pub(crate) dir: TempDir,
    shutdown: CancellationToken,
    pub(crate) scheduler: Scheduler,
    /// The scheduler's clock; it starts at [`SCHEDULER_START`].
    pub(crate) clock: Arc<ManualClock>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl App {
    pub(crate) fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// The usual test server: `hello`, `skipper` and `broken`.
    pub(crate) fn standard() -> AppBuilder {
        Self::builder()
            .flow("hello.yml", HELLO)
            .flow("skipper.yml", SKIPPER)
            .flow("broken.yml", BROKEN)
    }

    pub(crate) async fn send(&self, request: Req) -> Answer {
        let response = self.router.clone().oneshot(request.build()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// The router itself, for streaming answers.
    pub(crate) fn router(&self) -> Router {
        self.router.clone()
    }

    /// An API token with `role` (or expired / revoked).
    pub(crate) async fn token(&self, role: Role, ttl: Option<Duration>) -> String {
        let issued = issue_token(
            self.store.as_ref(),
            TokenRequest {
                name: format!("test {role}"),
                role,
                kind: TokenKind::Api,
                user: None,
                ttl,
            },
        )
        .await
        .unwrap();
        issued.secret
    }

    pub(crate) async fn user(&self, name: &str, role: Role, password: &str) {
        let user = new_user(name, role, password).unwrap();
        self.store.put_user(&user).await.unwrap();
    }

    /// Waits (at most 20 s) until the run has ended; returns its record.
    pub(crate) async fn finished(&self, id: &str) -> Value {
        for _ in 0..400 {
            let answer = self.send(get(&format!("/api/v1/runs/{id}"))).await;
            let run = answer.json();
            let status: RunStatus = serde_json::from_value(run["status"].clone()).unwrap();
            if status.is_final() {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not end");
    }
}

/// A request being built.
pub(crate) struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub(crate) fn request(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

pub(crate) fn get(path: &str) -> Req {
    request(Method::GET, path)
}

pub(crate) fn post(path: &str) -> Req {
    request(Method::POST, path)
}

pub(crate) fn put(path: &str) -> Req {
    request(Method::PUT, path)
}

pub(crate) fn delete(path: &str) -> Req {
    request(Method::DELETE, path)
}

impl Req {
    pub(crate) fn json(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .raw(serde_json::to_vec(value).unwrap())
    }

    pub(crate) fn text(self, text: &str) -> Self {
        self.header("content-type", "application/yaml")
            .raw(text.as_bytes().to_vec())
    }

    pub(crate) fn raw(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    pub(crate) fn build(mut self) -> Request<Body> {
        let body = Body::from(std::mem::take(&mut self.body));
        self.build_with(body)
    }

    /// The request with another body (a stream).
    pub(crate) fn build_with(self, body: Body) -> Request<Body> {
        // An API write says its body is JSON unless the test says otherwise, as clients do.
        let writes = [Method::POST, Method::PUT, Method::PATCH].contains(&self.method);
        let typed = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let mut builder = Request::builder().method(self.method).uri(&self.path);
        if writes && !typed && self.path.starts_with("/api/") {
            builder = builder.header("content-type", "application/json");
        }
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(body).unwrap()
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Answer {
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.text))
    }

    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "answer: {}", self.text);
        self
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
