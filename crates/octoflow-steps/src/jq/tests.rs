//! Tests of the `jq` kind: outputs, `single`, inputs, runtime and load-time errors.

use crate::testing::harness;
use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::json;

#[tokio::test]
async fn outputs_become_a_value_or_a_list() {
    harness()
        .input(json!({"items": [{"id": 1, "open": true}, {"id": 2, "open": false}]}))
        .flow(
            r#"
steps:
  - { name: src, set_fact: { value: "{{ __input__ }}" } }
  - { name: one, jq: { expression: "[.items[] | select(.open) | .id]", data_key: src } }
  - { name: several, jq: { expression: ".items[] | .id", data_key: src } }
  - { name: first, jq: { expression: ".items[] | .id", data_key: src, single: true } }
  - { name: none, jq: { expression: "empty", data_key: src } }
  - name: step_key
    data_key: src.items
    jq: { expression: length }
  - { name: whole, jq: { expression: ".src.items | length" } }
  - { name: dot, jq: { expression: ".one", data_key: "." } }
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("one", json!([1]))
        .assert_data("several", json!([1, 2]))
        .assert_data("first", json!(1))
        .assert_data("none", json!(null))
        .assert_data("step_key", json!(2))
        .assert_data("whole", json!(2))
        .assert_data("dot", json!([1]));
}

#[tokio::test]
async fn single_without_output_fails() {
    let report = harness()
        .flow("steps: [{name: a, jq: {expression: empty, single: true}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    assert_eq!(
        report.step("a").error.as_deref(),
        Some("jq: `empty` yielded no output; `single: true` needs one")
    );
}

#[tokio::test]
async fn runtime_errors_fail_the_step() {
    let report = harness()
        .input(json!({"a": "text"}))
        .flow("steps: [{name: a, jq: {expression: '.a + 1', data_key: __input__}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    let error = report.step("a").error.clone().unwrap_or_default();
    assert!(error.starts_with("jq: "), "{error}");
}

#[tokio::test]
async fn a_missing_data_key_names_it() {
    let report = harness()
        .flow("steps: [{name: a, jq: {expression: ., data_key: nothing.here}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("a").error.as_deref(),
        Some("data_key `nothing.here` is not in data")
    );
}

#[tokio::test]
async fn data_key_on_step_and_block_must_agree() {
    let report = harness()
        .input(json!(1))
        .flow("steps: [{name: a, data_key: __input__, jq: {expression: ., data_key: other}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("a").error.as_deref(),
        Some("`data_key` is set twice, `__input__` on the step and `other` in its block; keep one")
    );
}

#[test]
fn programs_are_compiled_when_loading() {
    let h = harness().flow("steps: [{name: a, jq: {expression: '.[ | '}}]");
    let errors = h.load().expect_err("a bad program is a load error");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("flow.yml:1:36: steps[0].jq.expression: jq: cannot parse `.[ | `"),
        "{errors:?}"
    );
    let h = harness().flow("steps: [{name: a, jq: {expresion: .}}]");
    assert_eq!(
        h.load().expect_err("unknown setting"),
        [
            "flow.yml:1:24: steps[0].jq.expresion: unknown field `expresion`; did you mean `expression`?"
        ]
    );
    let h = harness().flow("steps: [{name: a, jq: {expression: ., single: maybe}}]");
    assert_eq!(
        h.load().expect_err("bad bool"),
        ["flow.yml:1:47: steps[0].jq.single: invalid type: string \"maybe\", expected a boolean"]
    );
}
