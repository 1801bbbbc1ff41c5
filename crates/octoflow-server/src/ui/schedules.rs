//! The schedules page — every schedule, from flow files and from the API, with its last and
//! next fire — and, for admins, pause, resume and remove, as the API's routes of those names.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use octoflow_core::store::Role;

use super::actions::ActionForm;
use super::pages::{caller, failed, form_caller, render, who};
use super::session::Browser;
use crate::Shared;
use crate::error::ApiError;

/// `GET /ui/schedules`.
pub(super) async fn list(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let schedules = match state.scheduler.list().await {
        Ok(schedules) => schedules,
        Err(error) => return ApiError::from(error).into_response(),
    };
    render(
        &state,
        &browser,
        StatusCode::OK,
        "schedules.html",
        context! {
            page => "schedules", caller => who(&caller, &browser),
            admin => caller.role.allows(Role::Admin),
            schedules => Serde(schedules),
        },
    )
}

/// `POST /ui/schedules/{id}/{action}`: `pause`, `resume` or `remove`, then the list again.
pub(super) async fn change(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if let Err(answer) = form_caller(&state, &browser, form.csrf(), Role::Admin).await {
        return answer;
    }
    let done = match action.as_str() {
        "pause" => state.scheduler.pause(&id).await.map(drop),
        "resume" => state.scheduler.resume(&id).await.map(drop),
        "remove" => state.scheduler.remove(&id).await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match done {
        Ok(()) => Redirect::to("/ui/schedules").into_response(),
        Err(error) => failed(&state, &browser, &ApiError::from(error), "/ui/schedules"),
    }
}
