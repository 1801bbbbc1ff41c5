//! Tests of the `debug` kind: what is written to the step log, and the result.

use crate::testing::harness;
use octoflow_core::store::{LogStream, RunStatus, StepStatus};
use serde_json::json;

#[tokio::test]
async fn writes_values_and_messages_to_the_log() {
    let report = harness()
        .flow(
            r#"
steps:
  - { name: v, set_fact: { value: { name: x, items: [1, 2] } } }
  - { name: yaml, debug: { data_key: v } }
  - { name: json, debug: { data_key: v.items, format: json } }
  - { name: msg, debug: { msg: "found {{ v.items | length }} items\nsecond line" } }
  - { name: typed, debug: { msg: "{{ v.items }}", format: text } }
  - { name: step_key, data_key: v.name, debug: {} }
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("yaml", json!({"name": "x", "items": [1, 2]}))
        .assert_data("json", json!([1, 2]))
        .assert_data("msg", json!("found 2 items\nsecond line"))
        .assert_data("typed", json!([1, 2]))
        .assert_data("step_key", json!("x"));
    assert_eq!(report.log_text("yaml"), "name: x\nitems:\n- 1\n- 2");
    assert_eq!(report.log_text("json"), "[\n  1,\n  2\n]");
    assert_eq!(report.log_text("msg"), "found 2 items\nsecond line");
    assert_eq!(report.log_text("typed"), "[\n  1,\n  2\n]");
    assert_eq!(report.log_text("step_key"), "x");
    assert!(
        report
            .logs
            .iter()
            .filter(|l| l.step == "msg")
            .all(|l| l.stream == LogStream::Engine)
    );
    assert_eq!(report.logs.iter().filter(|l| l.step == "msg").count(), 2);
}

#[tokio::test]
async fn without_data_key_writes_all_of_data() {
    let report = harness()
        .flow("steps: [{name: a, set_fact: {value: 1}}, {name: b, debug: {format: json}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let logged: serde_json::Value =
        serde_json::from_str(&report.log_text("b")).expect("the whole data as json");
    assert_eq!(logged["a"], json!(1));
}

#[tokio::test]
async fn msg_and_a_step_data_key_conflict() {
    let report = harness()
        .flow("steps: [{name: a, data_key: '.', debug: {msg: hi}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    assert_eq!(
        report.step("a").error.as_deref(),
        Some("give `msg` or `data_key`, not both")
    );
}

#[test]
fn settings_problems_are_load_errors() {
    let load = |yaml: &str| harness().flow(yaml).load().expect_err("should not load");
    assert_eq!(
        load("steps: [{name: a, debug: {msg: hi, data_key: x}}]"),
        ["flow.yml:1:32: steps[0].debug.msg: give `msg` or `data_key`, not both"]
    );
    assert_eq!(
        load("steps: [{name: a, debug: {format: jsn}}]"),
        ["flow.yml:1:35: steps[0].debug.format: unknown variant `jsn`; did you mean `json`?"]
    );
}
