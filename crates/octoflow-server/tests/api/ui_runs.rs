//! The web UI's runs: the list filtered by trigger and creation time and paged, and a run's
//! live parts — its progress and each step's log over the same Server-Sent Events.

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::runs::{callback_token, start};
use crate::support::{App, get, post};

const ECHO: &str = "name: echo\ntriggers:\n  - webhook: { path: echo }\nsteps:\n  - name: say\n    set_fact: { value: 1 }\n";

/// The ids of the runs a runs page links, in its order.
fn listed(page: &str) -> Vec<String> {
    page.split("<a href=\"/ui/runs/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|id| id.len() == 36)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn runs_are_filtered_by_trigger_and_creation_time() {
    let app = App::builder().flow("echo.yml", ECHO).workers().build();
    let manual = start(&app, "echo", &json!({})).await;
    app.finished(&manual).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let hooked = app.send(post("/hooks/echo")).await.expect(202).json();
    let hooked = hooked["run_id"].as_str().unwrap().to_owned();
    app.finished(&hooked).await;

    let webhooks = app.send(get("/ui/runs?trigger=webhook")).await.expect(200);
    assert_eq!(
        listed(&webhooks.text),
        [hooked.as_str()],
        "{}",
        webhooks.text
    );
    assert!(
        webhooks.text.contains("value=\"webhook\""),
        "the filter is kept"
    );
    let manuals = app.send(get("/ui/runs?trigger=manual")).await.expect(200);
    assert_eq!(listed(&manuals.text), [manual.as_str()]);
    let none = app.send(get("/ui/runs?trigger=schedule")).await.expect(200);
    assert!(none.text.contains("No runs match."), "{}", none.text);

    let since = app
        .send(get(&format!("/ui/runs?since={}", urlencode(&between))))
        .await
        .expect(200);
    assert_eq!(listed(&since.text), [hooked.as_str()], "{}", since.text);
    let until = app
        .send(get(&format!("/ui/runs?until={}", urlencode(&between))))
        .await
        .expect(200);
    assert_eq!(listed(&until.text), [manual.as_str()], "{}", until.text);
    let both = app
        .send(get(&format!(
            "/ui/runs?since={}&until={}",
            urlencode(&between),
            urlencode(&between)
        )))
        .await
        .expect(200);
    assert!(both.text.contains("No runs match."), "{}", both.text);

    let bad = app.send(get("/ui/runs?since=yesterday")).await.expect(400);
    assert!(
        bad.text.contains("invalid RFC 3339 time `yesterday`"),
        "{}",
        bad.text
    );
    assert!(
        bad.text.contains("value=\"yesterday\""),
        "what was typed is kept"
    );
}

/// `text` percent-encoded for a query (`+` and `:` of a time).
fn urlencode(text: &str) -> String {
    let pair = serde_urlencoded::to_string([("", text)]).unwrap();
    pair.strip_prefix('=').unwrap().to_owned()
}

#[tokio::test]
async fn runs_are_paged_with_the_filters_kept() {
    let app = App::builder().flow("echo.yml", ECHO).workers().build();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = start(&app, "echo", &json!({})).await;
        app.finished(&id).await;
        ids.push(id);
    }
    ids.reverse(); // newest first, as listed

    let first = app
        .send(get("/ui/runs?flow=echo&per_page=2"))
        .await
        .expect(200);
    assert_eq!(listed(&first.text), ids[..2]);
    assert!(
        first.text.contains("page 1 of 2 · 3 runs"),
        "{}",
        first.text
    );
    assert!(!first.text.contains("rel=\"prev\""));
    let older = link(&first.text, "next");
    assert!(
        older.contains("flow=echo") && older.contains("per_page=2") && older.contains("page=2"),
        "{older}"
    );

    let second = app.send(get(&older)).await.expect(200);
    assert_eq!(listed(&second.text), ids[2..]);
    assert!(
        second.text.contains("page 2 of 2 · 3 runs"),
        "{}",
        second.text
    );
    assert!(!second.text.contains("rel=\"next\""));
    let newer = link(&second.text, "prev");
    assert_eq!(
        listed(&app.send(get(&newer)).await.expect(200).text),
        ids[..2]
    );

    let beyond = app
        .send(get("/ui/runs?per_page=2&page=3"))
        .await
        .expect(200);
    assert!(beyond.text.contains("No runs match."), "{}", beyond.text);
    let bad = app.send(get("/ui/runs?page=0")).await.expect(400);
    assert!(
        bad.text.contains("expected a number from 1, found `0`"),
        "{}",
        bad.text
    );
}

