//! Concurrency locks (SPEC §8, §11.4): the held keys with their runs, and freeing stale ones.

use axum::extract::{Path, State};
use octoflow_core::store::{LockInfo, Paged};
use serde::Serialize;

use super::{PageQuery, paginate};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::{AppState, Shared};

/// How many holds a release freed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Released {
    /// Holds released.
    released: u64,
}

/// Lists the held keys, oldest first.
#[utoipa::path(get, path = "/api/v1/locks", tag = "locks", params(PageQuery),
    responses((status = 200, description = "A page of held keys", body = inline(Paged<LockInfo>))),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<axum::Json<Paged<LockInfo>>, ApiError> {
    let page = query.page()?;
    let locks = state.service.store().locks().await?;
    Ok(axum::Json(paginate(locks, page)))
}

/// Frees one key (its runs go on running but no longer count against the limit).
#[utoipa::path(delete, path = "/api/v1/locks/{key}", tag = "locks",
    params(("key" = String, Path, description = "The concurrency key (URL-encoded)")),
    responses((status = 200, description = "Freed", body = Released),
        (status = 404, description = "No run holds the key", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn release(
    State(state): State<Shared>,
    Path(key): Path<String>,
) -> Result<axum::Json<Released>, ApiError> {
    let released = release_key(&state, &key).await?;
    Ok(axum::Json(Released { released }))
}

/// Frees `key`; how many runs held it (none is `404`).
pub(crate) async fn release_key(state: &AppState, key: &str) -> Result<u64, ApiError> {
    let released = state.service.store().release_lock(key).await?;
    if released == 0 {
        return Err(ApiError::not_found(format!("no lock `{key}`")));
    }
    tracing::info!(key = %key, released, "Lock freed.");
    Ok(released)
}

/// Frees every key.
#[utoipa::path(delete, path = "/api/v1/locks", tag = "locks",
    responses((status = 200, description = "Freed", body = Released)),
    security(("bearer" = [])))]
pub(crate) async fn release_all(
    State(state): State<Shared>,
) -> Result<axum::Json<Released>, ApiError> {
    let released = state.service.store().release_all_locks().await?;
    tracing::info!(released, "Every lock freed.");
    Ok(axum::Json(Released { released }))
}
