//! The runs pages: the list, filtered by flow, status, trigger and time and paginated as the
//! API's `GET /api/v1/runs`, and one run with its progress, its log (whole and by step, live
//! while it runs), its step attempts on a timeline, its error, results and child runs.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::context;
use minijinja::value::Serde;
use octoflow_core::store::{Page, Progress, Role, RunFilter, RunStatus, StepRun};
use serde_json::{Value, json};

use super::pages::{caller, render, who};
use super::session::Browser;
use crate::Shared;
use crate::api::find_run;
use crate::api::logs::LogsQuery;
use crate::api::runs::{RunsQuery, redact};
use crate::extract::ApiQuery;

/// `GET /ui/runs`: a page of runs, newest first, with the filter form.
pub(super) async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<RunsQuery>,
) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let flow_names: Vec<String> = state
        .flows
        .entries()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    let statuses: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    let common = context! {
        page => "runs", caller => who(&caller, &browser), query => Serde(&query),
        flow_names => flow_names, statuses => statuses,
    };
    let found = match (query.filter(), query.page()) {
        (Ok(filter), Ok(page)) => state
            .service
            .store()
            .list_runs(&filter, page)
            .await
            .map_err(crate::error::ApiError::from),
        (Err(error), _) | (_, Err(error)) => {
            return render(
                &state,
                &browser,
                StatusCode::BAD_REQUEST,
                "runs.html",
                context! { error => error.message, ..common },
            );
        }
    };
    let mut found = match found {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let runs: Vec<Value> = found
        .items
        .iter_mut()
        .map(|run| {
            redact(&state, run);
            let mut row = json!(run);
            row["took"] = took(run.started_at, run.finished_at).into();
            row
        })
        .collect();
    let pages = found.total.div_ceil(u64::from(found.per_page)).max(1);
    let link = |page: u64| {
        let mut params: Vec<(String, String)> = serde_json::to_value(&query)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
            .filter(|(k, v)| k != "page" && !v.is_empty())
            .collect();
        params.push(("page".to_owned(), page.to_string()));
        format!(
            "/ui/runs?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    };
    let page = u64::from(found.page);
    render(
        &state,
        &browser,
        StatusCode::OK,
        "runs.html",
        context! {
            runs => Serde(runs),
            page => page, pages => pages, total => found.total,
            prev => (page > 1).then(|| link(page - 1)),
            next => (page < pages).then(|| link(page + 1)),
            ..common,
        },
    )
}

/// `GET /ui/runs/{id}`: one run, its step attempts on a timeline of start times and
/// durations, its error and each step's result.
pub(super) async fn show(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let browser = Browser::of(&headers);
    let caller = match caller(&state, &browser, Role::Viewer).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let mut run = match find_run(&state, &id).await {
        Ok(run) => run,
        Err(error) => return error.into_response(),
    };
    redact(&state, &mut run);
    let steps = match state.service.store().step_runs(&run.id).await {
        Ok(steps) => steps,
        Err(error) => return crate::error::ApiError::from(error).into_response(),
    };
    let children = RunFilter {
        parent: Some(run.id),
        ..RunFilter::default()
    };
    let children = match state
        .service
        .store()
        .list_runs(
            &children,
            Page {
                page: 1,
                per_page: CHILDREN_SHOWN,
            },
        )
        .await
    {
        Ok(children) => children,
        Err(error) => return crate::error::ApiError::from(error).into_response(),
    };
    let step_names = step_names(&state, &run.flow, &steps, run.status.is_final());
    let redactor = state.service.engine().redactor();
    let spans = timeline(&steps, run.finished_at.unwrap_or_else(Utc::now));
    let steps: Vec<Value> = steps
        .iter()
        .zip(spans)
        .map(|(step, span)| {
            let mut row = json!(step);
            row["took"] = took(Some(step.started_at), step.finished_at).into();
            row["span"] = json!(span);
            if let Some(result) = &step.result {
                row["result"] = redactor.value(result);
            }
            row
        })
        .collect();
    render(
        &state,
        &browser,
        StatusCode::OK,
        "run.html",
        context! {
            page => "runs", caller => who(&caller, &browser),
            operator => caller.role.allows(Role::Operator),
            ended => run.status.is_final(),
            failed => run.status != RunStatus::Succeeded,
            run => Serde(&run), steps => Serde(steps), step_names => step_names,
            progress => run.progress.as_ref().map(progress_text),
            children => Serde(&children.items), more_children => children.total > u64::from(CHILDREN_SHOWN),
        },
    )
}

/// `GET /ui/runs/{id}/logs`: the run's log as the API gives it — text, or with
/// `follow=true` the live stream the run page reads.
pub(super) async fn logs(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: ApiQuery<LogsQuery>,
) -> Response {
    let browser = Browser::of(&headers);
    if let Err(answer) = caller(&state, &browser, Role::Viewer).await {
        return answer;
    }
    match crate::api::logs::logs(State(state), Path(id), query).await {
        Ok(answer) => answer,
        Err(error) => error.into_response(),
    }
}

/// The steps a run's page shows a log of: those that ran, in the order they started, then —
/// while the run runs — the flow's other steps, which may yet run.
fn step_names(state: &Shared, flow: &str, steps: &[StepRun], ended: bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for step in steps {
        if !names.contains(&step.step) {
            names.push(step.step.clone());
        }
    }
    if !ended && let Some(declared) = state.flows.entry(flow).and_then(|entry| entry.flow) {
        for step in &declared.steps {
            if !names.contains(&step.name) {
                names.push(step.name.clone());
            }
        }
    }
    names
}

/// A run's progress for people: `2 of 5 — copying`; the script writes it the same way.
fn progress_text(progress: &Progress) -> String {
    let mut text = progress.current.map(|c| c.to_string()).unwrap_or_default();
    if let Some(total) = progress.total {
        if !text.is_empty() {
            text.push(' ');
        }
        let _ = write!(text, "of {total}");
    }
    if let Some(message) = &progress.message {
        if !text.is_empty() {
            text.push_str(" — ");
        }
        text.push_str(message);
    }
    text
}

/// How many of a run's children its page lists (the rest are a link away).
const CHILDREN_SHOWN: u32 = 50;

/// Where each step attempt sits on the run's timeline, in thousandths of the time from the
/// first attempt's start to `end` (the run's end, or now): `[offset, width]`, each attempt
/// at least a sliver wide so that an instant one still shows.
fn timeline(steps: &[StepRun], end: DateTime<Utc>) -> Vec<[i64; 2]> {
    let Some(start) = steps.iter().map(|s| s.started_at).min() else {
        return Vec::new();
    };
    let span = (end - start).num_milliseconds().max(1);
    steps
        .iter()
        .map(|step| {
            let from = (step.started_at - start).num_milliseconds().clamp(0, span);
            let to = (step.finished_at.unwrap_or(end) - start)
                .num_milliseconds()
                .clamp(from, span);
            let offset = from * 1000 / span;
            [offset.min(995), ((to - from) * 1000 / span).max(5)]
        })
        .collect()
}

/// How long something took, for people (`0.42 s`, `3 min 20 s`); `None` until it ended.
fn took(started: Option<DateTime<Utc>>, finished: Option<DateTime<Utc>>) -> Option<String> {
    let millis = (finished? - started?).num_milliseconds().max(0);
    Some(if millis < 60_000 {
        format!("{}.{:02} s", millis / 1000, (millis % 1000) / 10)
    } else {
        format!("{} min {} s", millis / 60_000, (millis % 60_000) / 1000)
    })
}
