//! Flows (SPEC §11.2): list and show the library, write and remove flow files, start and dry
//! run a flow, and validate YAML without saving it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use octoflow_core::engine::RunRequest;
use octoflow_core::flow::{Flow, Trigger};
use octoflow_core::library::{FlowEntry, PutError};
use octoflow_core::store::{Page, Paged, Run, RunFilter, TriggerInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{PageQuery, admitted_response, blocking, paginate};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, problem_list};
use crate::extract::{ApiJson, ApiQuery, TextBody};
use crate::{AppState, Shared};

/// A flow as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowSummary {
    /// Its name.
    name: String,
    /// Its one-line description.
    description: Option<String>,
    /// Its file, relative to the flows directory.
    path: String,
    /// Hash of the version that runs (the last that validated); `null` when none did.
    version: Option<String>,
    /// Whether the file's current text validates.
    valid: bool,
    /// Declared params by name: `{type, description, enum, default, required, …}`.
    #[schema(value_type = Object)]
    params: Map<String, Value>,
    /// Schedules and other triggers: `{kind, …, summary}` (`summary`: one line for people).
    #[schema(value_type = Vec<Object>)]
    triggers: Vec<Value>,
    /// What is wrong with the current text: `[{line, column, path, message}]`.
    #[schema(value_type = Vec<Object>)]
    problems: Vec<Value>,
    /// The newest run: `{id, status, created_at, finished_at}`.
    #[schema(value_type = Option<Object>)]
    last_run: Option<Value>,
    /// When the flow's earliest active schedule fires next; `null` without one.
    next_fire: Option<chrono::DateTime<chrono::Utc>>,
}

/// A flow in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowDetail {
    #[serde(flatten)]
    summary: FlowSummary,
    /// The file's current text.
    source: String,
    /// The concurrency rule `{key, policy, limit}`.
    #[schema(value_type = Option<Object>)]
    concurrency: Option<Value>,
    /// The run's timeout in seconds.
    timeout_seconds: Option<f64>,
    /// The steps: `{name, type, when, depends, result_key}`.
    #[schema(value_type = Vec<Object>)]
    steps: Vec<Value>,
}

