//! A run as the job tracker sees it (SPEC §13): its tracker document, and updates of its
//! context from outside while it runs.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use octoflow_core::engine::ContextError;
use octoflow_core::store::{Run, RunStatus};
use octoflow_core::tracker::Tracker;
use serde_json::{Map, Value, json};

use super::find_run;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::{AppState, Shared};

/// The run as a job tracker document. A run running on this node shows its context as it is
/// now (step results and updates included); others show their recorded data.
#[utoipa::path(get, path = "/api/v1/runs/{id}/tracker", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "The tracker document", body = Object),
        (status = 404, description = "No such run", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn tracker(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut run = find_run(&state, &id).await?;
    if run.status == RunStatus::Running
        && let Ok(live) = state.service.update_context(&run, Map::new()).await
    {
        run.data = live;
    }
    document(&state, &run).await
}

/// Updates a running run's context: the body is a JSON merge patch of its data (RFC 7396:
/// keys set, `null` removes one, objects merge). The tracker file and the run's end see it,
/// and the run's log notes it. Answers with the tracker document.
#[utoipa::path(patch, path = "/api/v1/runs/{id}/context", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    request_body(content = Object, description = "Keys of the run's data to set (`null` removes)"),
    responses((status = 200, description = "The tracker document, with the context updated", body = Object),
        (status = 400, description = "Not a JSON object, or a key of the engine's (`__…`)", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is queued, has ended, or runs on another node", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn update_context(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiJson(values): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let mut run = find_run(&state, &id).await?;
    run.data = state
        .service
        .update_context(&run, values)
        .await
        .map_err(|error| refused(&run, &error))?;
    document(&state, &run).await
}

fn refused(run: &Run, error: &ContextError) -> ApiError {
    match error {
        ContextError::Reserved(key) => {
            ApiError::bad_request(error.to_string()).with_details(json!({ "field": key }))
        }
        ContextError::NotStarted(_) | ContextError::Ended(..) | ContextError::NotRunning(_) => {
            ApiError::conflict(error.to_string())
                .with_details(json!({ "run_id": run.id, "status": run.status }))
        }
    }
}

/// The tracker document of `run`, its steps from its flow (or, when the flow is gone, the
/// steps that ran, in the order they first ran).
async fn document(state: &AppState, run: &Run) -> Result<Response, ApiError> {
    let step_runs = state.service.store().step_runs(&run.id).await?;
    let steps: Vec<String> = if let Some(flow) = state.flows.flow(&run.flow) {
        flow.steps.iter().map(|s| s.name.clone()).collect()
    } else {
        let mut names: Vec<String> = Vec::new();
        for step in &step_runs {
            if !names.contains(&step.step) {
                names.push(step.step.clone());
            }
        }
        names
    };
    let document = Tracker::from_records(run, &steps, &step_runs)
        .validate()
        .map_err(ApiError::internal)?;
    Ok(axum::Json(document).into_response())
}
