//! Webhooks (SPEC §7 and §11.4): every `webhook` trigger of the current flows, served at
//! `/hooks/<path>`, or at the root when its path starts with `/`.
//!
//! A request goes through, in order:
//! 1. the routing table ([`table`]): `404 not_found` for an unknown path, `405
//!    method_not_allowed` (with `Allow`) for a method the hooks at that path do not answer;
//! 2. the caller check ([`auth`]) on what the headers hold: `401` (with a challenge) or `403`;
//! 3. the in-flight bound ([`in_flight`]): at most [`HookSettings::max_in_flight`] requests,
//!    and [`HookSettings::max_in_flight_per_hook`] to one hook, are read and admitted at once;
//!    past it the answer is `429 overloaded` with `Retry-After: 1` — a request is refused,
//!    never dropped;
//! 4. the body ([`upload`]), under [`BodyLimits`](crate::BodyLimits): JSON, forms and text
//!    up to `limits.max_body_bytes`, uploads streamed into the workspace of the run to be
//!    (whose id is made first) up to `limits.max_upload_bytes` and `limits.max_upload_files`;
//!    `413` past them, `408` for a body that stalls; an `hmac` signature is checked over the
//!    raw body once it is read, and only then do its files reach the run's workspace;
//! 5. the params ([`params`]): `400 invalid_params` naming the field;
//! 6. a dry run, or the run's admission under the flow's concurrency rule;
//! 7. the answer ([`respond`]).
//!
//! A request refused at any step, or whose run the concurrency rule did not create, leaves
//! nothing on disk: the workspace is removed unless the run was recorded.
//!
//! Root-mounted hooks are served by the router's fallback, so they never shadow an API route;
//! validation refuses paths under the reserved prefixes anyway.

mod auth;
mod in_flight;
mod params;
mod respond;
mod table;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use octoflow_core::engine::{AcceptError, RunRequest};
use octoflow_core::flow::WebhookAuth;
use octoflow_core::service::Waited;
use octoflow_core::store::{Admitted, RunId, StoreError, TriggerInfo};
use serde_json::json;

use crate::Shared;
use crate::error::{ApiError, Code};
use crate::http_metrics::RouteLabel;
use in_flight::InFlight;
use table::{HookRoute, LiveTable, Lookup};
use upload::Workspace;

/// Settings of the webhooks of a server.
#[derive(Debug, Clone)]
pub struct HookSettings {
    /// Hook requests read and admitted at once; more are answered `429 overloaded`
    /// (default 1,024). A `wait: true` hook stops counting once its run is admitted.
    pub max_in_flight: usize,
    /// The same for each hook (default 256): one busy hook leaves room for the others.
    pub max_in_flight_per_hook: usize,
    /// How long `wait: true` waits when the trigger sets no `wait_timeout` (default 30 s).
    pub wait_timeout: Duration,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            max_in_flight_per_hook: 256,
            wait_timeout: Duration::from_secs(30),
        }
    }
}

/// An answer that ends a hook request early: an error, or a refusal with its headers.
pub(crate) struct Refused(pub(crate) Box<Response>);

impl Refused {
    /// `401 unauthenticated`, with a `WWW-Authenticate` challenge when given.
    fn unauthenticated(message: impl Into<String>, challenge: Option<&'static str>) -> Self {
        Self::challenge(ApiError::unauthenticated(message), challenge.unwrap_or(""))
    }

    /// An error answered with a `WWW-Authenticate` challenge (none when empty).
    fn challenge(error: ApiError, challenge: &'static str) -> Self {
        let mut response = error.into_response();
        if !challenge.is_empty() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        Self(Box::new(response))
    }
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self(Box::new(error.into_response()))
    }
}