/// Lists the flows.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows", params(PageQuery),
    responses((status = 200, description = "A page of flows", body = inline(Paged<FlowSummary>)),
        (status = 400, description = "Bad page", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<axum::Json<Paged<FlowSummary>>, ApiError> {
    let page = paginate(state.flows.entries(), query.page()?);
    let next_fires = state.scheduler.next_fires().await?;
    let mut items = Vec::with_capacity(page.items.len());
    for entry in &page.items {
        let newest = recent_runs(&state, &entry.name, 1).await?;
        items.push(summary(&state, entry, &next_fires, &newest));
    }
    Ok(axum::Json(Paged {
        items,
        page: page.page,
        per_page: page.per_page,
        total: page.total,
    }))
}

/// Shows one flow, with its source.
#[utoipa::path(get, path = "/api/v1/flows/{name}", tag = "flows",
    params(("name" = String, Path, description = "The flow")),
    responses((status = 200, description = "The flow", body = FlowDetail),
        (status = 404, description = "No such flow", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<axum::Json<FlowDetail>, ApiError> {
    let entry = state.flows.entry(&name).ok_or_else(|| no_flow(&name))?;
    Ok(axum::Json(detail(&state, &entry).await?))
}

/// Writes a flow file (YAML body), after validating it.
#[utoipa::path(put, path = "/api/v1/flows/{name}", tag = "flows",
    params(("name" = String, Path, description = "The flow")),
    request_body(content = String, description = "The flow's YAML", content_type = "application/yaml"),
    responses((status = 200, description = "Replaced", body = FlowDetail),
        (status = 201, description = "Created", body = FlowDetail),
        (status = 422, description = "Not valid: `details.errors`", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put(
    State(state): State<Shared>,
    Path(name): Path<String>,
    TextBody(text): TextBody,
) -> Result<Response, ApiError> {
    let existed = state.flows.entry(&name).is_some();
    let library = state.flows.clone();
    let saved = {
        let name = name.clone();
        blocking(move || library.put(&name, &text)).await?
    };
    match saved {
        Ok(_) => {}
        Err(PutError::Invalid(problems)) => {
            return Err(ApiError::invalid_flow(&name, &problems.items));
        }
        Err(error @ PutError::Io { .. }) => return Err(ApiError::internal(error)),
    }
    let entry = state.flows.entry(&name).ok_or_else(|| no_flow(&name))?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(detail(&state, &entry).await?)).into_response())
}

/// Removes a flow file; its runs stay.
#[utoipa::path(delete, path = "/api/v1/flows/{name}", tag = "flows",
    params(("name" = String, Path, description = "The flow")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such flow", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let library = state.flows.clone();
    let removed = {
        let name = name.clone();
        blocking(move || library.remove(&name)).await?
    };
    match removed {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(no_flow(&name)),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// `POST /api/v1/flows/{name}/runs`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartRequest {
    /// The run's params.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
    /// A run made earlier for this flow with the same key is answered instead (200).
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Starts a run.
#[utoipa::path(post, path = "/api/v1/flows/{name}/runs", tag = "flows",
    params(("name" = String, Path, description = "The flow")),
    request_body = StartRequest,
    responses((status = 201, description = "A new run", body = octoflow_core::store::Run),
        (status = 200, description = "An existing run (same idempotency key, or `dedupe`)", body = octoflow_core::store::Run),
        (status = 400, description = "Bad body or params", body = ErrorBody),
        (status = 404, description = "No such flow", body = ErrorBody),
        (status = 409, description = "Skipped: `details.run_id` is the blocking run", body = ErrorBody),
        (status = 422, description = "The flow has no valid version", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn start(
    State(state): State<Shared>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    ApiJson(body): ApiJson<StartRequest>,
) -> Result<Response, ApiError> {
    let flow = runnable(&state, &name)?;
    let mut request = RunRequest::new(body.params);
    let by = caller.and_then(|Extension(c)| c.name);
    request.trigger = TriggerInfo {
        kind: "manual".to_owned(),
        detail: json!({ "via": "api", "by": by }),
    };
    let admitted = state
        .service
        .start(&flow, request, body.idempotency_key)
        .await?;
    Ok(admitted_response(admitted))
}

/// `POST /api/v1/flows/{name}/dryrun`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DryRunRequest {
    /// The params to render with.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
}

/// Renders every step against the params; nothing runs, nothing is recorded.
#[utoipa::path(post, path = "/api/v1/flows/{name}/dryrun", tag = "flows",
    params(("name" = String, Path, description = "The flow")),
    request_body = DryRunRequest,
    responses((status = 200, description = "`{flow, params, steps: [{name, type, settings, skipped, notes}]}`", body = Object),
        (status = 400, description = "Bad body or params", body = ErrorBody),
        (status = 404, description = "No such flow", body = ErrorBody),
        (status = 422, description = "The flow has no valid version", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn dry_run(
    State(state): State<Shared>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DryRunRequest>,
) -> Result<Response, ApiError> {
    let flow = runnable(&state, &name)?;
    let dry = state
        .service
        .engine()
        .dry_run(&flow, &RunRequest::new(body.params))?;
    Ok(axum::Json(dry).into_response())
}

/// `?name=` of `POST /api/v1/validate`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ValidateQuery {
    /// Validate as this flow (default: the `name:` in the text).
    name: Option<String>,
}

/// The answer of `POST /api/v1/validate`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Validation {
    /// Whether the text is a valid flow.
    valid: bool,
    /// Every problem: `[{line, column, path, message}]`.
    #[schema(value_type = Vec<Object>)]
    errors: Vec<Value>,
}

/// Validates flow YAML without saving it; always `200`.
#[utoipa::path(post, path = "/api/v1/validate", tag = "flows", params(ValidateQuery),
    request_body(content = String, description = "The flow's YAML", content_type = "application/yaml"),
    responses((status = 200, description = "Whether it is valid, and every problem", body = Validation)),
    security(("bearer" = [])))]
pub(crate) async fn validate(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<ValidateQuery>,
    TextBody(text): TextBody,
) -> Result<axum::Json<Validation>, ApiError> {
    let name = query.name.unwrap_or_else(|| declared_name(&text));
    let library = state.flows.clone();
    let checked = blocking(move || library.check(&name, &text).map(drop)).await?;
    Ok(axum::Json(match checked {
        Ok(()) => Validation {
            valid: true,
            errors: Vec::new(),
        },
        Err(problems) => Validation {
            valid: false,
            errors: problem_list(&problems.items),
        },
    }))
}

/// The `name:` a YAML text declares, else `flow`.
fn declared_name(text: &str) -> String {
    octoflow_core::yaml::from_str::<Value>(text)
        .ok()
        .and_then(|doc| doc.get("name").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "flow".to_owned())
}

pub(crate) fn no_flow(name: &str) -> ApiError {
    ApiError::not_found(format!("no flow named `{name}`"))
}

/// The version of a flow that runs: `404` when there is no such flow, `422` when it has
/// never validated.
pub(crate) fn runnable(state: &AppState, name: &str) -> Result<Arc<Flow>, ApiError> {
    let entry = state.flows.entry(name).ok_or_else(|| no_flow(name))?;
    entry
        .flow
        .ok_or_else(|| ApiError::invalid_flow(name, &entry.problems))
}

/// The newest `most` runs of flow `name`, newest first.
pub(crate) async fn recent_runs(
    state: &AppState,
    name: &str,
    most: u32,
) -> Result<Vec<Run>, ApiError> {
    let filter = RunFilter {
        flow: Some(name.to_owned()),
        ..RunFilter::default()
    };
    let page = Page {
        page: 1,
        per_page: most,
    };
    Ok(state.service.store().list_runs(&filter, page).await?.items)
}

/// A flow as the API lists it; `recent` are its newest runs, newest first (one is enough).
pub(crate) fn summary(
    state: &AppState,
    entry: &FlowEntry,
    next_fires: &HashMap<String, chrono::DateTime<chrono::Utc>>,
    recent: &[Run],
) -> FlowSummary {
    let flow = entry.flow.as_deref();
    let last_run = recent.first().map(|run| {
        json!({"id": run.id, "status": run.status, "created_at": run.created_at, "finished_at": run.finished_at})
    });
    let path = entry
        .path
        .strip_prefix(state.flows.dir())
        .unwrap_or(&entry.path)
        .display()
        .to_string();
    FlowSummary {
        name: entry.name.clone(),
        description: flow.and_then(|f| f.description.clone()),
        path,
        version: flow.map(|f| f.version.clone()),
        valid: entry.problems.is_empty(),
        params: flow.map(params_of).unwrap_or_default(),
        triggers: flow.map(triggers_of).unwrap_or_default(),
        problems: problem_list(&entry.problems),
        last_run,
        next_fire: next_fires.get(&entry.name).copied(),
    }
}

pub(crate) async fn detail(state: &AppState, entry: &FlowEntry) -> Result<FlowDetail, ApiError> {
    let flow = entry.flow.as_deref();
    let next_fires = state.scheduler.next_fires().await?;
    let newest = recent_runs(state, &entry.name, 1).await?;
    Ok(FlowDetail {
        summary: summary(state, entry, &next_fires, &newest),
        source: entry.source.to_string(),
        concurrency: flow
            .and_then(|f| f.concurrency.as_ref())
            .and_then(|c| serde_json::to_value(c).ok()),
        timeout_seconds: flow.and_then(|f| f.timeout).map(|t| t.as_secs_f64()),
        steps: flow.map(steps_of).unwrap_or_default(),
    })
}

fn params_of(flow: &Flow) -> Map<String, Value> {
    flow.params
        .iter()
        .map(|(name, spec)| {
            let spec = serde_json::to_value(spec).unwrap_or(Value::Null);
            (name.to_owned(), spec)
        })
        .collect()
}

fn steps_of(flow: &Flow) -> Vec<Value> {
    flow.steps
        .iter()
        .map(|step| {
            let when: Vec<&str> = step.when.iter().map(octoflow_core::expr::Expr::source).collect();
            json!({"name": step.name, "type": step.kind, "when": when, "depends": step.depends, "result_key": step.result_key})
        })
        .collect()
}

/// Each schedule and trigger as `{kind, …, summary}`; webhook auth shows only its kind.
fn triggers_of(flow: &Flow) -> Vec<Value> {
    let schedule = |s: &octoflow_core::flow::Schedule| json!({"kind": "schedule", "cron": s.cron, "every_seconds": s.every_seconds, "timezone": s.timezone, "summary": s.summary()});
    let mut out: Vec<Value> = flow.schedules.iter().map(schedule).collect();
    for trigger in &flow.triggers {
        let mut item = match trigger {
            Trigger::Schedule(s) => schedule(s),
            Trigger::Webhook(hook) => {
                let auth = hook.auth.kind();
                json!({"kind": "webhook", "path": hook.path, "methods": hook.methods, "auth": auth, "wait": hook.wait, "dryrun": hook.dryrun})
            }
            Trigger::Watch(watch) => {
                let settle = octoflow_core::flow::format_duration(watch.settle());
                json!({"kind": "watch", "path": watch.path, "pattern": watch.pattern, "settle": settle, "recursive": watch.recursive, "existing": watch.existing})
            }
            Trigger::Flow(upstream) => {
                json!({"kind": "flow", "name": upstream.name, "status": upstream.status})
            }
        };
        item["summary"] = json!(trigger.summary());
        out.push(item);
    }
    out
}
