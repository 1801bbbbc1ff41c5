//! Waited webhook runs of flows whose steps touch nothing outside the run: recorded once, at
//! their end, before the answer — or `running` first when they outlast a moment or log.

use std::time::Duration;

use serde_json::Value;

use crate::support::{App, get, post};

/// Steps that only compute; `secs` makes the run outlast the moment before it is recorded.
const PURE: &str = r#"name: pure
params: { secs: { type: number, default: 0 } }
triggers:
  - webhook: { path: pure, wait: true, wait_timeout: 400ms }
steps:
  - name: nap
    sleep: { seconds: "{{ params.secs }}" }
  - name: shape
    jq: { expression: '{n: (.__input__.n + 1)}' }
  - name: answer
    set_fact: { value: "{{ data.shape.n }}" }
"#;

/// The same, with a command to run after a failure: not side-effect free.
const IMPURE: &str = r#"name: impure
params: { secs: { type: number, default: 0 } }
triggers:
  - webhook: { path: impure, wait: true }
steps:
  - name: nap
    sleep: { seconds: "{{ params.secs }}" }
on_failure:
  - name: report
    exec: { command: [sh, -c, "echo failed"] }
"#;

async fn runs_of(app: &App, flow: &str) -> Vec<Value> {
    let list = app
        .send(get(&format!("/api/v1/runs?flow={flow}")))
        .await
        .expect(200)
        .json();
    list["items"].as_array().unwrap().clone()
}

/// The answer comes with the run and every step in the store, though nothing of the run was
/// there while it ran; a flow with an `exec` step anywhere is recorded before it starts.
#[tokio::test]
async fn a_side_effect_free_waited_run_is_recorded_once_at_its_end() {
    let app = App::builder()
        .flow("pure.yml", PURE)
        .flow("impure.yml", IMPURE)
        .workers()
        .build();
    // The workers' first look at the queue holds their slots for a moment: a request then
    // would be queued, as when every slot is busy.
    app.send(post("/hooks/impure")).await.expect(200);
    let request = post("/hooks/pure?secs=0.01").json(&serde_json::json!({"n": 41}));
    let waited = app.send(request);
    tokio::pin!(waited);
    let mut looked = 0;
    let run = loop {
        tokio::select! {
            answer = &mut waited => break answer.expect(200).json(),
            () = tokio::time::sleep(Duration::from_millis(2)) => {
                // Listed only once ended (the answer may be ready and not yet taken).
                for run in runs_of(&app, "pure").await {
                    assert_eq!(run["status"], "succeeded", "recorded before its end: {run}");
                }
                looked += 1;
            }
        }
    };
    assert!(looked > 0, "the run was looked for while it ran");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["data"]["answer"], 42);
    let id = run["id"].as_str().unwrap();
    let stored = app.send(get(&format!("/api/v1/runs/{id}"))).await.json();
    for (field, value) in run.as_object().unwrap() {
        assert_eq!(&stored[field], value, "{field}: {stored}");
    }
    let names: Vec<&str> = stored["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nap", "shape", "answer"]);

    let waited = app.send(post("/hooks/impure?secs=0.3"));
    tokio::pin!(waited);
    let seen = loop {
        tokio::select! {
            _ = &mut waited => break false,
            () = tokio::time::sleep(Duration::from_millis(5)) => {
                if runs_of(&app, "impure").await.first().is_some_and(|r| r["status"] == "running") {
                    break true;
                }
            }
        }
    };
    assert!(
        seen,
        "a run that may run a command is recorded before it starts"
    );
    waited.await.expect(200);
}

/// A run that outlasts the moment is recorded `running` and leased like any other: the
/// answer after `wait_timeout` names a run that is there, and it ends with all its steps.
#[tokio::test]
async fn a_deferred_run_that_outlasts_a_moment_is_recorded_running() {
    let app = App::builder().flow("pure.yml", PURE).workers().build();
    let answer = app
        .send(post("/hooks/pure?secs=1").json(&serde_json::json!({"n": 1})))
        .await
        .expect(202)
        .json();
    let id = answer["run_id"].as_str().unwrap();
    let run = app
        .send(get(&format!("/api/v1/runs/{id}")))
        .await
        .expect(200)
        .json();
    assert_eq!(run["status"], "running");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let run = app.send(get(&format!("/api/v1/runs/{id}"))).await.json();
        if run["status"] != "running" {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "still running: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended["status"], "succeeded");
    assert_eq!(ended["data"]["answer"], 2);
    assert_eq!(ended["steps"].as_array().unwrap().len(), 3, "{ended}");
}
