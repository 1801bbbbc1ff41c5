//! Liveness, readiness and metrics (SPEC §11.4), open to probes without a token.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Shared;
use crate::error::{ApiError, ErrorBody};

/// A probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health)))]
pub(crate) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The store answers (503 when it does not).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        (status = 503, description = "`{\"status\": \"unavailable\"}`: the store cannot be reached", body = Health)))]
pub(crate) async fn readyz(State(state): State<Shared>) -> Response {
    match state.service.store().queue_depth().await {
        Ok(_) => axum::Json(Health { status: "ready" }).into_response(),
        Err(error) => {
            tracing::warn!(error = %octoflow_core::error::chain(&error), "Store unreachable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Health {
                    status: "unavailable",
                }),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics, with `octoflow_queue_depth` read from the store.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are not enabled", body = ErrorBody)))]
pub(crate) async fn metrics(State(state): State<Shared>) -> Result<Response, ApiError> {
    let Some(handle) = &state.metrics else {
        return Err(ApiError::not_found(
            "metrics are not enabled on this server",
        ));
    };
    match state.service.store().queue_depth().await {
        #[allow(clippy::cast_precision_loss)] // A queue of 2^52 runs is not a concern.
        Ok(depth) => metrics::gauge!("octoflow_queue_depth").set(depth as f64),
        Err(error) => {
            tracing::warn!(error = %octoflow_core::error::chain(&error), "Cannot read the queue depth.");
        }
    }
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
