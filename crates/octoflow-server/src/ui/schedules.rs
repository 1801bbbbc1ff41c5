//! The schedules page — every schedule, from flow files and from the API, with its last and
//! next fire — and, for admins, a form to add one, and pause, resume and remove, as the API's
//! routes of those names.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::scheduler::ScheduleError;
use octoflow_core::store::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::actions::ActionForm;
use super::pages::{caller, failed, form_caller, render, who};
use super::session::Browser;
use crate::Shared;
use crate::api::flows::runnable;
use crate::auth::Caller;
use crate::error::ApiError;

/// `GET /ui/schedules`.
pub(super) async fn list(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    page(
        &state,
        &browser,
        &caller,
        &NewSchedule::default(),
        &Refusal::default(),
    )
    .await
}

/// The add form's fields, as typed.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct NewSchedule {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    every_seconds: String,
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    catchup: String,
    /// A JSON object, or nothing.
    #[serde(default)]
    params: String,
}

/// Why an added schedule was refused: messages by field, and one for the whole form.
#[derive(Debug, Default)]
struct Refusal {
    fields: HashMap<String, String>,
    form: Option<String>,
}

impl Refusal {
    fn at(field: &str, message: impl Into<String>) -> Self {
        Self {
            fields: HashMap::from([(field.to_owned(), message.into())]),
            form: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_none()
    }
}

async fn page(
    state: &Shared,
    browser: &Browser,
    caller: &Caller,
    typed: &NewSchedule,
    refusal: &Refusal,
) -> Response {
    let schedules = match state.scheduler.list().await {
        Ok(schedules) => schedules,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let flow_names: Vec<String> = state
        .flows
        .entries()
        .iter()
        .filter(|e| e.flow.is_some())
        .map(|e| e.name.clone())
        .collect();
    let status = if refusal.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render(
        state,
        browser,
        status,
        "schedules.html",
        context! {
            page => "schedules", caller => who(caller, browser),
            admin => caller.role.allows(Role::Admin),
            schedules => Serde(schedules), flow_names => flow_names,
            typed => Serde(typed), errors => Serde(&refusal.fields), form_error => refusal.form.as_deref(),
        },
    )
}

/// `POST /ui/schedules`: adds a schedule as `POST /api/v1/schedules` does, then lists them
/// all; or the form again with what was typed and the errors at their fields.
pub(super) async fn add(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(typed): Form<NewSchedule>,
) -> Response {
    let browser = Browser::of(&headers);
    let caller = match form_caller(&state, &browser, &typed.csrf, Role::Admin).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let added = match schedule(&typed) {
        Ok(schedule) => match runnable(&state, &typed.flow) {
            Ok(flow) => state.scheduler.add(&flow, schedule).await.map_err(refusal),
            Err(error) => Err(Refusal::at("flow", error.message)),
        },
        Err(refused) => Err(refused),
    };
    match added {
        Ok(_) => Redirect::to("/ui/schedules").into_response(),
        Err(refused) => page(&state, &browser, &caller, &typed, &refused).await,
    }
}

/// The schedule the form asks for, or the first field that cannot be read.
fn schedule(typed: &NewSchedule) -> Result<Schedule, Refusal> {
    let text = |t: &str| Some(t.trim().to_owned()).filter(|t| !t.is_empty());
    let every_seconds = match text(&typed.every_seconds) {
        None => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| {
            Refusal::at(
                "every_seconds",
                format!("`{t}` is not a whole number of seconds"),
            )
        })?),
    };
    let catchup = match text(&typed.catchup) {
        None => Catchup::default(),
        Some(t) => serde_json::from_value(Value::String(t.clone()))
            .map_err(|_| Refusal::at("catchup", format!("`{t}` is not none, last or all")))?,
    };
    let params = match text(&typed.params) {
        None => Map::new(),
        Some(t) => serde_json::from_str::<Map<String, Value>>(&t)
            .map_err(|e| Refusal::at("params", format!("not a JSON object: {e}")))?,
    };
    Ok(Schedule {
        cron: text(&typed.cron),
        every_seconds,
        timezone: text(&typed.timezone),
        catchup,
        params,
    })
}

/// A refused schedule's problems, at their fields where they have one.
fn refusal(error: ScheduleError) -> Refusal {
    match error {
        ScheduleError::Invalid(problems) => {
            let mut refused = Refusal::default();
            for (field, message) in problems {
                if field.is_empty() {
                    refused.form = Some(match refused.form.take() {
                        Some(earlier) => format!("{earlier}; {message}"),
                        None => message,
                    });
                } else {
                    refused.fields.insert(field, message);
                }
            }
            refused
        }
        ScheduleError::Params(problems) => Refusal::at(
            "params",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => Refusal {
            fields: HashMap::new(),
            form: Some(ApiError::from(other).message),
        },
    }
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
