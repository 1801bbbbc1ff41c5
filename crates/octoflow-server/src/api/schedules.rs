//! Schedules (SPEC §7, §11.4): list the file and API schedules with their last and next
//! fire times; add, pause, resume and remove them. Every change is kept in the store and
//! taken up by the scheduler at once.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::scheduler::{ScheduleError, ScheduleView};
use octoflow_core::store::Paged;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::flows::runnable;
use super::{PageQuery, paginate};
use crate::Shared;
use crate::error::{ApiError, Code, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};

/// `POST /api/v1/schedules`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSchedule {
    /// The flow to start.
    flow: String,
    /// Cron expression: 5 fields, or 6 with seconds first (give this or `every_seconds`).
    #[serde(default)]
    cron: Option<String>,
    /// Interval in seconds, at least 1.
    #[serde(default)]
    every_seconds: Option<u64>,
    /// IANA time zone of `cron` (default UTC).
    #[serde(default)]
    timezone: Option<String>,
    /// Missed ticks after downtime: `none`, `last` (default) or `all`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    catchup: Catchup,
    /// Params of the runs it starts (checked against the flow's).
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
}

/// Lists every schedule: those of the flow files, then those added through the API.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(PageQuery),
    responses((status = 200, description = "A page of schedules", body = inline(Paged<ScheduleView>)),
        (status = 400, description = "Bad page", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<axum::Json<Paged<ScheduleView>>, ApiError> {
    let page = query.page()?;
    let schedules = state.scheduler.list().await?;
    Ok(axum::Json(paginate(schedules, page)))
}

/// Adds a schedule; it fires from its next tick on.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules",
    request_body = NewSchedule,
    responses((status = 201, description = "The schedule", body = ScheduleView),
        (status = 400, description = "Bad body, schedule or params: `details.field` names the field", body = ErrorBody),
        (status = 404, description = "No such flow", body = ErrorBody),
        (status = 422, description = "The flow has no valid version", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn add(
    State(state): State<Shared>,
    ApiJson(body): ApiJson<NewSchedule>,
) -> Result<Response, ApiError> {
    let flow = runnable(&state, &body.flow)?;
    let schedule = Schedule {
        cron: body.cron,
        every_seconds: body.every_seconds,
        timezone: body.timezone,
        catchup: body.catchup,
        params: body.params,
    };
    let view = state.scheduler.add(&flow, schedule).await?;
    let mut response = (StatusCode::CREATED, axum::Json(&view)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/schedules/{}", view.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Pauses a schedule (from a flow file or the API) until it is resumed.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/pause", tag = "schedules",
    params(("id" = String, Path, description = "The schedule: its id, or `flow:<name>:<index>`")),
    responses((status = 200, description = "The schedule, paused", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    Ok(axum::Json(state.scheduler.pause(&id).await?))
}

/// Resumes a paused schedule; the ticks it missed while paused are not caught up.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/resume", tag = "schedules",
    params(("id" = String, Path, description = "The schedule: its id, or `flow:<name>:<index>`")),
    responses((status = 200, description = "The schedule, resumed", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 409, description = "The schedule was removed", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    Ok(axum::Json(state.scheduler.resume(&id).await?))
}

/// Removes a schedule; it fires no more. A flow file's schedule stays listed as `removed`, and
/// stays removed across restarts and reloads while its file declares the same cadence.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule: its id, or `flow:<name>:<index>`")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such schedule", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.scheduler.remove(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<ScheduleError> for ApiError {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::Invalid(problems) => {
                let field = |f: &str| {
                    if f.is_empty() {
                        "cron".to_owned()
                    } else {
                        f.to_owned()
                    }
                };
                let errors: Vec<Value> = problems
                    .iter()
                    .map(|(f, m)| json!({"field": field(f), "message": m}))
                    .collect();
                let text: Vec<String> = problems
                    .iter()
                    .map(|(f, m)| format!("`{}`: {m}", field(f)))
                    .collect();
                let first = problems.first().map(|(f, _)| field(f)).unwrap_or_default();
                ApiError::bad_request(format!("invalid schedule: {}", text.join("; ")))
                    .with_details(json!({ "field": first, "errors": errors }))
            }
            ScheduleError::Params(problems) => {
                octoflow_core::engine::AcceptError::Params(problems).into()
            }
            ScheduleError::NotFound(id) => ApiError::not_found(format!("no schedule `{id}`")),
            error @ ScheduleError::Removed(_) => ApiError::new(Code::Conflict, error.to_string()),
            ScheduleError::Store(error) => error.into(),
        }
    }
}
