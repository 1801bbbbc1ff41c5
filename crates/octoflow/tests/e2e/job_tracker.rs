//! The job tracker example (`examples/job-tracker`) under `octoflow serve`: the tracker file
//! exists once a run is accepted and moves step by step; the run's context is updated from
//! outside mid-run; the file reads as the tracker library's users read theirs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::Server;
use crate::{copy_dir, octo};

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/job-tracker")
        .join(rel)
}

/// A node serving a copy of the example with one worker, its stand-in tools taking `delay`
/// seconds a step.
fn node(delay: &str) -> Server {
    let o = octo().env("ASSET_STEP_DELAY", delay);
    copy_dir(&example("data"), &o.data_dir());
    Server::start(&o, &["--workers", "1"])
}

fn tracker_path(server: &Server, id: &str) -> PathBuf {
    server.octo.data_dir().join(format!("trackers/{id}.json"))
}

/// The tracker file as it is now (`None` while missing).
fn read_tracker(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("a tracker file is always whole"))
}

/// `(current_step, job_status, previous_step_status)` of a document.
fn state(doc: &Value) -> (u64, String, String) {
    let m = &doc["job_management"];
    (
        m["current_step"].as_u64().unwrap(),
        m["job_status"].as_str().unwrap().to_owned(),
        m["previous_step_status"].as_str().unwrap().to_owned(),
    )
}

async fn start(server: &Server, flow: &str, source: &str) -> String {
    let (code, run) = server
        .post(
            &format!("/api/v1/flows/{flow}/runs"),
            &json!({"params": {"asset_id": "a-1", "source": source}}),
        )
        .await;
    assert_eq!(code, 201, "{run}");
    run["id"].as_str().unwrap().to_owned()
}

/// `PATCH /api/v1/runs/{id}/context`: the status and the answer.
async fn patch(server: &Server, id: &str, body: &Value) -> (u16, Value) {
    let answer = server
        .http
        .patch(format!("{}/api/v1/runs/{id}/context", server.url))
        .json(body)
        .send()
        .await
        .unwrap();
    let code = answer.status().as_u16();
    (code, answer.json().await.unwrap())
}

/// Follows the tracker file until the job ends: every distinct state it showed, in order.
async fn follow(path: &Path) -> Vec<(u64, String, String)> {
    let mut seen: Vec<(u64, String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(doc) = read_tracker(path) {
            let now = state(&doc);
            if seen.last() != Some(&now) {
                seen.push(now.clone());
            }
            if !["", "running"].contains(&now.1.as_str()) {
                return seen;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never ended: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_file_exists_on_acceptance_and_moves_step_by_step() {
    let server = node("0.3");
    let id = start(&server, "create_asset", "origin/page-0001.jp2").await;
    let path = tracker_path(&server, &id);
    // The one worker is busy: this run waits in the queue, and its file is there already,
    // as the library's `init_tracker_file` made it.
    let queued = start(&server, "update_asset", "origin/page-0001.jp2").await;
    let waiting = read_tracker(&tracker_path(&server, &queued))
        .expect("no tracker file for a run accepted but not started");
    assert_eq!(state(&waiting), (1, String::new(), String::new()));
    let (code, refused) = patch(&server, &queued, &json!({"early": true})).await;
    assert_eq!(code, 409, "{refused}");

    let first = read_tracker(&path).expect("no tracker file when the run was accepted");
    assert_eq!(first["job_ticket_id"], id.as_str());
    assert_eq!(first["job_name"], "create_asset");
    assert_eq!(
        first["job_management"]["steps"],
        json!({"1": "generate_mock_manifest", "2": "retrieve_image_from_origin",
               "3": "check_jp2_compliance", "4": "create_thumbnails",
               "5": "save_to_storage", "6": "save_data"})
    );

    // Mid-run, from outside: the context takes the update, the file and the API show it.
    let (code, doc) = patch(
        &server,
        &id,
        &json!({"operator": "ingest-worker-7", "priority": 2}),
    )
    .await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["context"]["operator"], "ingest-worker-7");
    let seen = follow(&path).await;

    let steps: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    for n in 1..=4 {
        assert!(
            seen.iter().any(|s| s.0 == n && s.1 == "running"),
            "step {n} was never shown running: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|s| s.0 >= 2 && s.1 == "running" && s.2 == "succeeded"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().unwrap(),
        &(6, "succeeded".to_owned(), "succeeded".to_owned())
    );
    let last = read_tracker(&path).unwrap();
    assert_eq!(last["context"]["operator"], "ingest-worker-7");
    assert_eq!(last["context"]["priority"], 2);
    let (_, from_api) = server.get(&format!("/api/v1/runs/{id}/tracker")).await;
    assert_eq!(from_api["context"]["operator"], "ingest-worker-7");
    assert_eq!(from_api["job_management"], last["job_management"]);
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(server.octo.data_dir().join("storage/a-1/job.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        stored["operator"], "ingest-worker-7",
        "later steps saw the update"
    );

    // As the library's users read it: their field names and date format.
    #[allow(clippy::disallowed_methods)] // the test runs the library users' reader
    let out = std::process::Command::new("python3")
        .arg(example("bin/tracker_report.py"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["job_ticket_id"], id.as_str());
    assert_eq!(report["current_step_name"], "save_data");
    assert_eq!(report["job_status"], "succeeded");
    assert!(report["seconds"].as_f64().unwrap() >= 1.0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_image_fails_its_check_and_the_tracker_says_where() {
    let server = node("0");
    let id = start(&server, "create_asset", "origin/broken.jp2").await;
    let path = tracker_path(&server, &id);
    let seen = follow(&path).await;
    assert_eq!(
        seen.last().unwrap(),
        &(3, "failed".to_owned(), "failed".to_owned())
    );
    let run = server.until(&id, &["failed"]).await;
    assert_eq!(run["error"]["step"], "check_jp2_compliance");

    // An ended run's context is final; an engine key is refused; a run must exist.
    let (code, refused) = patch(&server, &id, &json!({"late": 1})).await;
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has ended (failed)"),
        "{refused}"
    );
    let (code, refused) = patch(&server, &id, &json!({"__errors__": []})).await;
    assert_eq!(
        (code, &refused["error"]["details"]["field"]),
        (400, &json!("__errors__"))
    );
    let (code, _) = patch(&server, "01900000-0000-7000-8000-000000000000", &json!({})).await;
    assert_eq!(code, 404);

    let updated = start(&server, "update_asset", "origin/page-0001.jp2").await;
    server.until(&updated, &["succeeded"]).await;
    // The tracker's last write follows the run's recorded end by a moment.
    let path = tracker_path(&server, &updated);
    let seen = follow(&path).await;
    assert_eq!(
        seen.last().unwrap(),
        &(5, "succeeded".to_owned(), "succeeded".to_owned())
    );
    let doc = read_tracker(&path).unwrap();
    assert_eq!(
        doc["job_management"]["steps"]["1"],
        "retrieve_image_from_origin"
    );
}
