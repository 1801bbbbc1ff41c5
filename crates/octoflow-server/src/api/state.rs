//! A flow's state (SPEC §11.4): the small key/value map its runs keep between them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Map, Value};

use crate::Shared;
use crate::error::{ApiError, ErrorBody};
use crate::extract::parse_json;

/// Reads a flow's state (`{}` when it has none).
#[utoipa::path(get, path = "/api/v1/state/{flow}", tag = "state",
    params(("flow" = String, Path, description = "The flow")),
    responses((status = 200, description = "Every key of the flow's state", body = Object)),
    security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<Shared>,
    Path(flow): Path<String>,
) -> Result<axum::Json<Map<String, Value>>, ApiError> {
    Ok(axum::Json(state.service.store().state(&flow).await?))
}

/// Sets one key of a flow's state to the JSON body; answers the whole state.
#[utoipa::path(put, path = "/api/v1/state/{flow}/{key}", tag = "state",
    params(("flow" = String, Path, description = "The flow"),
        ("key" = String, Path, description = "The key")),
    request_body(content = Object, description = "Any JSON value"),
    responses((status = 200, description = "Every key of the flow's state", body = Object),
        (status = 400, description = "The body is not JSON", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn put(
    State(state): State<Shared>,
    Path((flow, key)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::Json<Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "give the key's new value as a JSON body (`null` to clear it)",
        ));
    }
    let value: Value = parse_json(&body)?;
    let mut values = Map::new();
    values.insert(key.clone(), value);
    let store = state.service.store();
    store.set_state(&flow, &values).await?;
    tracing::info!(flow = %flow, key = %key, "State set.");
    Ok(axum::Json(store.state(&flow).await?))
}
