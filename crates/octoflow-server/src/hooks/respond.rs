//! The answer of a webhook.
//!
//! - By default `202 {"run_id": …}` for a new run, `200 {"run_id": …}` for the run a
//!   `dedupe` flow (or a repeated `Idempotency-Key`) answers instead, and `409` naming the
//!   blocking run when a `skip` flow refuses it.
//! - `wait: true`: the answer waits for the run's end (`200` with the run), or answers
//!   `202 {"run_id": …}` when `wait_timeout` (default 30 s) passes first. The wait follows
//!   the run's end ([`RunFeed::watch_end`](octoflow_core::service::RunFeed::watch_end)): on
//!   this node, or told by the node that runs it; and it looks at the store all the same,
//!   once a second (every 5 s when the nodes tell each other of ends). A run that ran here
//!   is answered with the record its end was stored with, without reading it back.
//! - `dryrun: true`: `200` with the engine's dry run (each step's settings rendered).
//! - `response: {status, headers, body}`: templates rendered over `run` (the run record),
//!   `dryrun`, `params`, `data` (the run's data) and `admission` (`created`, `deduplicated`,
//!   …) replace the default status, headers and body; a body that renders to text is sent as
//!   text, anything else as JSON. Secrets are masked in every answer.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use octoflow_core::engine::DryRun;
use octoflow_core::expr::{Scope, Tpl};
use octoflow_core::flow::WebhookResponse;
use octoflow_core::service::{EndWatch, Service};
use octoflow_core::store::{Admitted, Run, RunId};
use serde_json::{Value, json};

use super::Refused;
use super::table::HookRoute;
use crate::AppState;
use crate::error::ApiError;

/// How often a waiting webhook looks at the store for a run ended elsewhere.
const RECHECK: Duration = Duration::from_secs(1);
/// The same, when the node that runs it tells of its end (notices between nodes).
const TOLD_RECHECK: Duration = Duration::from_secs(5);

/// A hook's `response` templates, compiled once when its route is made. A template that
/// does not compile (the flow's check refuses it, so only a bug gets here) keeps its error,
/// answered `500` when used.
#[derive(Debug)]
pub(super) struct ResponseTemplates {
    status: Option<Compiled>,
    headers: Vec<(String, Compiled)>,
    body: Option<Compiled>,
    /// Whether a template reads `run`: only then is the run record made into a value.
    reads_run: bool,
}

type Compiled = Result<Tpl<Value>, String>;

impl ResponseTemplates {
    /// Compiles the templates of `response`.
    pub(super) fn compile(response: &WebhookResponse) -> Self {
        let compile = |raw: &Value| Tpl::<Value>::from_value(raw.clone());
        let mut templates = Self {
            status: response.status.as_ref().map(compile),
            headers: response
                .headers
                .iter()
                .map(|(name, raw)| (name.clone(), compile(&Value::String(raw.clone()))))
                .collect(),
            body: response.body.as_ref().map(compile),
            reads_run: false,
        };
        let reads_run = templates.all().any(|t| t.reads("run"));
        templates.reads_run = reads_run;
        templates
    }

    /// The templates that compiled.
    fn all(&self) -> impl Iterator<Item = &Tpl<Value>> {
        let headers = self.headers.iter().map(|(_, t)| t);
        self.status
            .iter()
            .chain(headers)
            .chain(self.body.iter())
            .filter_map(|t| t.as_ref().ok())
    }
}

/// The answer to a dry run.
pub(super) fn dry_run(
    app: &AppState,
    route: &HookRoute,
    dry: &DryRun,
) -> Result<Response, Refused> {
    let value = serde_json::to_value(dry).map_err(ApiError::internal)?;
    let scope = Scope::builder()
        .name("dryrun", value.clone())
        .name("params", dry.params.clone())
        .name("run", json!({"id": "dryrun", "flow": dry.flow}))
        .name("admission", json!("dryrun"))
        .build();
    shape(app, route.response.as_ref(), StatusCode::OK, &value, &scope)
}

/// The answer to a request that was admitted (or refused by the flow's concurrency rule).
pub(super) async fn admitted(
    app: &AppState,
    route: &HookRoute,
    admitted: Admitted,
    wait: Duration,
) -> Result<Response, Refused> {
    let (status, admission, run) = match admitted {
        Admitted::Created(run) => (StatusCode::ACCEPTED, "created", run),
        Admitted::Replaced { run, .. } => (StatusCode::ACCEPTED, "replaced", run),
        Admitted::Existing(run) => (StatusCode::OK, "existing", run),
        Admitted::Deduplicated(run) => (StatusCode::OK, "deduplicated", run),
        skipped @ Admitted::Skipped(_) => {
            return Err(Refused(Box::new(crate::api::admitted_response(skipped))));
        }
    };
    if route.hook.wait {
        return waited(app, route, run.id, None, admission, wait).await;
    }
    answer(app, route, status, admission, Arc::new(run))
}

/// The answer to a waiting request whose run started on this node, with the wait for its
/// end.
pub(super) async fn started_here(
    app: &AppState,
    route: &HookRoute,
    id: RunId,
    end: EndWatch,
    wait: Duration,
) -> Result<Response, Refused> {
    waited(app, route, id, Some(end), "created", wait).await
}

