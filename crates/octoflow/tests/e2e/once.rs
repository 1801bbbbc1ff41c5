//! Every accepted run executes once (SPEC §1, §9), through the real `octoflow serve`: the
//! children of a loop run inline in their parent and are never claimed by a worker.

use serde_json::json;

use crate::octo;
use crate::server::Server;

/// The child appends its item to `lines.txt` in the data directory.
const CHILD: &str = "steps:\n  - name: append\n    exec: { command: [sh, -c, 'echo \"$1\" >> \"$2\"', sh, '{{ __input__ }}', '{{ run.workdir }}/../../lines.txt'] }\n";
const LOOP: &str = "steps:\n  - name: items\n    set_fact: { value: '{{ range(1, 51) | list }}' }\n  - name: each\n    flow_loop: { name: child, data_key: items, concurrency: 8 }\n";

/// Regression (issue 12): with free workers, the queued child runs of a `flow_loop` were
/// also claimed by workers, and 40 of 50 items ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_fifty_children_on_eight_workers_runs_each_item_once() {
    let o = octo().flow("child", CHILD).flow("fan", LOOP);
    let server = Server::start(&o, &["--workers", "8"]);
    let (code, run) = server.post("/api/v1/flows/fan/runs", &json!({})).await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let run = server.until(&id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["data"]["each"].as_array().unwrap().len(), 50);

    let text = std::fs::read_to_string(o.data_dir().join("lines.txt")).unwrap();
    let mut lines: Vec<u32> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(lines.len(), 50, "each item once:\n{text}");
    lines.sort_unstable();
    assert_eq!(lines, (1..=50).collect::<Vec<_>>());

    let (code, children) = server.get("/api/v1/runs?flow=child&per_page=100").await;
    assert_eq!(code, 200, "{children}");
    assert_eq!(children["total"], 50, "one child run per item");
    for child in children["items"].as_array().unwrap() {
        assert_eq!(child["status"], "succeeded", "{child}");
        assert_eq!(child["parent_run_id"], json!(id));
        let (_, detail) = server
            .get(&format!("/api/v1/runs/{}", child["id"].as_str().unwrap()))
            .await;
        assert_eq!(
            detail["steps"].as_array().unwrap().len(),
            1,
            "one attempt of its step: {detail}"
        );
    }
}
