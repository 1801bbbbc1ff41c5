//! The octoflow HTTP API (SPEC §11): JSON over HTTP under `/api/v1`, described by
//! `GET /api/v1/openapi.json`.
//!
//! [`router`] builds the whole API over an [`AppState`] — the node's
//! `Service`, its hot-reloaded `FlowLibrary`, its `Scheduler` and the [`AuthSettings`]. Every route
//! is one line of [`routes`]: method, path and the role it needs ([`Access`]); the `OpenAPI`
//! document ([`openapi::ApiDoc`]) is checked against that table by a test.
//!
//! - [`error`]: the [`Code`](error::Code) table and [`ApiError`](error::ApiError);
//! - [`extract`]: extractors that reject with our error shape;
//! - [`access`]: password hashes and tokens, shared with the CLI;
//! - `auth`: resolving a bearer token to a role, and the login;
//! - `hooks`: the webhook triggers of the flows, served at `/hooks/<path>` and at root
//!   paths, outside the API's route table (their paths are the flows' own);
//! - `ui`: the web UI under `/ui`, pages rendered on the server.

pub mod access;
mod api;
mod auth;
mod browser;
pub mod error;
pub mod extract;
mod hooks;
mod http_metrics;
mod jwt;
mod limits;
mod linger;
mod login_guard;
pub mod openapi;
pub mod recorder;
mod routes;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use metrics_exporter_prometheus::PrometheusHandle;
use octoflow_core::library::FlowLibrary;
use octoflow_core::scheduler::Scheduler;
use octoflow_core::secrets::Secret;
use octoflow_core::service::Service;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{Access, Caller, LoginAnswer, LoginRequest};
pub use browser::{AllowedHosts, Body};
pub use hooks::HookSettings;
pub use jwt::JwtCheck;
pub use limits::BodyLimits;
pub use routes::{Route, routes};

/// Who may use the API (config `auth:`, SPEC §11.1 and §12).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Let `GET` and `HEAD` requests through without a token, as a viewer.
    pub public_read: bool,
    /// How long a login's session token works (default 15 minutes).
    pub token_ttl: Duration,
    /// `OCTOFLOW_API_TOKEN`: the spooler's single token, an admin token.
    pub admin_token: Option<Secret<String>>,
    /// Tokens from an outside issuer (`auth.jwt`).
    pub jwt: Option<IssuerTokens>,
}

/// Bearer tokens that an outside issuer signs (`auth.jwt` of config.yml): checked with
/// `check`, the role read from the claim `role_claim` (`viewer` without it).
#[derive(Debug, Clone)]
pub struct IssuerTokens {
    /// The key, algorithms, audience and issuer.
    pub check: JwtCheck,
    /// The claim that holds the role: `viewer`, `operator` or `admin`.
    pub role_claim: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            public_read: false,
            token_ttl: Duration::from_secs(15 * 60),
            admin_token: None,
            jwt: None,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The node: starts, cancels and retries runs; its store.
    pub service: Service,
    /// The flows directory, hot-reloaded.
    pub flows: Arc<FlowLibrary>,
    /// Who may use the API.
    pub auth: AuthSettings,
    /// Renders `/metrics`; without it `/metrics` answers 404.
    pub metrics: Option<PrometheusHandle>,
    /// Bounds of request bodies (`413 payload_too_large`, `408` past them).
    pub limits: BodyLimits,
    /// Webhooks: requests in flight, default wait.
    pub hooks: HookSettings,
    /// The node's scheduler: schedules listed, added, paused, resumed and removed through
    /// the API, and each flow's next fire time. Its loop may run elsewhere
    /// (`serve --no-scheduler`); changes are kept in the store either way.
    pub scheduler: Scheduler,
    /// The names the API answers to (the `Host` of a request): IP addresses, `localhost`
    /// and `public_url`'s host.
    pub hosts: Arc<AllowedHosts>,
    /// Failed logins lately, and the password checks' permits.
    pub(crate) logins: Arc<login_guard::LoginGuard>,
}

impl AppState {
    /// The state of a server.
    pub fn new(
        service: Service,
        flows: Arc<FlowLibrary>,
        auth: AuthSettings,
        metrics: Option<PrometheusHandle>,
        limits: BodyLimits,
        scheduler: Scheduler,
    ) -> Self {
        Self {
            service,
            flows,
            auth,
            metrics,
            limits,
            hooks: HookSettings::default(),
            scheduler,
            hosts: Arc::default(),
            logins: Arc::default(),
        }
    }

    /// Lets the API answer to the host of `public_url` besides IP addresses and `localhost`.
    #[must_use]
    pub fn with_public_url(mut self, public_url: Option<&str>) -> Self {
        self.hosts = Arc::new(AllowedHosts::new(public_url));
        self
    }
}

/// The state as handlers receive it.
type Shared = Arc<AppState>;

/// The whole API: every route of [`routes`], then the webhooks on every other path, with a
/// request id on every request and answer (`x-request-id`), a trace span per request (path
/// only: queries may hold callback tokens), panics answered as internal errors, and the body
/// limit.
pub fn router(state: AppState) -> Router {
    let max_body = state.limits.body;
    let limits = state.limits.clone();
    let shared: Shared = Arc::new(state);
    let hooks = hooks::router(&shared);
    let routes = routes::build(&shared)
        .merge(ui::router(&shared))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
        .merge(hooks);
    with_layers(routes, limits)
}

/// The layers around every route, outermost first: request id, trace span, request id on the
/// answer, the request's duration for `/metrics`, internal errors logged and answered with the
/// request id, panics caught, and the rest of a body left unread by an early answer read
/// before that answer goes out ([`linger`]).
fn with_layers(router: Router, limits: BodyLimits) -> Router {
    let request_id = HeaderName::from_static(error::REQUEST_ID);
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(axum::middleware::from_fn(http_metrics::record))
            .layer(axum::middleware::from_fn(error::log_internal))
            .layer(CatchPanicLayer::custom(error::panic_response))
            .layer(axum::middleware::from_fn_with_state(
                limits,
                linger::drain_unread,
            )),
    )
}

/// The span of one request: method, path (a user's name in it as a digest) and request id —
/// never the query.
fn span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(error::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %login_guard::shown_path(request.uri().path()),
        request_id = %request_id,
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn panics_answer_an_internal_error_with_the_request_id() {
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let app = with_layers(
            Router::new().route("/boom", get(boom)),
            BodyLimits::default(),
        );
        let request = Request::builder()
            .uri("/boom")
            .header(error::REQUEST_ID, "req-1")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), 500);
        assert_eq!(response.headers()[error::REQUEST_ID], "req-1");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "internal", "message": "internal error", "details": {"request_id": "req-1"}}})
        );
    }
}
