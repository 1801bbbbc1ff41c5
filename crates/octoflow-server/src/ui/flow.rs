//! A flow's page — its description, version, schedules (from its file and the API) with
//! their next fire, other triggers with their URLs (full under `public_url`), its source —
//! and, for operators, its run form, generated from the flow's `params`: a select for an `enum` or a
//! boolean, JSON for objects and arrays, text otherwise; a value that does not fit is shown
//! at its field, with what was typed kept.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use octoflow_core::engine::{AcceptError, RunRequest};
use octoflow_core::flow::ParamError;
use octoflow_core::store::{Role, TriggerInfo};
use serde_json::{Value, json};

use super::pages::{caller, form_caller, render, who};
use super::session::Browser;
use crate::Shared;
use crate::api::flows::{detail, no_flow, runnable};
use crate::auth::Caller;
use crate::error::ApiError;

/// `GET /ui/flows/{name}`.
pub(super) async fn show(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    page(&state, &browser, &caller, &name, Filled::default()).await
}

/// What the run form shows again after a refused run: the values typed, the errors by field
/// and one for the whole form.
#[derive(Debug, Default)]
struct Filled {
    given: HashMap<String, String>,
    errors: HashMap<String, String>,
    form_error: Option<String>,
}

async fn page(
    state: &Shared,
    browser: &Browser,
    caller: &Caller,
    name: &str,
    filled: Filled,
) -> Response {
    let Some(entry) = state.flows.entry(name) else {
        return no_flow(name).into_response();
    };
    let mut flow = match detail(state, &entry)
        .await
        .and_then(|d| serde_json::to_value(d).map_err(ApiError::internal))
    {
        Ok(flow) => flow,
        Err(error) => return error.into_response(),
    };
    if let Some(triggers) = flow["triggers"].as_array_mut() {
        // Schedules are listed apart, with those added through the API.
        triggers.retain(|t| t["kind"] != "schedule");
        for trigger in triggers.iter_mut().filter(|t| t["kind"] == "webhook") {
            let path = trigger["path"].as_str().unwrap_or_default();
            let path = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/hooks/{path}")
            };
            trigger["url"] = Value::from(state.hosts.url(&path));
        }
    }
    let schedules = match state.scheduler.list().await {
        Ok(all) => all
            .into_iter()
            .filter(|s| s.flow == name)
            .collect::<Vec<_>>(),
        Err(error) => return ApiError::from(error).into_response(),
    };
    let status = if filled.errors.is_empty() && filled.form_error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render(
        state,
        browser,
        status,
        "flow.html",
        context! {
            page => "flows", caller => who(caller, browser),
            operator => caller.role.allows(Role::Operator),
            flow => Serde(flow), schedules => Serde(schedules), given => filled.given, errors => filled.errors,
            form_error => filled.form_error,
        },
    )
}

/// `POST /ui/flows/{name}/run`: starts a run with the form's values (empty fields take
/// their defaults), then shows it; or the form again with the errors at their fields.
pub(super) async fn run(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let browser = Browser::of(&headers);
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map_or("", |(_, v)| v.as_str());
    let caller = match form_caller(&state, &browser, csrf, Role::Operator).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let flow = match runnable(&state, &name) {
        Ok(flow) => flow,
        Err(error) => return error.into_response(),
    };
    let given: Vec<(String, String)> = fields
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("p.").map(|k| (k.to_owned(), v)))
        .collect();
    let typed: Vec<(String, String)> = given
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .cloned()
        .collect();
    let refused = |problems: &[ParamError], form_error: Option<String>| Filled {
        given: given.iter().cloned().collect(),
        errors: problems
            .iter()
            .map(|p| (p.name.clone(), p.message.clone()))
            .collect(),
        form_error,
    };
    let params = match flow.params.coerce_text(&typed) {
        Ok(params) => params,
        Err(problems) => {
            return page(&state, &browser, &caller, &name, refused(&problems, None)).await;
        }
    };
    let mut request = RunRequest::new(params);
    request.trigger = TriggerInfo {
        kind: "manual".to_owned(),
        detail: json!({ "via": "ui", "by": caller.name }),
    };
    match state.service.start(&flow, request, None).await {
        Ok(admitted) => Redirect::to(&format!("/ui/runs/{}", admitted.run().id)).into_response(),
        Err(AcceptError::Params(problems)) => {
            page(&state, &browser, &caller, &name, refused(&problems, None)).await
        }
        Err(error) => {
            let error = ApiError::from(error);
            page(
                &state,
                &browser,
                &caller,
                &name,
                refused(&[], Some(error.message)),
            )
            .await
        }
    }
}
