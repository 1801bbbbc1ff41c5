//! `POST /api/v1/runs/{id}/callback` (SPEC §11.4): an external job started by a step reports
//! progress, a log line or its end. It needs no user token: the run's own callback token (in
//! `run.callback_url`, as `?token=`, or in the `X-Octoflow-Callback-Token` header) is checked
//! with the node-shared key.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use octoflow_core::service::CallbackReport;
use octoflow_core::store::{RunId, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::parse_run_id;
use crate::Shared;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, parse_json};

/// The header that may carry the callback token instead of the query.
pub(crate) const TOKEN_HEADER: &str = "x-octoflow-callback-token";

/// `?token=` of the callback route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The run's callback token (or send the `X-Octoflow-Callback-Token` header).
    token: Option<String>,
}

/// The answer to a callback.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CallbackAnswer {
    /// The run.
    run_id: RunId,
    /// Its status when the report was recorded.
    status: RunStatus,
}

/// Records an external job's report on its run.
#[utoipa::path(post, path = "/api/v1/runs/{id}/callback", tag = "runs",
    params(("id" = String, Path, description = "The run id"), CallbackQuery),
    request_body = CallbackReport,
    responses((status = 200, description = "Recorded", body = CallbackAnswer),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Missing or wrong callback token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has ended", body = ErrorBody)))]
pub(crate) async fn report(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<CallbackQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<CallbackAnswer>, ApiError> {
    let run_id = parse_run_id(&id)?;
    let token = query.token.or_else(|| {
        headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthenticated(
            "missing callback token; send `?token=` or the `X-Octoflow-Callback-Token` header",
        ));
    };
    let signer = state.service.engine().callbacks();
    if !signer.is_some_and(|s| s.verify(&run_id, &token)) {
        return Err(ApiError::unauthenticated(format!(
            "invalid callback token for run `{run_id}`"
        )));
    }
    let run = state
        .service
        .store()
        .run(&run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{run_id}`")))?;
    if run.status.is_final() {
        return Err(ApiError::conflict(format!(
            "run `{run_id}` has already ended ({})",
            run.status
        ))
        .with_details(json!({ "run_id": run_id, "status": run.status })));
    }
    let report: CallbackReport = parse_json(&body)?;
    let run = state
        .service
        .callback(&run_id, &report)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{run_id}`")))?;
    Ok(axum::Json(CallbackAnswer {
        run_id,
        status: run.status,
    }))
}