impl From<AcceptError> for Refused {
    fn from(error: AcceptError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

/// What the hook handlers share.
struct Hooks {
    app: Shared,
    table: LiveTable,
    in_flight: InFlight,
}

/// The hooks' router: every path the API does not serve, matched against the hooks.
pub(crate) fn router(app: &Shared) -> Router {
    let hooks = Arc::new(Hooks {
        table: LiveTable::new(app.flows.clone()),
        in_flight: InFlight::new(app.hooks.max_in_flight, app.hooks.max_in_flight_per_hook),
        app: app.clone(),
    });
    Router::new().fallback(dispatch).with_state(hooks)
}

async fn dispatch(State(hooks): State<Arc<Hooks>>, request: Request) -> Response {
    match handle(&hooks, request).await {
        Ok(response) => response,
        Err(Refused(response)) => *response,
    }
}

async fn handle(hooks: &Hooks, request: Request) -> Result<Response, Refused> {
    let table = hooks.table.get();
    let method = request.method().clone();
    let (route, path_values) = match table.find(&method, request.uri().path()) {
        Lookup::Found(route, values) => (route, values),
        Lookup::WrongMethod(allowed) => return Err(wrong_method(&method, &request, &allowed)),
        // The site's root shows the web UI, unless a flow's hook takes it.
        Lookup::Missing if request.uri().path() == "/" && method == Method::GET => {
            return Ok(axum::response::Redirect::to("/ui/").into_response());
        }
        Lookup::Missing => {
            return Err(ApiError::not_found(format!(
                "no route `{method} {}`",
                request.uri().path()
            ))
            .into());
        }
    };
    let label = RouteLabel(route.hook.served_path());
    let mut response = match answer(hooks, route, path_values, request).await {
        Ok(response) => response,
        Err(Refused(response)) => *response,
    };
    response.extensions_mut().insert(label);
    Ok(response)
}

/// Answers a request to a hook found in the routing table (steps 2 to 7 above).
async fn answer(
    hooks: &Hooks,
    route: &HookRoute,
    path_values: Vec<(String, String)>,
    request: Request,
) -> Result<Response, Refused> {
    let method = request.method().clone();
    let app = &hooks.app;
    let (flow, hook) = (&route.flow, &route.hook);
    let (parts, body) = request.into_parts();
    let query = params::query_pairs(parts.uri.query(), false);
    let mut checked = auth::check(app, &hook.auth, &parts, &query).await?;
    let slots = hooks.in_flight.take(&route.key)?;
    let query = params::query_pairs(
        parts.uri.query(),
        matches!(hook.auth, WebhookAuth::Token { .. }),
    );

    // The run's id comes first: uploads go into its workspace before it is recorded.
    let id = RunId::new();
    let data_dir = app.service.engine().config().files.data_dir();
    let runs = data_dir.join("runs");
    let mut workspace = Workspace::new(&runs, &id.to_string(), checked.body.is_some());
    let payload = upload::read(
        body,
        &parts.headers,
        &app.limits,
        &mut workspace,
        checked.body.as_mut(),
    )
    .await?;
    if let Some(mac) = checked.body.take() {
        mac.verify()?;
        workspace.admit().await.map_err(ApiError::internal)?;
    }
    let uploads: Vec<_> = match &payload {
        upload::Payload::Form(_, files) => files
            .iter()
            .map(|f| json!({"field": f.field, "path": f.path.display().to_string(), "bytes": f.bytes}))
            .collect(),
        _ => Vec::new(),
    };
    let collected = params::collect(flow, hook, &path_values, &query, payload)?;
    let mut request = RunRequest::new(collected.params);
    request.input = collected.input;
    request.id = Some(id);
    request.has_files = !uploads.is_empty();
    request.trigger = TriggerInfo {
        kind: "webhook".to_owned(),
        detail: json!({
            "path": hook.served_path(),
            "method": method.as_str(),
            "by": checked.by,
            "uploads": uploads,
        }),
    };
    if hook.dryrun {
        let dry = app.service.engine().dry_run(flow, &request)?;
        return respond::dry_run(app, route, &dry);
    }
    let idempotency_key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let started = if hook.wait {
        app.service
            .start_waited(flow, request, idempotency_key)
            .await?
    } else {
        Waited::Admitted(Box::new(
            app.service.start(flow, request, idempotency_key).await?,
        ))
    };
    let created = match &started {
        Waited::Here(..) => true,
        Waited::Admitted(admitted) => {
            matches!(**admitted, Admitted::Created(_) | Admitted::Replaced { .. })
        }
    };
    if created {
        workspace.keep();
    }
    drop(workspace);
    drop(slots);
    metrics::counter!("octoflow_hook_requests_total", "flow" => flow.name.clone()).increment(1);
    let wait = hook
        .wait_timeout
        .map_or(app.hooks.wait_timeout, octoflow_core::flow::Dur::get);
    match started {
        Waited::Here(id, end) => respond::started_here(app, route, id, end, wait).await,
        Waited::Admitted(admitted) => respond::admitted(app, route, *admitted, wait).await,
    }
}

/// `405 method_not_allowed` with the methods the path answers.
fn wrong_method(method: &Method, request: &Request, allowed: &[Method]) -> Refused {
    let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut response = ApiError::new(
        Code::MethodNotAllowed,
        format!(
            "`{}` does not answer `{method}`; it answers {}",
            request.uri().path(),
            list.join(", ")
        ),
    )
    .with_details(json!({ "allowed": list }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&list.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Refused(Box::new(response))
}
