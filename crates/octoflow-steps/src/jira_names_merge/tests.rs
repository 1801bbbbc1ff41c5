//! Tests of the `jira_names_merge` kind: a realistic search result (`fixtures/`), the
//! spooler's form, `list_key`, and each error the user can meet.

use octoflow_core::step::Registry;
use octoflow_core::store::{RunStatus, StepStatus};
use octoflow_testkit::harness::{Harness, Report};
use serde_json::{Value, json};

use super::{merge, normalize};

const SEARCH: &str = include_str!("fixtures/search.json");
const MERGED: &str = include_str!("fixtures/merged.json");

fn harness(input: Value, yaml: &str) -> Harness {
    let mut registry = Registry::new();
    crate::register_builtin(&mut registry);
    Harness::new(registry).input(input).flow(yaml)
}

fn search() -> Value {
    serde_json::from_str(SEARCH).unwrap()
}

#[track_caller]
fn assert_failed(report: &Report, step: &str, error: &str) {
    report
        .assert_status(RunStatus::Failed)
        .assert_step(step, StepStatus::Failed);
    assert_eq!(report.step(step).error.as_deref(), Some(error));
}

#[tokio::test]
async fn merges_names_into_each_issue() {
    let report = harness(
        search(),
        "
steps:
  - name: issues
    jira_names_merge: {}
    data_key: __input__
",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let expected: Value = serde_json::from_str(MERGED).unwrap();
    let got = &report.run.data["issues"];
    assert_eq!(got, &expected, "{got:#}");
    // Field order is kept (a JSON map compares without order).
    let keys: Vec<&str> = got[0]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "summary",
            "status",
            "components",
            "story_points",
            "sprint",
            "epic_link",
            "business_value_(bv)",
            "customfield_10400",
            "customfield_10500",
            "created",
            "description"
        ]
    );
}

#[tokio::test]
async fn the_spooler_form_with_data_key_and_list_key_in_the_block() {
    let mut agile = search();
    let issues = agile.as_object_mut().unwrap().remove("issues").unwrap();
    agile["values"] = issues;
    let report = harness(
        json!({ "board": agile }),
        "
steps:
  - name: fetch
    type: set_fact
    set_fact: { value: '{{ __input__.board }}' }
    result_key: jira
  - name: merge
    type: jira_names_merge
    jira_names_merge:
      data_key: jira
      list_key: values
    jq_expression: '[.[] | {key, points: .fields.story_points}]'
",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded).assert_data(
        "merge",
        json!([{"key": "AVO-142", "points": 5.0}, {"key": "AVO-146", "points": null}]),
    );
}

#[tokio::test]
async fn without_names_the_error_says_to_add_expand_names() {
    let mut result = search();
    result.as_object_mut().unwrap().remove("names");
    let report = harness(
        result,
        "steps: [{name: m, jira_names_merge: {data_key: __input__}}]",
    )
    .run()
    .await;
    assert_failed(
        &report,
        "m",
        "the input has no `names`; add `expand=names` to the Jira search request",
    );
}

#[tokio::test]
async fn a_missing_list_or_data_key_is_named() {
    let report = harness(
        search(),
        "steps: [{name: m, jira_names_merge: {data_key: __input__, list_key: values}}]",
    )
    .run()
    .await;
    assert_failed(
        &report,
        "m",
        "the input has no `values`; set `list_key` to the key of its list of items",
    );

    let report = harness(search(), "steps: [{name: m, jira_names_merge: {}}]")
        .run()
        .await;
    assert_failed(
        &report,
        "m",
        "`jira_names_merge` reads a Jira search result from `data`; set `data_key`",
    );

    let report = harness(
        json!([1]),
        "steps: [{name: m, jira_names_merge: {data_key: __input__}}]",
    )
    .run()
    .await;
    assert_failed(
        &report,
        "m",
        "the input is a list, not a Jira search result (an object with `issues` and `names`)",
    );
}

#[tokio::test]
async fn load_time_problems() {
    let problems = harness(
        Value::Null,
        "steps: [{name: m, jira_names_merge: {list_ky: values}}]",
    )
    .load()
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].ends_with(
            "steps[0].jira_names_merge.list_ky: unknown field `list_ky`; did you mean `list_key`?"
        ),
        "{problems:?}"
    );
    let problems = harness(
        Value::Null,
        "steps: [{name: m, jira_names_merge: {list_key: ''}}]",
    )
    .load()
    .unwrap_err();
    assert!(problems[0].contains("`list_key` is empty"), "{problems:?}");
}

#[test]
fn names_become_snake_keys() {
    assert_eq!(normalize("Story Points"), "story_points");
    assert_eq!(normalize("Dev.Team-Name"), "dev_team_name");
    assert_eq!(normalize("Component/s"), "component/s");
    assert_eq!(normalize("ÉQUIPE Ops"), "équipe_ops");
}

#[test]
fn two_custom_fields_with_one_name_keep_both() {
    let result = json!({
        "issues": [{"key": "A-1", "fields": {"customfield_1": 3, "customfield_2": 8}}],
        "names": {"customfield_1": "Story Points", "customfield_2": "Story points"}
    });
    assert_eq!(
        merge(result, "issues").unwrap(),
        json!([{"key": "A-1", "fields": {"story_points": 3, "customfield_2": 8}}])
    );
}

#[test]
fn items_without_fields_pass_through() {
    let result = json!({"issues": [{"key": "A-1"}, 7], "names": {}});
    assert_eq!(merge(result, "issues").unwrap(), json!([{"key": "A-1"}, 7]));
}
