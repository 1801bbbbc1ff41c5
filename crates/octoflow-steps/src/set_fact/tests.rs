//! Tests of the `set_fact` kind.

use crate::testing::harness;
use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::json;

#[tokio::test]
async fn renders_values_keeping_types() {
    harness()
        .param("env", json!("qas"))
        .flow(
            r#"
params: { env: { type: string } }
steps:
  - { name: num, set_fact: { value: 3 } }
  - { name: list, set_fact: { value: "{{ [num, num + 1] }}" } }
  - name: nested
    set_fact:
      value: { env: "{{ params.env }}", count: "{{ num * 2 }}", label: "n={{ num }}", keep: [true, null] }
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("num", json!(3))
        .assert_data("list", json!([3, 4]))
        .assert_data("nested", json!({"env": "qas", "count": 6, "label": "n=3", "keep": [true, null]}));
}

#[tokio::test]
async fn an_undefined_name_fails_the_step() {
    let report = harness()
        .flow("steps: [{name: a, set_fact: {value: '{{ missing }}'}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    let error = report.step("a").error.clone().unwrap_or_default();
    assert!(
        error == "cannot render `set_fact.value`: `missing` is undefined",
        "{error}"
    );
}

#[test]
fn settings_problems_are_load_errors() {
    let load = |yaml: &str| harness().flow(yaml).load().expect_err("should not load");
    assert_eq!(
        load("steps: [{name: a, set_fact: {}}]"),
        ["flow.yml:1:29: steps[0].set_fact: missing field `value`"]
    );
    assert_eq!(
        load("steps: [{name: a, set_fact: {vaule: 1}}]"),
        ["flow.yml:1:30: steps[0].set_fact.vaule: unknown field `vaule`; did you mean `value`?"]
    );
    assert_eq!(
        load("steps: [{name: a, set_fact: {value: '{{ a '}}]"),
        [
            "flow.yml:1:37: steps[0].set_fact.value: template syntax error: unexpected end of input, expected end of variable block in `a`"
        ]
    );
}