/// The address of the page link `rel` (`prev`, `next`), as a browser reads it.
fn link(page: &str, rel: &str) -> String {
    let tag = page
        .split("<a ")
        .find(|tag| tag.contains(&format!("rel=\"{rel}\"")))
        .unwrap_or_else(|| panic!("no {rel} link: {page}"));
    let href = tag
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    href.replace("&amp;", "&").replace("&#x2f;", "/")
}

/// A run that logs, waits for its external job's callback, then does one more step.
const JOB: &str = "name: job\nsteps:\n  - name: prepare\n    exec: { command: [echo, ready] }\n  - name: wait\n    wait: { callback: true }\n  - name: after\n    set_fact: { value: 1 }\n";

/// A followed event stream, read event by event.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    async fn open(app: &App, path: &str) -> Self {
        let response = app.router().oneshot(get(path).build()).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event's name and data (comments skipped); `None` once the stream ends.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                if let Some(event) = field("event:") {
                    return Some((event, field("data:").unwrap_or_default()));
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// The next event named `name`, skipping others.
    async fn next_named(&mut self, name: &str) -> serde_json::Value {
        loop {
            let (event, data) = self.next().await.expect("the stream ended");
            if event == name {
                return serde_json::from_str(&data).unwrap();
            }
        }
    }

    /// Every event left, until the stream ends.
    async fn rest(mut self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        while let Some(event) = self.next().await {
            all.push(event);
        }
        all
    }
}

#[tokio::test]
async fn a_run_page_follows_its_progress_and_each_steps_log_live() {
    let app = App::builder().flow("job.yml", JOB).workers().build();
    let id = start(&app, "job", &json!({})).await;
    for _ in 0..400 {
        let run = app.send(get(&format!("/api/v1/runs/{id}"))).await.json();
        if run["steps"].as_array().is_some_and(|s| s.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // While it waits: a part for each step's log, those yet to run included; no progress yet.
    let page = app.send(get(&format!("/ui/runs/{id}"))).await.expect(200);
    for step in ["prepare", "wait", "after"] {
        let src = format!("data-src=\"/ui/runs/{id}/logs?step={step}&amp;follow=true\"");
        assert!(page.text.contains(&src), "{src}: {}", page.text);
    }
    assert!(
        page.text
            .contains("<dd id=\"progress\" aria-live=\"polite\" hidden></dd>")
    );

    let callback = format!("/api/v1/runs/{id}/callback?token={}", callback_token(&id));
    let mut whole = Events::open(&app, &format!("/ui/runs/{id}/logs?follow=true")).await;
    let line = whole.next_named("log").await;
    assert_eq!(
        (line["step"].as_str(), line["line"].as_str()),
        (Some("prepare"), Some("ready"))
    );
    for (current, message) in [(1, "copying"), (2, "checking")] {
        let report = json!({"progress": {"current": current, "total": 2, "message": message}});
        app.send(post(&callback).json(&report)).await.expect(200);
        let progress = whole.next_named("progress").await;
        assert_eq!(
            progress,
            json!({"current": f64::from(current), "total": 2.0, "message": message})
        );
    }
    let page = app.send(get(&format!("/ui/runs/{id}"))).await.expect(200);
    assert!(
        page.text
            .contains("<dd id=\"progress\" aria-live=\"polite\">2 of 2 — checking</dd>"),
        "{}",
        page.text
    );

    // One step's stream: its lines only, no progress, then the end.
    let prepare = Events::open(
        &app,
        &format!("/ui/runs/{id}/logs?step=prepare&follow=true"),
    )
    .await;
    app.send(post(&callback).json(&json!({"status": "succeeded"})))
        .await
        .expect(200);
    assert_eq!(app.finished(&id).await["status"], "succeeded");
    let events = prepare.rest().await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["log", "end"], "{events:?}");
    assert!(events[0].1.contains("\"line\":\"ready\""), "{events:?}");
    let (last, data) = whole.rest().await.pop().unwrap();
    assert_eq!(
        (last.as_str(), data.as_str()),
        ("end", "{\"status\":\"succeeded\"}")
    );

    // Ended: the steps that ran, the progress as last reported.
    let page = app.send(get(&format!("/ui/runs/{id}"))).await.expect(200);
    assert!(page.text.contains("2 of 2 — checking"), "{}", page.text);
    assert!(
        page.text.contains("logs?step=after&amp;follow=true"),
        "after ran"
    );
    let text = app
        .send(get(&format!("/ui/runs/{id}/logs?step=prepare")))
        .await
        .expect(200);
    assert!(
        text.text.trim_end().ends_with("stdout prepare: ready"),
        "{}",
        text.text
    );
}
