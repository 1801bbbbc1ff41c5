//! A run's log: as text (`ts stream step: line`), or with `?follow=true` as Server-Sent
//! Events — the stored lines, then new ones as the run writes them, then an `end` event
//! carrying the run's final status. The whole run's stream (no `?step=`) also carries a
//! `progress` event whenever the progress its external job reports changes.
//!
//! A run running on this node is followed through its live feed
//! ([`Service::follow`](octoflow_core::service::Service::follow)): the stream wakes on each
//! change. A run that another node runs (on a store shared by several nodes) is followed
//! through that node's notices
//! ([`RunFeed::follow_elsewhere`](octoflow_core::service::RunFeed::follow_elsewhere)), and
//! the store is read again every [`QUEUED_RECHECK`] (queued) or [`TOLD_RECHECK`]
//! ([`REMOTE_RECHECK`] without notices) all the same, asking the running node again each
//! time, so a missed notice only delays lines.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use octoflow_core::store::{LogLine, Progress, RunId, RunStatus};
use serde::Deserialize;
use serde_json::json;

use super::find_run;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::{AppState, Shared};

/// How often a followed run that is still queued is looked at again.
const QUEUED_RECHECK: Duration = Duration::from_millis(250);
/// How often a followed run running on another node is looked at again.
const REMOTE_RECHECK: Duration = Duration::from_secs(1);
/// The same, when that node tells of the run's changes (notices between nodes).
const TOLD_RECHECK: Duration = Duration::from_secs(5);

/// `?step=&follow=` of the logs route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    /// Only this step's lines.
    step: Option<String>,
    /// Stream Server-Sent Events until the run ends.
    #[serde(default)]
    follow: bool,
}

/// A run's log lines.
#[utoipa::path(get, path = "/api/v1/runs/{id}/logs", tag = "runs",
    params(("id" = String, Path, description = "The run id"), LogsQuery),
    responses(
        (status = 200, description = "`text/plain`: one `ts stream step: line` per line; with `follow=true`, `text/event-stream`: `log` events (`{ts, step, attempt, stream, line}`), without `step` also `progress` events (`{current, total, message}`) when the reported progress changes, then one `end` event (`{status}`)",
            content(("text/plain"), ("text/event-stream"))),
        (status = 404, description = "No such run", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn logs(
    State(state): State<Shared>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let run = find_run(&state, &id).await?;
    let step = query.step.filter(|s| !s.is_empty());
    if query.follow {
        let stream = follow(state, run.id, step);
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let lines = state
        .service
        .store()
        .logs(&run.id, step.as_deref(), 0)
        .await?;
    let mut text = String::new();
    for line in &lines {
        let _ = writeln!(text, "{}", plain(line));
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// One line as text: `2026-01-31T12:00:00.123Z stdout fetch: hello`.
fn plain(line: &LogLine) -> String {
    format!(
        "{} {} {}: {}",
        line.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        line.stream.as_str(),
        line.step,
        line.line
    )
}

fn log_event(line: &LogLine) -> Event {
    let data = json!({
        "ts": line.ts,
        "step": line.step,
        "attempt": line.attempt,
        "stream": line.stream,
        "line": line.line,
    });
    Event::default().event("log").data(data.to_string())
}

fn progress_event(progress: &Progress) -> Event {
    Event::default()
        .event("progress")
        .data(json!(progress).to_string())
}

fn end_event(status: Option<RunStatus>) -> Event {
    Event::default()
        .event("end")
        .data(json!({ "status": status }).to_string())
}

/// Where a followed run stands after sending what is new.
enum Next {
    /// It ended (or vanished): send `end` with its status.
    End(Option<RunStatus>),
    /// Wait for a change, then look again.
    Wait,
}

/// The event stream of a followed run.
fn follow(
    state: Shared,
    id: RunId,
    step: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut sent = Sent::default();
        // Told of changes by the node running the run, when another node runs it.
        let mut elsewhere = None;
        loop {
            // Subscribe before reading, so no change between the read and the wait is lost.
            let mut feed = state.service.follow(&id);
            if feed.is_none() && elsewhere.is_none() {
                elsewhere = Some(state.service.feed().follow_elsewhere(id));
            }
            let Ok(next) = send_new(&state, &id, step.as_deref(), &mut sent, &tx).await else {
                return;
            };
            match next {
                Next::End(status) => {
                    let _ = tx.send(end_event(status)).await;
                    return;
                }
                Next::Wait => {}
            }
            if let Some(feed) = feed.as_mut() {
                tokio::select! {
                    _ = feed.changed() => {}
                    () = tx.closed() => return,
                }
                continue;
            }
            // Not running here: queued, or running on another node, which tells of its
            // changes; the store is read again now and then all the same.
            let pause = match state.service.store().run(&id).await {
                Ok(Some(run)) if run.status == RunStatus::Queued => QUEUED_RECHECK,
                _ if state.service.feed().hears_other_nodes() => TOLD_RECHECK,
                _ => REMOTE_RECHECK,
            };
            let Some(remote) = elsewhere.as_mut() else {
                return;
            };
            tokio::select! {
                () = remote.changed() => {}
                () = tokio::time::sleep(pause) => remote.ask_again(),
                () = tx.closed() => return,
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}

/// What a stream has sent so far: the last line's number and the last progress.
#[derive(Default)]
struct Sent {
    seq: u64,
    progress: Option<Progress>,
}

/// Sends the lines not sent yet, and the run's progress when it changed (the whole run's
/// stream only); says whether the run ended. `Err` when the client left or the store failed
/// (the stream then ends).
async fn send_new(
    state: &AppState,
    id: &RunId,
    step: Option<&str>,
    sent: &mut Sent,
    tx: &tokio::sync::mpsc::Sender<Event>,
) -> Result<Next, ()> {
    let store = state.service.store();
    // The status first: lines read after a final status are all the lines there are.
    let run = match store.run(id).await {
        Ok(run) => run,
        Err(error) => {
            tracing::warn!(run_id = %id, error = %octoflow_core::error::chain(&error), "Cannot follow the run's log.");
            return Err(());
        }
    };
    let lines = match store.logs(id, step, sent.seq).await {
        Ok(lines) => lines,
        Err(error) => {
            tracing::warn!(run_id = %id, error = %octoflow_core::error::chain(&error), "Cannot follow the run's log.");
            return Err(());
        }
    };
    for line in &lines {
        tx.send(log_event(line)).await.map_err(drop)?;
    }
    if let Some(last) = lines.last() {
        sent.seq = last.seq;
    }
    let progress = run.as_ref().and_then(|run| run.progress.as_ref());
    if step.is_none()
        && let Some(progress) = progress
        && sent.progress.as_ref() != Some(progress)
    {
        tx.send(progress_event(progress)).await.map_err(drop)?;
        sent.progress = Some(progress.clone());
    }
    Ok(match run {
        None => Next::End(None),
        Some(run) if run.status.is_final() => Next::End(Some(run.status)),
        Some(_) => Next::Wait,
    })
}
