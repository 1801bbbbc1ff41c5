//! The spooler example (`examples/spooler`) runs unchanged against a local Jira stand-in:
//! search with `expand=names`, token authentication, a 404 that the flow ignores, a failing
//! search that makes `finally_step` write its note and `on_failure` mail it; and under
//! `serve`, its schedule firing, a slow report holding its lock so that runs never overlap,
//! the API token or a user's, and the schedule's removal holding across a reload and a
//! restart.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use std::time::Duration;

use nix::sys::signal::Signal;
use octoflow_testkit::cli::Octo;
use serde_json::{Value, json};

use crate::mail::Mailbox;
use crate::peer::{Peer, serve};
use crate::server::Server;
use crate::{copy_dir, octo};

const TOKEN: &str = "demo-jira-token-7f3a";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/spooler")
}

fn fixture(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(example().join("fixtures").join(name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

/// The Jira stand-in; with `broken_search`, the search answers 500. Each search answers
/// after `delay` (a slow Jira).
fn jira(broken_search: bool, delay: Duration) -> Peer {
    let search =
        move |headers: HeaderMap, Query(q): Query<std::collections::HashMap<String, String>>| async move {
            tokio::time::sleep(delay).await;
            if !authorised(&headers) {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(serde_json::json!({"error": "bad token"})),
                )
                    .into_response();
            }
            if broken_search || q.get("expand").map(String::as_str) != Some("names") {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({"error": "search is down"})),
                )
                    .into_response();
            }
            Json(fixture("search.json").unwrap()).into_response()
        };
    let issue = |headers: HeaderMap, UrlPath(key): UrlPath<String>| async move {
        match fixture(&format!("issue-{key}.json")) {
            Some(doc) if authorised(&headers) => Json(doc).into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    };
    let watchers = || async {
        (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"errorMessages": ["Issue does not exist"]})),
        )
    };
    serve(
        Router::new()
            .route("/rest/api/2/search", get(search))
            .route("/rest/api/2/issue/{key}", get(issue))
            .route("/rest/api/2/issue/{key}/watchers", get(watchers)),
    )
}

