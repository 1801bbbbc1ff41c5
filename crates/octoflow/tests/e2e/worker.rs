//! `octoflow worker` beside an API-only `serve` on one store: the worker runs what the API
//! accepts, and SIGTERM stops it with every run recorded.

use nix::sys::signal::Signal;
use serde_json::json;

use crate::octo;
use crate::server::{Ready, Server};

const NAP: &str = "steps:\n  - name: nap\n    exec: { command: [sleep, '0.3'] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_what_an_api_only_node_accepts() {
    let o = octo().flow("nap", NAP);
    let api = Server::start(&o, &["--workers", "0"]);
    let worker = Ready::spawn(
        &o.clone().args(["worker", "--workers", "2"]),
        "running queued runs",
    );
    let node = worker
        .line
        .split("(node ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_owned();

    let mut ids = Vec::new();
    for _ in 0..3 {
        let (code, run) = api.post("/api/v1/flows/nap/runs", &json!({})).await;
        assert_eq!(code, 201, "{run}");
        ids.push(run["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let run = api.until(id, &["succeeded"]).await;
        assert_eq!(run["node"], node.as_str(), "run by the worker: {run}");
    }

    // A run in progress when the worker is told to stop ends recorded before it exits.
    let (_, last) = api.post("/api/v1/flows/nap/runs", &json!({})).await;
    let last = last["id"].as_str().unwrap().to_owned();
    api.until(&last, &["running"]).await;
    let (out, stderr) = worker.signal_and_wait(Signal::SIGTERM);
    out.success();
    assert!(
        stderr.contains("octoflow worker: stopped; every run is recorded"),
        "{stderr}"
    );
    let run = api.until(&last, &["succeeded"]).await;
    assert_eq!(run["node"], node.as_str());
}

#[test]
fn a_worker_without_workers_is_refused() {
    octo()
        .args(["worker", "--workers", "0"])
        .run()
        .code(2)
        .stderr_contains("0 is not in 1..");
}
