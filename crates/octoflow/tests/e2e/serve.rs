//! `octoflow serve` end to end: runs through the API and the workers, concurrency policies
//! under concurrent requests, cancel, live logs, hot reload, kill -9 and SIGTERM.

use std::time::{Duration, Instant};

use futures::StreamExt;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::octo;
use crate::server::Server;

const HELLO: &str = "params:\n  who: { type: string, default: world }\nsteps:\n  - name: greet\n    set_fact: { value: 'hello {{ params.who }}' }\n";
const NAP: &str = "params:\n  secs: { type: number, default: 30 }\n  k: { type: integer, default: 0 }\nsteps:\n  - name: nap\n    exec: { command: [sleep, '{{ params.secs }}'] }\n";

fn run_id(run: &Value) -> String {
    run["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_through_the_api_succeeds_and_is_recorded() {
    let server = Server::start(&octo().flow("hello", HELLO), &[]);
    let (code, run) = server
        .post(
            "/api/v1/flows/hello/runs",
            &json!({"params": {"who": "api"}}),
        )
        .await;
    assert_eq!(code, 201, "{run}");
    assert_eq!(run["status"], "queued");
    let run = server.until(&run_id(&run), &["succeeded"]).await;
    assert_eq!(run["data"]["greet"], "hello api");
    assert_eq!(run["steps"][0]["step"], "greet");
    assert_eq!(run["trigger"]["kind"], "manual");

    let (code, tracker) = server
        .get(&format!("/api/v1/runs/{}/tracker", run_id(&run)))
        .await;
    assert_eq!(code, 200);
    assert_eq!(tracker["job_management"]["job_status"], "succeeded");

    let (code, error) = server
        .post(
            "/api/v1/flows/hello/runs",
            &json!({"params": {"who": 5, "extra": 1}}),
        )
        .await;
    assert_eq!(code, 400, "{error}");
    assert_eq!(error["error"]["code"], "invalid_params");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_requests_with_one_key_make_one_run_under_skip_and_dedupe() {
    let skip = format!("concurrency: {{ key: 'k-{{{{ params.k }}}}', policy: skip }}\n{NAP}");
    let dedupe = format!("concurrency: {{ key: 'd-{{{{ params.k }}}}', policy: dedupe }}\n{NAP}");
    let server = Server::start(&octo().flow("skip", &skip).flow("dedupe", &dedupe), &[]);
    for (flow, repeat_code) in [("skip", 409), ("dedupe", 200)] {
        let path = format!("/api/v1/flows/{flow}/runs");
        let body = json!({"params": {"k": 1, "secs": 30}});
        let answers = futures::future::join_all((0..50).map(|_| server.post(&path, &body))).await;
        let created: Vec<&Value> = answers
            .iter()
            .filter(|(code, _)| *code == 201)
            .map(|(_, run)| run)
            .collect();
        assert_eq!(created.len(), 1, "{flow}: {answers:?}");
        let id = run_id(created[0]);
        for (code, body) in &answers {
            match *code {
                201 => {}
                c if c == repeat_code && repeat_code == 409 => {
                    assert_eq!(body["error"]["code"], "conflict");
                    assert_eq!(body["error"]["details"]["run_id"], json!(id));
                }
                c if c == repeat_code => assert_eq!(body["id"], json!(id), "{flow}: {body}"),
                other => panic!("{flow}: unexpected {other}: {body}"),
            }
        }
        // Another key is not blocked.
        let (code, _) = server
            .post(&path, &json!({"params": {"k": 2, "secs": 0}}))
            .await;
        assert_eq!(code, 201);
        let (code, _) = server
            .post(&format!("/api/v1/runs/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(code, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_waits_and_replace_cancels_the_running_run() {
    let queue = format!("concurrency: {{ policy: queue }}\n{NAP}");
    let replace = format!("concurrency: {{ policy: replace }}\n{NAP}");
    let server = Server::start(&octo().flow("queue", &queue).flow("replace", &replace), &[]);

    let (_, first) = server
        .post("/api/v1/flows/queue/runs", &json!({"params": {"secs": 1}}))
        .await;
    let (_, second) = server
        .post("/api/v1/flows/queue/runs", &json!({"params": {"secs": 0}}))
        .await;
    server.until(&run_id(&first), &["running"]).await;
    let (_, waiting) = server
        .get(&format!("/api/v1/runs/{}", run_id(&second)))
        .await;
    assert_eq!(waiting["status"], "queued");
    let first = server.until(&run_id(&first), &["succeeded"]).await;
    let second = server.until(&run_id(&second), &["succeeded"]).await;
    assert!(second["started_at"].as_str() >= first["finished_at"].as_str());

    let (_, old) = server
        .post(
            "/api/v1/flows/replace/runs",
            &json!({"params": {"secs": 30}}),
        )
        .await;
    server.until(&run_id(&old), &["running"]).await;
    let (code, new) = server
        .post(
            "/api/v1/flows/replace/runs",
            &json!({"params": {"secs": 0}}),
        )
        .await;
    assert_eq!(code, 201, "{new}");
    let old = server.until(&run_id(&old), &["cancelled"]).await;
    assert_eq!(old["status"], "cancelled");
    server.until(&run_id(&new), &["succeeded"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_running_process() {
    let server = Server::start(&octo().flow("nap", NAP), &[]);
    let (_, run) = server.post("/api/v1/flows/nap/runs", &json!({})).await;
    let id = run_id(&run);
    server.until(&id, &["running"]).await;
    // Wait for the `sleep` process to exist.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = child_sleep(server.pid()) {
            break pid;
        }
        assert!(Instant::now() < deadline, "no sleep process");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let asked = Instant::now();
    let (code, run) = server
        .post(&format!("/api/v1/runs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 200, "{run}");
    let run = server.until(&id, &["cancelled"]).await;
    assert_eq!(run["steps"][0]["status"], "cancelled");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "sleep {pid} is still there"
    );
    let (code, again) = server
        .post(&format!("/api/v1/runs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 409, "{again}");
}

/// The pid of a `sleep` process among the descendants of `ancestor`.
fn child_sleep(ancestor: u32) -> Option<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`: the command may hold spaces, so split after `)`.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if comm.trim() != "sleep" {
                return None;
            }
            let mut up = parent_of(pid);
            while let Some(p) = up {
                if p == ancestor {
                    return Some(pid);
                }
                up = (p > 1).then(|| parent_of(p)).flatten();
            }
            None
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_log_lines_as_they_are_written() {
    let chatty = "steps:\n  - name: talk\n    exec: { command: [sh, -c, 'for i in 1 2 3; do echo line $i; sleep 0.4; done'] }\n";
    let server = Server::start(&octo().flow("chatty", chatty), &[]);
    let (_, run) = server.post("/api/v1/flows/chatty/runs", &json!({})).await;
    let id = run_id(&run);
    let answer = server
        .http
        .get(format!("{}/api/v1/runs/{id}/logs?follow=true", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = answer.bytes_stream();
    let mut text = String::new();
    let mut first_line_status = None;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("the stream stalled")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if first_line_status.is_none() && text.contains("line 1") {
            // The first line arrives while the run is still going.
            let (_, now) = server.get(&format!("/api/v1/runs/{id}")).await;
            first_line_status = Some(now["status"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(first_line_status.as_deref(), Some("running"), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("line ")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(text.contains("event: end"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_files_are_hot_reloaded() {
    let o = octo().flow("hello", HELLO);
    let server = Server::start(&o, &[]);
    let flows = server.octo.path("data/flows");
    std::fs::write(
        flows.join("added.yml"),
        "steps:\n  - name: a\n    set_fact: { value: 1 }\n",
    )
    .unwrap();
    std::fs::write(flows.join("hello.yml"), HELLO.replace("hello {{", "hi {{")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    let (added, changed) = loop {
        let (_, list) = server.get("/api/v1/flows").await;
        let names: Vec<&str> = list["items"]
            .as_array()
            .map(|l| l.iter().filter_map(|f| f["name"].as_str()).collect())
            .unwrap_or_default();
        let (_, hello) = server.get("/api/v1/flows/hello").await;
        let changed = hello["source"]
            .as_str()
            .unwrap_or_default()
            .contains("hi {{");
        if names.contains(&"added") && changed || Instant::now() > deadline {
            break (names.contains(&"added"), changed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        added && changed,
        "not reloaded within 1 s: added {added}, changed {changed}"
    );
    let (_, run) = server.post("/api/v1/flows/hello/runs", &json!({})).await;
    let run = server.until(&run_id(&run), &["succeeded"]).await;
    assert_eq!(run["data"]["greet"], "hi world");

    // A broken file keeps its last good version running, and says what is wrong.
    std::fs::write(
        flows.join("hello.yml"),
        "steps:\n  - name: greet\n    set_fakt: {}\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    let problems = loop {
        let (_, hello) = server.get("/api/v1/flows/hello").await;
        let problems = hello["problems"].as_array().cloned().unwrap_or_default();
        if !problems.is_empty() || Instant::now() > deadline {
            break problems;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        !problems.is_empty(),
        "the broken file's problem is not shown"
    );
    assert!(problems.iter().any(|p| p["line"] == 3), "{problems:?}");
    let (code, run) = server.post("/api/v1/flows/hello/runs", &json!({})).await;
    assert_eq!(code, 201, "{run}");
    let run = server.until(&run_id(&run), &["succeeded"]).await;
    assert_eq!(run["data"]["greet"], "hi world");

    std::fs::remove_file(flows.join("added.yml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (code, _) = server.get("/api/v1/flows/added").await;
        if code == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removed flow still listed after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_runs_and_keeps_queued_ones() {
    let short = "concurrency: { policy: queue }\nsteps:\n  - name: nap\n    exec: { command: [sleep, '0.5'] }\n";
    let o = octo().flow("short", short);
    let server = Server::start(&o, &[]);
    let (_, first) = server.post("/api/v1/flows/short/runs", &json!({})).await;
    let (_, second) = server.post("/api/v1/flows/short/runs", &json!({})).await;
    server.until(&run_id(&first), &["running"]).await;
    let (out, stderr) = server.signal_and_wait(Signal::SIGTERM);
    out.success();
    assert!(
        stderr.contains("stopped; every run is recorded"),
        "{stderr}"
    );
    let runs = crate::server::recorded(&o).await;
    let status = |id: &str| {
        runs.iter()
            .find(|r| r.id.to_string() == id)
            .unwrap()
            .status
            .as_str()
    };
    assert_eq!(status(&run_id(&first)), "succeeded");
    assert!(["queued", "succeeded"].contains(&status(&run_id(&second))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_what_outlives_the_grace() {
    let o = octo()
        .flow("nap", NAP)
        .env("OCTOFLOW_SHUTDOWN_GRACE", "300ms");
    let server = Server::start(&o, &[]);
    let (_, run) = server.post("/api/v1/flows/nap/runs", &json!({})).await;
    server.until(&run_id(&run), &["running"]).await;
    let asked = Instant::now();
    let (out, stderr) = server.signal_and_wait(Signal::SIGTERM);
    out.success();
    assert!(asked.elapsed() < Duration::from_secs(10), "{stderr}");
    let runs = crate::server::recorded(&o).await;
    assert_eq!(runs[0].status.as_str(), "cancelled", "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_every_run_ends_recorded() {
    let retry = format!(
        "on_interrupt: retry\n{}",
        NAP.replace("default: 30", "default: 1")
    );
    let o = octo().flow("nap", NAP).flow("again", &retry);
    let server = Server::start(&o, &[]);
    let (_, lost) = server.post("/api/v1/flows/nap/runs", &json!({})).await;
    let (_, requeued) = server.post("/api/v1/flows/again/runs", &json!({})).await;
    server.until(&run_id(&lost), &["running"]).await;
    server.until(&run_id(&requeued), &["running"]).await;
    server.kill();

    let server = Server::start(&o, &[]);
    let lost = server.until(&run_id(&lost), &["failed"]).await;
    assert_eq!(lost["error"]["message"], "interrupted");
    let again = server.until(&run_id(&requeued), &["succeeded"]).await;
    assert_eq!(again["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_job_reports_through_the_callback_url() {
    // The job reports progress and its end at once, before the `wait` step starts waiting.
    let job = r#"
import json, sys, urllib.request
def post(body):
    request = urllib.request.Request(sys.argv[1], data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
post({"progress": {"current": 1, "total": 2, "message": "copying"}, "message": "half way"})
post({"status": "succeeded", "data": {"rows": 3}, "message": "done"})
"#;
    let flow = format!(
        "steps:\n  - name: launch\n    exec: {{ command: [python3, -c, {job:?}, '{{{{ run.callback_url }}}}'] }}\n  - name: job\n    wait: {{ callback: true, timeout: 20s }}\n"
    );
    let server = Server::start(&octo().flow("external", &flow), &[]);
    let (_, run) = server.post("/api/v1/flows/external/runs", &json!({})).await;
    let run = server.until(&run_id(&run), &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["data"]["job"]["data"]["rows"], 3);
    assert_eq!(run["data"]["job"]["message"], "done");
    assert_eq!(run["progress"]["message"], "copying");
    let logs = server
        .http
        .get(format!("{}/api/v1/runs/{}/logs", server.url, run_id(&run)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(logs.contains("callback: half way"), "{logs}");

    // A failed report fails the step with the job's message.
    let failing = flow.replace(
        r#"\"status\": \"succeeded\", \"data\": {\"rows\": 3}, \"message\": \"done\""#,
        r#"\"status\": \"failed\", \"message\": \"disk full\""#,
    );
    assert_ne!(failing, flow);
    std::fs::write(server.octo.path("data/flows/failing.yml"), failing).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let id = loop {
        let (code, run) = server.post("/api/v1/flows/failing/runs", &json!({})).await;
        if code == 201 {
            break run_id(&run);
        }
        assert!(Instant::now() < deadline, "flow `failing` not loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let run = server.until(&id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["step"], "job");
    assert_eq!(
        run["error"]["message"],
        "the job reported failure: disk full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_log_can_be_json_lines() {
    let o = octo()
        .flow("hello", "steps:\n  - name: a\n    set_fact: { value: 1 }\n")
        .env("OCTOFLOW_LOG", "info");
    let server = Server::start(&o, &["--log-format", "json"]);
    let (_, run) = server.post("/api/v1/flows/hello/runs", &json!({})).await;
    server.until(&run_id(&run), &["succeeded"]).await;
    let (out, stderr) = server.signal_and_wait(Signal::SIGTERM);
    out.success();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let listening = events
        .iter()
        .find(|e| e["message"] == "Listening.")
        .unwrap_or_else(|| panic!("no `Listening.` event:\n{stderr}"));
    assert_eq!(listening["level"], "INFO");
    assert!(listening["timestamp"].is_string(), "{listening}");
    assert!(
        listening["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // Text lines are only the command's own notes (`octoflow serve: …`), never log events.
    for line in stderr.lines().filter(|l| !l.starts_with('{')) {
        assert!(line.starts_with("octoflow serve"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_past_their_retention_are_removed_with_their_workspaces() {
    let flow = "steps:\n  - { name: text, set_fact: { value: hello } }\n  - name: keep\n    file: { path: \"runs/{{ run.id }}/note.txt\", mode: write, format: text, data_key: text }\n";
    let o = octo()
        .flow("noted", flow)
        .file("data/config.yml", "limits: { run_retention: 2s }\n");
    let server = Server::start(&o, &[]);
    let (code, run) = server.post("/api/v1/flows/noted/runs", &json!({})).await;
    assert_eq!(code, 201, "{run}");
    let id = run_id(&run);
    server.until(&id, &["succeeded"]).await;
    let workspace = o.path(&format!("data/runs/{id}"));
    assert!(workspace.join("note.txt").is_file());
    // Gone within its retention and a few rounds of the pruner.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _) = server.get(&format!("/api/v1/runs/{id}")).await;
        if code == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {id} was kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!workspace.exists(), "its workspace was kept");
    let (_, logs) = server.get(&format!("/api/v1/runs/{id}/logs")).await;
    assert!(
        logs.is_null() || logs["error"]["code"] == "not_found",
        "{logs}"
    );
    let metrics = server.text("/metrics").await;
    let pruned = metrics
        .lines()
        .find(|l| l.starts_with("octoflow_runs_pruned_total"))
        .unwrap_or_else(|| panic!("no pruned metric:\n{metrics}"));
    assert!(!pruned.ends_with(" 0"), "{pruned}");
}
