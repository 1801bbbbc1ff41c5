//! Runs (SPEC §11.3): list with filters, show with step runs, files of the run's workspace,
//! cancel and retry. Logs are in [`super::logs`], the job tracker's view in
//! [`super::tracker`].

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use octoflow_core::service::RetryError;
use octoflow_core::store::{Admitted, Page, Paged, Run, RunFilter, RunId, RunStatus, StepRun};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::flows::{no_flow, runnable};
use super::{PageQuery, admitted_response, find_run};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, query_error};
use crate::{AppState, Shared};

pub(crate) use super::logs::logs;

/// Filters of `GET /api/v1/runs`.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only this flow.
    flow: Option<String>,
    /// Only these statuses, comma-separated (`failed,timed_out`).
    status: Option<String>,
    /// Only this trigger kind (`manual`, `schedule`, `webhook`, `retry`, …).
    trigger: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Created before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    /// Only the children of this run (the runs its `flow` steps started).
    #[param(value_type = Option<String>, format = Uuid)]
    parent: Option<String>,
    /// 1-based page (default 1).
    #[param(value_type = Option<u32>, minimum = 1)]
    page: Option<String>,
    /// Items per page (default 50, at most 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    per_page: Option<String>,
}

impl RunsQuery {
    /// The filter the query asks for; a bad value is `400` naming its field.
    pub(crate) fn filter(&self) -> Result<RunFilter, ApiError> {
        let mut status = Vec::new();
        for word in self.status.iter().flat_map(|s| s.split(',')) {
            let word = word.trim();
            if word.is_empty() {
                continue;
            }
            let parsed = word.parse::<RunStatus>().map_err(|_| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                query_error(
                    "status",
                    &format!("unknown run status `{word}`; use {}", known.join(", ")),
                )
            })?;
            status.push(parsed);
        }
        Ok(RunFilter {
            flow: self.flow.clone().filter(|f| !f.is_empty()),
            status,
            trigger: self.trigger.clone().filter(|t| !t.is_empty()),
            since: time("since", self.since.as_deref())?,
            until: time("until", self.until.as_deref())?,
            parent: self.parent_id()?,
        })
    }

    fn parent_id(&self) -> Result<Option<RunId>, ApiError> {
        let Some(text) = self.parent.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        text.parse()
            .map(Some)
            .map_err(|_| query_error("parent", &format!("`{text}` is not a run id")))
    }
}

fn time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            query_error(
                field,
                &format!("invalid RFC 3339 time `{text}` ({e}); use 2026-01-31T12:00:00Z"),
            )
        })
}

impl RunsQuery {
    /// The page the query asks for; a bad value is `400` naming its field.
    pub(crate) fn page(&self) -> Result<Page, ApiError> {
        PageQuery {
            page: self.page.clone(),
            per_page: self.per_page.clone(),
        }
        .page()
    }
}

/// Lists runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, description = "A page of runs", body = inline(Paged<Run>)),
        (status = 400, description = "A bad filter; `details.field` names it", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<axum::Json<Paged<Run>>, ApiError> {
    let filter = query.filter()?;
    let page = query.page()?;
    let mut runs = state.service.store().list_runs(&filter, page).await?;
    for run in &mut runs.items {
        redact(&state, run);
    }
    Ok(axum::Json(runs))
}

/// A run with its step runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunDetail {
    #[serde(flatten)]
    run: Run,
    /// Every step attempt, in the order they started.
    steps: Vec<StepRun>,
}

/// Shows a run with its step runs.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "The run and its step runs", body = RunDetail),
        (status = 404, description = "No such run", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunDetail>, ApiError> {
    let mut run = find_run(&state, &id).await?;
    redact(&state, &mut run);
    let steps = state.service.store().step_runs(&run.id).await?;
    Ok(axum::Json(RunDetail { run, steps }))
}

/// Masks secrets in what a run answer shows (its data is stored redacted; params are not).
pub(crate) fn redact(state: &AppState, run: &mut Run) {
    let redactor = state.service.engine().redactor();
    if !redactor.is_empty() {
        run.params = redactor.value(&run.params);
    }
}

/// Sends a file of the run's workspace (`<data>/runs/<id>/`).
#[utoipa::path(get, path = "/api/v1/runs/{id}/files/{path}", tag = "runs",
    params(("id" = String, Path, description = "The run id"),
        ("path" = String, Path, description = "The file, relative to the run's workspace")),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "The path leaves the workspace or is a directory", body = ErrorBody),
        (status = 404, description = "No such run or file", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn file(
    State(state): State<Shared>,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let run = find_run(&state, &id).await?;
    let relative = confined(&path)?;
    let workspace = state
        .service
        .engine()
        .config()
        .files
        .data_dir()
        .join("runs")
        .join(run.id.to_string());
    let missing = || ApiError::not_found(format!("run `{}` has no file `{path}`", run.id));
    let Ok(root) = tokio::fs::canonicalize(&workspace).await else {
        return Err(missing());
    };
    let real = match tokio::fs::canonicalize(root.join(&relative)).await {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    if !real.starts_with(&root) {
        return Err(ApiError::bad_request(format!(
            "path `{path}` leaves the run's workspace"
        )));
    }
    let file = tokio::fs::File::open(&real)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing(),
            _ => ApiError::internal(e),
        })?;
    let meta = file.metadata().await.map_err(ApiError::internal)?;
    if meta.is_dir() {
        return Err(ApiError::bad_request(format!("`{path}` is a directory")));
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&real)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    // A file a run wrote is a download, never a page of this server (docs/auth.md).
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\', '\r', '\n'], "_"))
        .unwrap_or_default();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    Ok(response)
}

