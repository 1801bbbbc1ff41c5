//! The handlers, one module per resource, and what they share: run lookups, pages, the
//! answer to an admission, and running blocking file work off the async threads.

pub(crate) mod callback;
pub(crate) mod flows;
pub(crate) mod health;
pub(crate) mod locks;
pub(crate) mod logs;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod state;
pub(crate) mod tracker;
pub(crate) mod users;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use octoflow_core::store::{Admitted, Page, Paged, Run, RunId};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::query_error;

/// Largest `per_page`.
pub(crate) const MAX_PER_PAGE: u32 = 500;

/// The header saying what became of a run request: `created`, `replaced`, `existing` or
/// `deduplicated`.
pub(crate) const ADMISSION_HEADER: &str = "x-octoflow-admission";

/// A run id from the path; a malformed one is a run that does not exist.
pub(crate) fn parse_run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no run `{text}`")))
}

/// The run with this id, or `404 not_found`.
pub(crate) async fn find_run(state: &AppState, id: &str) -> Result<Run, ApiError> {
    let run_id = parse_run_id(id)?;
    state
        .service
        .store()
        .run(&run_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))
}

/// `?page=&per_page=` as given; checked by [`PageQuery::page`].
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// 1-based page (default 1).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub(crate) page: Option<String>,
    /// Items per page (default 50, at most 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub(crate) per_page: Option<String>,
}

impl PageQuery {
    /// The page asked for; a bad number is `400` naming the field.
    pub(crate) fn page(&self) -> Result<Page, ApiError> {
        let mut page = Page::default();
        if let Some(text) = &self.page {
            page.page = text
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    query_error("page", &format!("expected a number from 1, found `{text}`"))
                })?;
        }
        if let Some(text) = &self.per_page {
            page.per_page = text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                .ok_or_else(|| {
                    query_error(
                        "per_page",
                        &format!("expected a number from 1 to {MAX_PER_PAGE}, found `{text}`"),
                    )
                })?;
        }
        Ok(page)
    }
}

/// One page of a list held in memory.
pub(crate) fn paginate<T>(items: Vec<T>, page: Page) -> Paged<T> {
    let total = items.len() as u64;
    let skip = (page.page as usize - 1).saturating_mul(page.per_page as usize);
    let items = items
        .into_iter()
        .skip(skip)
        .take(page.per_page as usize)
        .collect();
    Paged {
        items,
        page: page.page,
        per_page: page.per_page,
        total,
    }
}

/// The answer to a run request: `201` with a new run, `200` with the run answered instead
/// (same idempotency key, `dedupe`), `409` naming the run that blocks a `skip` flow.
pub(crate) fn admitted_response(admitted: Admitted) -> Response {
    let (status, outcome, run) = match admitted {
        Admitted::Created(run) => (StatusCode::CREATED, "created", run),
        Admitted::Replaced { run, .. } => (StatusCode::CREATED, "replaced", run),
        Admitted::Existing(run) => (StatusCode::OK, "existing", run),
        Admitted::Deduplicated(run) => (StatusCode::OK, "deduplicated", run),
        Admitted::Skipped(blocking) => {
            let key = blocking.concurrency_key.clone().unwrap_or_default();
            return ApiError::conflict(format!(
                "flow `{}` already has run `{}` holding concurrency key `{key}`; the new run was skipped",
                blocking.flow, blocking.id
            ))
            .with_details(json!({
                "run_id": blocking.id,
                "status": blocking.status,
                "concurrency_key": blocking.concurrency_key,
            }))
            .into_response();
        }
    };
    let mut response = (status, axum::Json(&run)).into_response();
    let headers = response.headers_mut();
    headers.insert(ADMISSION_HEADER, HeaderValue::from_static(outcome));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/runs/{}", run.id)) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// Runs blocking work (flow files, password hashes) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked_and_cut() {
        #[track_caller]
        fn case(page: Option<&str>, per_page: Option<&str>, expected: Result<(u32, u32), &str>) {
            let query = PageQuery {
                page: page.map(str::to_owned),
                per_page: per_page.map(str::to_owned),
            };
            match (query.page(), expected) {
                (Ok(p), Ok((page, per_page))) => assert_eq!((p.page, p.per_page), (page, per_page)),
                (Err(e), Err(field)) => assert_eq!(e.details["field"], field),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
        case(None, None, Ok((1, 50)));
        case(Some("3"), Some("500"), Ok((3, 500)));
        case(Some("0"), None, Err("page"));
        case(None, Some("501"), Err("per_page"));
        case(None, Some("x"), Err("per_page"));
        let paged = paginate(
            (1..=7).collect(),
            Page {
                page: 2,
                per_page: 3,
            },
        );
        assert_eq!((paged.items, paged.total), (vec![4, 5, 6], 7));
    }
}
