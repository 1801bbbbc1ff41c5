//! Tests of the `sleep` kind: forms of the wait, cancellation, load-time errors.

use std::time::{Duration, Instant};

use crate::testing::harness;
use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::json;

#[tokio::test]
async fn waits_in_every_form() {
    let started = Instant::now();
    harness()
        .input(json!({"wait": 0.05}))
        .flow(
            r#"
steps:
  - { name: number, sleep: { seconds: 0.05 } }
  - { name: duration, sleep: { seconds: 50ms } }
  - { name: text_number, sleep: { seconds: "0.05" } }
  - { name: templated, sleep: { seconds: "{{ __input__.wait }}" } }
  - { name: zero, sleep: { seconds: 0 } }
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("number", json!(null))
        .assert_data("templated", json!(null));
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn cancel_stops_the_wait() {
    let started = Instant::now();
    let report = harness()
        .cancel_after(Duration::from_millis(100))
        .flow("steps: [{name: a, sleep: {seconds: 30}}, {name: b, set_fact: {value: 1}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("a", StepStatus::Cancelled)
        .assert_step("b", StepStatus::Skipped);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_step_timeout_ends_the_wait() {
    let report = harness()
        .flow("steps: [{name: a, timeout: 100ms, sleep: {seconds: 30}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::TimedOut);
}

#[tokio::test]
async fn a_bad_rendered_wait_fails_the_step() {
    let report = harness()
        .input(json!("soon"))
        .flow("steps: [{name: a, sleep: {seconds: '{{ __input__ }}'}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("a").error.clone().unwrap_or_default();
    assert!(
        error.starts_with(
            "cannot render `sleep.seconds`: rendered value does not fit: invalid wait `soon`"
        ),
        "{error}"
    );
}

#[test]
fn bad_waits_are_load_errors() {
    let load = |yaml: &str| harness().flow(yaml).load().expect_err("should not load");
    assert_eq!(
        load("steps: [{name: a, sleep: {seconds: soon}}]"),
        [
            "flow.yml:1:36: steps[0].sleep.seconds: invalid wait `soon`; use a number of seconds (1.5) or a duration (500ms, 30s, 5m, 2h, 1d)"
        ]
    );
    assert_eq!(
        load("steps: [{name: a, sleep: {seconds: -1}}]"),
        ["flow.yml:1:36: steps[0].sleep.seconds: invalid wait `-1`; it must not be negative"]
    );
    assert_eq!(
        load("steps: [{name: a, sleep: {secs: 1}}]"),
        ["flow.yml:1:27: steps[0].sleep.secs: unknown field `secs`; did you mean `seconds`?"]
    );
}
