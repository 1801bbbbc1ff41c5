//! The locks page: the concurrency keys runs hold, and for operators a button freeing each
//! (as `DELETE /api/v1/locks/{key}`).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use octoflow_core::store::Role;
use serde::Deserialize;

use super::pages::{caller, failed, form_caller, render, who};
use super::session::Browser;
use crate::Shared;
use crate::api::locks::release_key;
use crate::error::ApiError;

/// `GET /ui/locks`.
pub(super) async fn list(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let locks = match state.service.store().locks().await {
        Ok(locks) => locks,
        Err(error) => return ApiError::from(error).into_response(),
    };
    render(
        &state,
        &browser,
        StatusCode::OK,
        "locks.html",
        context! {
            page => "locks", caller => who(&caller, &browser),
            operator => caller.role.allows(Role::Operator),
            locks => Serde(locks),
        },
    )
}

/// The free form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct FreeForm {
    #[serde(default)]
    csrf: String,
    key: String,
}

/// `POST /ui/locks/free`: frees the form's key, then the list again.
pub(super) async fn free(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<FreeForm>,
) -> Response {
    let browser = Browser::of(&headers);
    if let Err(answer) = form_caller(&state, &browser, &form.csrf, Role::Operator).await {
        return answer;
    }
    match release_key(&state, &form.key).await {
        Ok(_) => Redirect::to("/ui/locks").into_response(),
        Err(error) => failed(&state, &browser, &error, "/ui/locks"),
    }
}