/// Waits for the run's end and answers with it, or `202 {"run_id": …}` when `wait` passes
/// first.
async fn waited(
    app: &AppState,
    route: &HookRoute,
    id: RunId,
    end: Option<EndWatch>,
    admission: &str,
    wait: Duration,
) -> Result<Response, Refused> {
    let Some(ended) = wait_for_end(&app.service, id, end, wait).await? else {
        // Still going: say where to look, whatever the template says.
        let body = json!({ "run_id": id });
        return Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response());
    };
    answer(app, route, StatusCode::OK, admission, ended)
}

/// The answer about `run`: its record for a waited hook, else its id; shaped by the hook's
/// `response` templates.
fn answer(
    app: &AppState,
    route: &HookRoute,
    status: StatusCode,
    admission: &str,
    run: Arc<Run>,
) -> Result<Response, Refused> {
    let (hook, templates) = (&route.hook, route.response.as_ref());
    let location = HeaderValue::from_str(&format!("/api/v1/runs/{}", run.id));
    // The record is the default body of a waited hook, and `run` to templates that read it.
    let default_body = hook.wait && templates.is_none_or(|t| t.body.is_none());
    let reads_run = templates.is_some_and(|t| t.reads_run);
    let redactor = app.service.engine().redactor();
    let params = || {
        if redactor.is_empty() {
            run.params.clone()
        } else {
            redactor.value(&run.params)
        }
    };
    let mut record = Value::Null;
    if default_body || reads_run {
        record = serde_json::to_value(&*run).map_err(ApiError::internal)?;
        if !redactor.is_empty()
            && let Value::Object(fields) = &mut record
        {
            fields.insert("params".to_owned(), params());
        }
    }
    let body = if default_body && reads_run {
        record.clone()
    } else if default_body {
        std::mem::take(&mut record)
    } else if hook.wait {
        Value::Null
    } else {
        json!({ "run_id": run.id })
    };
    let scope = if templates.is_some() {
        let params = params();
        // The record is usually this answer's alone by now: its data is taken, not copied.
        let data = Arc::try_unwrap(run).map_or_else(|shared| shared.data.clone(), |run| run.data);
        let mut scope = Scope::builder()
            .data(data)
            .name("params", params)
            .name("admission", json!(admission));
        if reads_run {
            scope = scope.name("run", record);
        }
        scope.build()
    } else {
        Scope::default()
    };
    let mut response = shape(app, templates, status, &body, &scope)?;
    if let Ok(location) = location {
        response
            .headers_mut()
            .entry(header::LOCATION)
            .or_insert(location);
    }
    Ok(response)
}

/// Waits for the run's end, at most `timeout`; `None` when it has not ended by then. `end`
/// is a wait begun before the run could end (a run started here), if any.
async fn wait_for_end(
    service: &Service,
    id: RunId,
    mut end: Option<EndWatch>,
    timeout: Duration,
) -> Result<Option<Arc<Run>>, Refused> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut watch = if let Some(watch) = end.take() {
            watch
        } else {
            // Registered before reading the status, so an end in between is not missed.
            let watch = service.feed().watch_end(id);
            match service.store().run(&id).await? {
                Some(run) if run.status.is_final() => return Ok(Some(Arc::new(run))),
                Some(_) => {}
                // A run started here is recorded at its end at the latest: this one could
                // not be (the node's log says why), so nothing was accepted.
                None => {
                    return Err(
                        ApiError::internal(format!("run {id} could not be recorded")).into(),
                    );
                }
            }
            watch
        };
        let recheck = if service.feed().hears_other_nodes() {
            TOLD_RECHECK
        } else {
            RECHECK
        };
        tokio::select! {
            record = watch.ended() => {
                if let Some(run) = record {
                    return Ok(Some(run));
                }
            }
            () = tokio::time::sleep(recheck) => {}
            () = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}

/// The default answer, or the one the trigger's `response` templates make.
fn shape(
    app: &AppState,
    templates: Option<&ResponseTemplates>,
    status: StatusCode,
    body: &Value,
    scope: &Scope,
) -> Result<Response, Refused> {
    let redactor = app.service.engine().redactor();
    let Some(templates) = templates else {
        return Ok((status, axum::Json(redactor.value(body))).into_response());
    };
    let status = match &templates.status {
        None => status,
        Some(template) => {
            let value = render(template, scope, "status")?;
            let code = match &value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            code.and_then(|c| u16::try_from(c).ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| {
                    ApiError::internal(format!(
                        "the webhook's `response.status` rendered `{value}`, not an HTTP status"
                    ))
                })?
        }
    };
    let body = match &templates.body {
        None => redactor.value(body),
        Some(template) => redactor.redact(render(template, scope, "body")?),
    };
    let mut response = match body {
        Value::String(text) => (status, text).into_response(),
        other => (status, axum::Json(other)).into_response(),
    };
    for (name, template) in &templates.headers {
        let value = render(template, scope, &format!("headers.{name}"))?;
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let text = redactor.text(&text);
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&text),
        ) else {
            return Err(ApiError::internal(format!(
                "the webhook's `response.headers.{name}` is not a valid header"
            ))
            .into());
        };
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

fn render(template: &Compiled, scope: &Scope, setting: &str) -> Result<Value, Refused> {
    let template = template.as_ref().map_err(|e| {
        ApiError::internal(format!(
            "the webhook's `response.{setting}` is invalid: {e}"
        ))
    })?;
    template.render(scope).map_err(|e| {
        ApiError::internal(format!(
            "cannot render the webhook's `response.{setting}`: {e}"
        ))
        .into()
    })
}
