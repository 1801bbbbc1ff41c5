//! Tests of the `jinja` kind: files and inline templates, contexts, parsing, errors.

use crate::testing::harness;
use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::json;

#[tokio::test]
async fn renders_files_and_inline_templates() {
    harness()
        .param("env", json!("qas"))
        .file("templates/cmd.j2", "sync {{ params.env }} {{ count }}\n")
        .file("templates/sub/list.j2", "{% for i in item %}{{ i }};{% endfor %}")
        .flow(
            r#"
params: { env: { type: string } }
steps:
  - { name: count, set_fact: { value: 3 } }
  - { name: file, jinja: { path: cmd.j2 } }
  - { name: templated_path, jinja: { path: "{{ 'cmd' }}.j2" } }
  - { name: inline, jinja: { template: "{{ count * 2 }} in {{ run.flow }}" } }
  - { name: obj, set_fact: { value: { name: x, tags: [a, b] } } }
  - { name: ctx_object, jinja: { template: "{{ name }}/{{ tags | join(',') }}/{{ data.name }}", data_key: obj } }
  - { name: ctx_list, jinja: { path: sub/list.j2, data_key: obj.tags } }
  - { name: ctx_step_key, data_key: obj, jinja: { template: "{{ name }}" } }
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("file", json!("sync qas 3\n"))
        .assert_data("templated_path", json!("sync qas 3\n"))
        .assert_data("inline", json!("6 in test"))
        .assert_data("ctx_object", json!("x/a,b/x"))
        .assert_data("ctx_list", json!("a;b;"))
        .assert_data("ctx_step_key", json!("x"));
}

#[tokio::test]
async fn parses_json_and_yaml_output() {
    harness()
        .flow(
            r#"
steps:
  - { name: as_json, jinja: { template: '{"a": [{{ 1 + 1 }}]}', parse: json } }
  - { name: as_yaml, jinja: { template: "a: {{ 'b' }}\nnum: 2\n", parse: yaml } }
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("as_json", json!({"a": [2]}))
        .assert_data("as_yaml", json!({"a": "b", "num": 2}));
}

#[tokio::test]
async fn output_that_does_not_parse_fails() {
    let report = harness()
        .flow("steps: [{name: a, jinja: {template: 'not json', parse: json}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    let error = report.step("a").error.clone().unwrap_or_default();
    assert!(
        error.starts_with("cannot parse the rendered text as json: "),
        "{error}"
    );
}

#[tokio::test]
async fn the_data_key_context_is_the_whole_context() {
    let report = harness()
        .flow(
            r"
steps:
  - { name: obj, set_fact: { value: { name: x } } }
  - { name: a, jinja: { template: '{{ obj }}', data_key: obj } }
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("a").error.clone().unwrap_or_default();
    assert!(
        error.starts_with("cannot render `jinja.template`: `obj` is undefined"),
        "{error}"
    );
}

#[tokio::test]
async fn a_template_missing_at_run_time_fails() {
    let report = harness()
        .flow("steps: [{name: a, jinja: {path: \"{{ 'gone' }}.j2\"}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let dir = report.data_dir().join("templates");
    assert_eq!(
        report.step("a").error.clone().unwrap_or_default(),
        format!("template `gone.j2` not found in `{}`", dir.display())
    );
}

#[tokio::test]
async fn a_rendered_path_cannot_leave_the_templates_dir() {
    let report = harness()
        .file("secret.txt", "s")
        .flow("steps: [{name: a, jinja: {path: \"{{ '../secret.txt' }}\"}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("a").error.as_deref(),
        Some(
            "template `../secret.txt` must be a relative path inside the templates directory, without `..`"
        )
    );
}

#[track_caller]
fn load_errors(yaml: &str) -> Vec<String> {
    harness()
        .flow(yaml)
        .load()
        .expect_err("the flow should not load")
}

#[test]
fn a_missing_template_file_is_a_load_error() {
    let h = harness().flow("steps: [{name: a, jinja: {path: missing.j2}}]");
    let dir = h.data_dir().join("templates");
    assert_eq!(
        h.load().expect_err("missing template"),
        [format!(
            "flow.yml:1:33: steps[0].jinja.path: template `missing.j2` not found in `{}`",
            dir.display()
        )]
    );
}

#[test]
fn settings_problems_are_load_errors() {
    let load = load_errors;
    assert_eq!(
        load("steps: [{name: a, jinja: {path: ../flow.yml}}]"),
        [
            "flow.yml:1:33: steps[0].jinja.path: template `../flow.yml` must be a relative path inside the templates directory, without `..`"
        ]
    );
    assert_eq!(
        load("steps: [{name: a, jinja: {path: /etc/passwd}}]"),
        [
            "flow.yml:1:33: steps[0].jinja.path: template `/etc/passwd` must be a relative path inside the templates directory, without `..`"
        ]
    );
    assert_eq!(
        load("steps: [{name: a, jinja: {}}]"),
        [
            "flow.yml:1:26: steps[0].jinja: give `path` (a file in the templates directory) or `template` (inline text)"
        ]
    );
    assert_eq!(
        load("steps: [{name: a, jinja: {path: a.j2, template: x}}]"),
        ["flow.yml:1:49: steps[0].jinja.template: give `path` or `template`, not both"]
    );
    assert_eq!(
        load("steps: [{name: a, jinja: {template: '{% if %}'}}]"),
        [
            "flow.yml:1:37: steps[0].jinja.template: template syntax error: unexpected end of block in `%}`"
        ]
    );
    assert_eq!(
        load("steps: [{name: a, jinja: {template: x, parse: xml}}]"),
        ["flow.yml:1:47: steps[0].jinja.parse: unknown variant `xml`; expected `json` or `yaml`"]
    );
    assert_eq!(
        load("steps: [{name: a, jinja: {templte: x}}]"),
        [
            "flow.yml:1:27: steps[0].jinja.templte: unknown field `templte`; did you mean `template`?"
        ]
    );
}