fn reports(data: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data.join("reports")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

#[test]
fn the_report_flow_runs_unchanged_and_writes_its_report() {
    let peer = jira(false, Duration::ZERO);
    let o = octo();
    copy_dir(&example().join("data"), &o.data_dir());
    let run = o
        .clone()
        .args([
            "run",
            "jira_report",
            "-p",
            &format!("jira_url={}", peer.url),
            "--json",
        ])
        .run();
    run.success();
    let record = run.json();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(
        record["data"]["__errors__"],
        serde_json::json!([{"step": "watchers", "ignored": true, "error": record["data"]["__errors__"][0]["error"]}])
    );
    assert!(
        record["data"]["__errors__"][0]["error"]
            .as_str()
            .unwrap()
            .contains("status_code: 404")
    );
    assert_eq!(record["data"]["issues"][0]["fields"]["story_points"], 5.0);

    let data = o.data_dir();
    let report = reports(&data, "report_");
    assert_eq!(report.len(), 1, "{report:?}");
    let text = std::fs::read_to_string(&report[0]).unwrap();
    let doc: Value = octoflow_core::yaml::from_str(&text).unwrap();
    let issues: Vec<(&str, i64, i64)> = doc["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap(),
                i["comments"].as_i64().unwrap(),
                i["position"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(issues, [("AVO-142", 2, 1), ("AVO-146", 0, 2)]);
    assert_eq!(doc["skipped_calls"], 1);
    assert_eq!(reports(&data, "data_").len(), 1);
    assert!(reports(&data, "FAILED_").is_empty());

    // The token never shows: not in the answer, the reports or the store.
    assert!(!run.stdout().contains(TOKEN) && !run.stderr().contains(TOKEN));
    for file in reports(&data, "") {
        assert!(
            !std::fs::read_to_string(&file).unwrap().contains(TOKEN),
            "{file:?}"
        );
    }
}

/// Points the copied example's mail server at `port`.
fn mail_to(data: &Path, port: u16) {
    let path = data.join("config.yml");
    let config = std::fs::read_to_string(&path).unwrap();
    let changed = config.replace("smtp://127.0.0.1:2525", &format!("smtp://127.0.0.1:{port}"));
    assert_ne!(config, changed, "the example's config names no mail server");
    std::fs::write(path, changed).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_failure_stops_the_flow_runs_the_finally_step_and_mails_the_note() {
    let Some(mailbox) = Mailbox::start().await else {
        return;
    };
    let peer = jira(true, Duration::ZERO);
    let o = octo();
    copy_dir(&example().join("data"), &o.data_dir());
    mail_to(&o.data_dir(), mailbox.port);
    let args = [
        "run",
        "jira_report",
        "-p",
        &format!("jira_url={}", peer.url),
        "--json",
    ];
    let command = o.clone().args(args);
    let run = tokio::task::spawn_blocking(move || command.run())
        .await
        .unwrap();
    run.code(1);
    let record = run.json();
    assert_eq!(record["status"], "failed");
    assert_eq!(record["error"]["step"], "search");
    let failed = reports(&o.data_dir(), "FAILED_");
    assert_eq!(failed.len(), 1, "the finally step wrote no note");
    let note: Value = serde_json::from_str(&std::fs::read_to_string(&failed[0]).unwrap()).unwrap();
    assert_eq!(note[0]["step"], "search");
    assert!(
        note[0]["error"]
            .as_str()
            .unwrap()
            .contains("status_code: 500"),
        "{note}"
    );
    assert!(reports(&o.data_dir(), "report_").is_empty());

    let message = mailbox.received(1).await.remove(0);
    assert!(
        message.contains("Subject: jira_report failed in search"),
        "{message}"
    );
    assert!(
        message.contains("To: Reports <reports@example.org>"),
        "{message}"
    );
    let name = failed[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        message.contains(&format!("filename=\"{name}\"")),
        "the note is not attached: {message}"
    );
    assert!(record["data"]["mail_failure"]["message_id"].is_string());
}

/// The spooler's runs of a file schedule.
async fn scheduled(server: &Server) -> Vec<Value> {
    let (code, page) = server
        .get("/api/v1/runs?flow=jira_report&trigger=schedule&per_page=100")
        .await;
    assert_eq!(code, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The spooler's `API_TOKEN`, as `OCTOFLOW_API_TOKEN`.
const API_TOKEN: &str = "spooler-api-token-for-tests-41c7";

/// A copy of the example, served with `OCTOFLOW_API_TOKEN`, whose report asks `peer` and
/// runs every second (the test's cadence: one second instead of five minutes).
fn every_second(peer: &Peer) -> Octo {
    let o = octo().env("OCTOFLOW_API_TOKEN", API_TOKEN);
    copy_dir(&example().join("data"), &o.data_dir());
    let flow_path = o.data_dir().join("flows/jira_report.yml");
    let flow = std::fs::read_to_string(&flow_path).unwrap();
    let ours = flow
        .replace("every_seconds: 300", "every_seconds: 1")
        .replace("http://127.0.0.1:8089", &peer.url);
    assert_ne!(ours, flow);
    std::fs::write(&flow_path, ours).unwrap();
    o
}

/// For `window`, polling: the schedule `key` stays removed and no scheduled run starts
/// beyond the `runs` there were.
async fn stays_removed(server: &Server, key: &str, runs: usize, window: Duration) {
    let until = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < until {
        let (code, list) = server.get("/api/v1/schedules").await;
        assert_eq!(code, 200, "{list}");
        let view = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == key)
            .unwrap_or_else(|| panic!("schedule {key} is not listed: {list}"));
        assert_eq!(
            (&view["removed"], &view["next_fire"]),
            (&json!(true), &Value::Null),
            "{list}"
        );
        assert_eq!(
            scheduled(server).await.len(),
            runs,
            "the removed schedule fired again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Under `serve`, as the spooler ran it: the `autostart` schedule fires; the API answers only
/// with `OCTOFLOW_API_TOKEN` or a user's token; removing the schedule through the API stops
/// it, across a hot reload of the flow file and a restart, and the schedule list says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_serve_the_schedule_fires_and_its_removal_holds_across_a_restart() {
    let peer = jira(false, Duration::ZERO);
    let o = every_second(&peer);
    let created = o
        .clone()
        .args(["token", "create", "--role", "viewer", "--name", "reader"])
        .run();
    created.success();
    let reader = created.stdout().trim().to_owned();

    let server = Server::start(&o, &[]);
    let (code, _) = server.get("/api/v1/schedules").await;
    assert_eq!(code, 401, "the API answered without the token");
    let as_reader = Server::bearer_client(&reader);
    let answer = as_reader
        .get(format!("{}/api/v1/schedules", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "a user's token was refused");
    let answer = as_reader
        .delete(format!("{}/api/v1/locks", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403, "a viewer freed the locks");
    let server = server.bearer(API_TOKEN);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !scheduled(&server)
        .await
        .iter()
        .any(|r| r["status"] == "succeeded")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the schedule never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!reports(&o.data_dir(), "report_").is_empty());

    let key = "flow:jira_report:0";
    let removed = server
        .http
        .delete(format!("{}/api/v1/schedules/{key}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 204);
    // A run that started before the removal may still end; none starts after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = scheduled(&server).await.len();

    // The flow file is saved again with the same cadence: the running server reloads it,
    // and the schedule stays removed.
    let flow_path = o.data_dir().join("flows/jira_report.yml");
    let saved = format!(
        "# saved again\n{}",
        std::fs::read_to_string(&flow_path).unwrap()
    );
    std::fs::write(&flow_path, saved).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, flow) = server.get("/api/v1/flows/jira_report").await;
        if flow["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("# saved again"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flow file was not reloaded: {flow}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stays_removed(&server, key, before, Duration::from_millis(2500)).await;
    let (out, _) = server.signal_and_wait(Signal::SIGTERM);
    out.success();

    let server = Server::start(&o, &[]).bearer(API_TOKEN);
    stays_removed(&server, key, before, Duration::from_millis(2500)).await;

    the_other_routes_answer(&server).await;
}

/// The spooler's other routes, as the README maps them: launch, locks, add and remove a
/// schedule.
async fn the_other_routes_answer(server: &Server) {
    let (code, launched) = server
        .post("/api/v1/flows/jira_report/runs", &json!({"params": {}}))
        .await;
    assert_eq!(code, 201, "launch: {launched}");
    let (code, locks) = server.get("/api/v1/locks").await;
    assert_eq!(code, 200, "{locks}");
    let freed = server
        .http
        .delete(format!("{}/api/v1/locks", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(freed.status().as_u16(), 200);
    let (code, added) = server
        .post(
            "/api/v1/schedules",
            &json!({"flow": "jira_report", "every_seconds": 60}),
        )
        .await;
    assert_eq!(code, 201, "add: {added}");
    let (_, list) = server.get("/api/v1/schedules").await;
    assert_eq!(list["total"], 2, "{list}");
    let id = added["id"].as_str().unwrap();
    let removed = server
        .http
        .delete(format!("{}/api/v1/schedules/{id}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 204);
    let done = server
        .until(launched["id"].as_str().unwrap(), &["succeeded"])
        .await;
    assert_eq!(done["trigger"]["kind"], "manual");
}

/// A time of a run record.
fn time(run: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    run[field]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no `{field}` in {run}"))
}

/// Under `serve`, with Jira slow to answer (2.5 s a search), a report outlasts its
/// one-second interval, as the spooler's did when Jira was slow: while a run is in progress
/// `GET /api/v1/locks` lists the report's lock held by that run, the ticks meanwhile are
/// skipped, and no two runs' time spans overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_serve_a_slow_report_holds_its_lock_and_never_overlaps() {
    let peer = jira(false, Duration::from_millis(2500));
    let server = Server::start(&every_second(&peer), &[]).bearer(API_TOKEN);
    let mut lock_of_a_running_run = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let runs = loop {
        let (code, locks) = server.get("/api/v1/locks").await;
        assert_eq!(code, 200, "{locks}");
        let runs = scheduled(&server).await;
        let active: Vec<&Value> = runs
            .iter()
            .filter(|r| ["queued", "running"].contains(&r["status"].as_str().unwrap()))
            .collect();
        assert!(active.len() <= 1, "runs overlap or pile up: {runs:#?}");
        if let Some(run) = active.first().filter(|r| r["status"] == "running") {
            lock_of_a_running_run |= locks["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|lock| lock["flow"] == "jira_report" && lock["run_id"] == run["id"]);
        }
        let done = runs.iter().filter(|r| r["status"] == "succeeded").count();
        if lock_of_a_running_run && done >= 2 {
            break runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 40 s: {done} reports, lock seen {lock_of_a_running_run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // One run after the other, each from a tick at least 3 s after the last one's: the two
    // ticks in between found the lock held and were skipped.
    let mut spans: Vec<&Value> = runs
        .iter()
        .filter(|r| r["started_at"].is_string())
        .collect();
    spans.sort_by_key(|r| time(r, "started_at"));
    for pair in spans.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        assert!(
            time(earlier, "finished_at") <= time(later, "started_at"),
            "two runs overlap: {earlier:#} {later:#}"
        );
        let tick = |run: &Value| {
            run["trigger"]["detail"]["tick"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        let apart = tick(later) - tick(earlier);
        assert!(
            apart >= chrono::TimeDelta::seconds(3),
            "ticks {apart} apart"
        );
    }
    let metrics = server.text("/metrics").await;
    let skipped = metrics
        .lines()
        .find(|l| {
            l.starts_with("octoflow_runs_admitted_total{")
                && l.contains("flow=\"jira_report\"")
                && l.contains("outcome=\"skipped\"")
        })
        .unwrap_or_else(|| panic!("no skipped tick counted:\n{metrics}"));
    assert!(!skipped.ends_with(" 0"), "{skipped}");
}

#[test]
fn the_example_flows_validate() {
    let o = octo();
    copy_dir(&example().join("data"), &o.data_dir());
    o.clone().args(["validate"]).run().success();
}
