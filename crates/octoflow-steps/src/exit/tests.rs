//! Tests of the `exit` kind: the run ends `succeeded` and later steps are skipped.

use crate::testing::harness;
use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::json;

#[tokio::test]
async fn ends_the_run_and_skips_the_rest() {
    let report = harness()
        .flow(
            r"
steps:
  - { name: a, set_fact: { value: 2 } }
  - { name: stop, exit: { message: 'nothing to do ({{ a }} found)' } }
  - { name: later, set_fact: { value: 1 } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("stop", StepStatus::Succeeded)
        .assert_step("later", StepStatus::Skipped)
        .assert_data("stop", json!({"message": "nothing to do (2 found)"}));
    assert_eq!(
        report.run.message.as_deref(),
        Some("nothing to do (2 found)")
    );
    assert_eq!(report.run.data.get("later"), None);
}

#[tokio::test]
async fn the_message_defaults_to_exit() {
    let report = harness()
        .flow("steps: [{name: a, type: exit}, {name: b, set_fact: {value: 1}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("b", StepStatus::Skipped);
    assert_eq!(report.run.message.as_deref(), Some("exit"));
}

#[tokio::test]
async fn a_skipped_exit_does_not_end_the_run() {
    harness()
        .flow("steps: [{name: a, exit: {}, when: 'false'}, {name: b, set_fact: {value: 1}}]")
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_step("a", StepStatus::Skipped)
        .assert_data("b", json!(1));
}

#[test]
fn unknown_settings_are_load_errors() {
    let errors = harness()
        .flow("steps: [{name: a, exit: {mesage: x}}]")
        .load()
        .expect_err("typo");
    assert_eq!(
        errors,
        ["flow.yml:1:26: steps[0].exit.mesage: unknown field `mesage`; did you mean `message`?"]
    );
}
