//! What an operator does from a run's page — cancel, retry, retry from the failed step — as
//! forms: each checks the browser's CSRF token and the caller's role (the buttons are only
//! shown to operators, and the server refuses the others anyway), then does what the API's
//! route of the same name does.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use octoflow_core::store::Role;
use serde::Deserialize;

use super::pages::{failed, form_caller};
use super::session::Browser;
use crate::Shared;
use crate::api::runs::{cancel_run, retry_run};

/// The fields of an action's form.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Retry from the failed step (`1`).
    #[serde(default)]
    from_failed: Option<String>,
}

impl ActionForm {
    /// The form's CSRF token.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/runs/{id}/cancel`.
pub(super) async fn cancel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if let Err(answer) = form_caller(&state, &browser, &form.csrf, Role::Operator).await {
        return answer;
    }
    let back = format!("/ui/runs/{id}");
    match cancel_run(&state, &id).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(error) => failed(&state, &browser, &error, &back),
    }
}

/// `POST /ui/runs/{id}/retry`: the new run's page.
pub(super) async fn retry(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if let Err(answer) = form_caller(&state, &browser, &form.csrf, Role::Operator).await {
        return answer;
    }
    let from_failed = form.from_failed.as_deref() == Some("1");
    match retry_run(&state, &id, from_failed).await {
        Ok(admitted) => Redirect::to(&format!("/ui/runs/{}", admitted.run().id)).into_response(),
        Err(error) => failed(&state, &browser, &error, &format!("/ui/runs/{id}")),
    }
}