/// The path as relative normal components; `..`, a root or an empty path is `400`.
fn confined(path: &str) -> Result<PathBuf, ApiError> {
    let given = FsPath::new(path);
    let mut out = PathBuf::new();
    for part in given.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ApiError::bad_request(format!(
                    "path `{path}` must stay inside the run's workspace (no `..`, not absolute)"
                ))
                .with_details(json!({ "path": path })));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(ApiError::bad_request(
            "give a file path inside the run's workspace",
        ));
    }
    Ok(out)
}

fn content_type(path: &FsPath) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("json") => "application/json",
        Some("txt" | "log" | "md") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("yml" | "yaml") => "application/yaml",
        Some("xml") => "application/xml",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gz") => "application/gzip",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Cancels a run: a queued one ends at once, a running one is stopped by its node.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "The run as it is now", body = Run),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has already ended", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<axum::Json<Run>, ApiError> {
    Ok(axum::Json(cancel_run(&state, &id).await?))
}

/// Cancels run `id` (see [`Service::cancel`](octoflow_core::service::Service::cancel));
/// an ended run is `409`. Returns the run as it is now, redacted.
pub(crate) async fn cancel_run(state: &AppState, id: &str) -> Result<Run, ApiError> {
    let run = find_run(state, id).await?;
    if run.status.is_final() {
        return Err(ended(&run));
    }
    let mut run = state
        .service
        .cancel(&run.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    redact(state, &mut run);
    Ok(run)
}

fn ended(run: &Run) -> ApiError {
    ApiError::conflict(format!(
        "run `{}` has already ended ({})",
        run.id, run.status
    ))
    .with_details(json!({ "run_id": run.id, "status": run.status }))
}

/// `POST /api/v1/runs/{id}/retry`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryRequest {
    /// Reuse the results of the steps that succeeded and start at the failed one.
    #[serde(default)]
    from_failed: bool,
}

/// Starts a new run with the params of an ended one.
#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    request_body = RetryRequest,
    responses((status = 201, description = "The new run", body = Run),
        (status = 200, description = "An existing run answered instead (`dedupe`)", body = Run),
        (status = 404, description = "No such run, or its flow is gone", body = ErrorBody),
        (status = 409, description = "The run has not ended, or a `skip` flow is busy", body = ErrorBody),
        (status = 422, description = "The flow has no valid version", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn retry(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RetryRequest>,
) -> Result<Response, ApiError> {
    Ok(admitted_response(
        retry_run(&state, &id, body.from_failed).await?,
    ))
}

/// Starts a new run of run `id`'s flow with its params and input (from its failed step with
/// `from_failed`); a run not ended yet is `409`.
pub(crate) async fn retry_run(
    state: &AppState,
    id: &str,
    from_failed: bool,
) -> Result<Admitted, ApiError> {
    let run = find_run(state, id).await?;
    if !run.status.is_final() {
        return Err(ApiError::conflict(format!(
            "run `{}` has not ended yet ({}); cancel it first",
            run.id, run.status
        ))
        .with_details(json!({ "run_id": run.id, "status": run.status })));
    }
    runnable(state, &run.flow)?;
    match state.service.retry(&run, from_failed).await {
        Ok(admitted) => Ok(admitted),
        Err(RetryError::NotEnded(_)) => Err(ended(&run)),
        Err(RetryError::FlowGone(flow)) => Err(no_flow(&flow)),
        Err(RetryError::Accept(error)) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_stay_inside() {
        #[track_caller]
        fn case(path: &str, expected: Option<&str>) {
            assert_eq!(
                confined(path).ok().map(|p| p.display().to_string()),
                expected.map(str::to_owned)
            );
        }
        case("out/report.csv", Some("out/report.csv"));
        case("./a.txt", Some("a.txt"));
        case("../x", None);
        case("a/../../x", None);
        case("/etc/passwd", None);
        case("", None);
    }

    #[test]
    fn filters_name_the_bad_field() {
        let query = RunsQuery {
            status: Some("failed, nope".to_owned()),
            ..RunsQuery::default()
        };
        assert_eq!(query.filter().unwrap_err().details["field"], "status");
        let query = RunsQuery {
            since: Some("yesterday".to_owned()),
            ..RunsQuery::default()
        };
        assert_eq!(query.filter().unwrap_err().details["field"], "since");
        let query = RunsQuery {
            status: Some("failed,timed_out".to_owned()),
            until: Some("2026-01-31T12:00:00+01:00".to_owned()),
            ..RunsQuery::default()
        };
        let filter = query.filter().unwrap();
        assert_eq!(filter.status, vec![RunStatus::Failed, RunStatus::TimedOut]);
        assert_eq!(
            filter.until.unwrap().to_rfc3339(),
            "2026-01-31T11:00:00+00:00"
        );
    }
}
