//! Tests of the `file` kind: every mode, the main formats, atomic writes, confinement and
//! load-time problems, plus one flow written in the spooler's format.

use std::fs;
use std::path::Path;

use octoflow_core::store::{RunStatus, StepStatus};
use octoflow_testkit::harness::Report;
use serde_json::{Value, json};

use super::ops;
use crate::testing::harness;

#[track_caller]
fn load_errors(yaml: &str) -> Vec<String> {
    harness()
        .flow(yaml)
        .load()
        .expect_err("the flow should not load")
}

#[track_caller]
fn read_text(report: &Report, relative: &str) -> String {
    fs::read_to_string(report.data_dir().join(relative)).expect("file written")
}

#[track_caller]
fn assert_failed(report: &Report, step: &str, error: &str) {
    report
        .assert_status(RunStatus::Failed)
        .assert_step(step, StepStatus::Failed);
    assert_eq!(report.step(step).error.as_deref(), Some(error));
}

/// Names in a directory, sorted, to see that nothing else (no temporary file) is there.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn reads_every_format() {
    harness()
        .file("in/a.json", r#"{"b": 1, "a": [true, null]}"#)
        .file("in/a.yml", "name: x\nitems: [1, 2]\n")
        .file("in/a.csv", "id,name\n1,alpha\n2,\"b, c\"\n")
        .file("in/a.txt", "hello\nworld\n")
        .file("in/a.log", "one\r\ntwo\n")
        .file("in/a.bin", "hi!")
        .flow(
            r"
steps:
  - { name: json, file: { path: in/a.json } }
  - { name: yaml, file: { path: in/a.yml } }
  - { name: csv, file: { path: in/a.csv } }
  - { name: text, file: { path: in/a.txt } }
  - { name: lines, file: { path: in/a.log, format: lines } }
  - { name: binary, file: { path: in/a.bin, format: binary } }
  - { name: forced, file: { path: in/a.txt, mode: read, format: lines } }
",
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("json", json!({"b": 1, "a": [true, null]}))
        .assert_data("yaml", json!({"name": "x", "items": [1, 2]}))
        .assert_data(
            "csv",
            json!([{"id": "1", "name": "alpha"}, {"id": "2", "name": "b, c"}]),
        )
        .assert_data("text", json!("hello\nworld\n"))
        .assert_data("lines", json!(["one", "two"]))
        .assert_data("binary", json!({"base64": "aGkh", "bytes": 3}))
        .assert_data("forced", json!(["hello", "world"]));
}

#[tokio::test]
async fn spooler_type_is_format() {
    harness()
        .file("payload.txt", r#"{"id": 7}"#)
        .file("conf.data", "a: 1\n")
        .flow(
            r"
steps:
  - { name: a, type: file, file: { path: payload.txt, type: json } }
  - { name: b, type: file, file: { path: conf.data, type: yaml } }
",
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("a", json!({"id": 7}))
        .assert_data("b", json!({"a": 1}));
}

#[tokio::test]
async fn a_missing_file_fails_the_step() {
    let report = harness()
        .flow("steps: [{name: a, file: {path: nope.json}}]")
        .run()
        .await;
    assert_failed(&report, "a", "file `nope.json` does not exist");
}

#[tokio::test]
async fn a_bad_document_names_file_and_format() {
    let report = harness()
        .file("bad.json", "{not json")
        .flow("steps: [{name: a, file: {path: bad.json}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("a").error.clone().unwrap_or_default();
    assert!(
        error.starts_with("cannot parse file `bad.json` as json: "),
        "{error}"
    );
}

#[tokio::test]
async fn reads_xml_only_when_asked() {
    let report = "<?xml version=\"1.0\"?>\n<TaskReport file=\"a.pdf\">\n  <Errors>1</Errors>\n  <Fix>a</Fix>\n  <Fix>b</Fix>\n</TaskReport>\n";
    harness()
        .file("out/report.xml", report)
        .flow(
            r"
steps:
  - { name: report, file: { path: out/report.xml, format: xml } }
  - { name: errors, set_fact: { value: '{{ report.TaskReport.Errors | int }}' } }
  - { name: as_text, file: { path: out/report.xml } }
",
        )
        .run()
        .await
        .assert_data(
            "report",
            json!({"TaskReport": {"@file": "a.pdf", "Errors": "1", "Fix": ["a", "b"]}}),
        )
        .assert_data("errors", json!(1))
        .assert_status(RunStatus::Succeeded)
        .assert_data("as_text", json!(report));
}

#[tokio::test]
async fn a_malformed_xml_document_names_the_place() {
    let report = harness()
        .file(
            "bad.xml",
            "<TaskReport>\n  <Errors>1</Error>\n</TaskReport>\n",
        )
        .flow("steps: [{name: a, file: {path: bad.xml, format: xml}}]")
        .run()
        .await;
    assert_failed(
        &report,
        "a",
        "cannot parse file `bad.xml` as xml: ill-formed document: expected `</Errors>`, but `</Error>` was found at line 2, column 12",
    );
}

#[tokio::test]
async fn writes_every_format_atomically() {
    let report = harness()
        .input(json!({
            "rows": [{"id": 1, "name": "a, b", "note": null}, {"id": 2, "name": "c"}],
            "doc": {"b": 1, "a": "x"},
            "text": "as is\n",
        }))
        .flow(
            r#"
steps:
  - { name: json, file: { path: out/doc.json, mode: write, data_key: __input__.doc } }
  - { name: yaml, file: { path: out/doc.yaml, mode: write, data_key: __input__.doc } }
  - { name: csv, file: { path: out/rows.csv, mode: write, data_key: __input__.rows } }
  - { name: text, file: { path: out/note.txt, mode: write, data_key: __input__.text } }
  - { name: object_text, file: { path: out/doc.txt, mode: write, data_key: __input__.doc } }
  - { name: lines, file: { path: out/ids.lines, mode: write, format: lines, data_key: __input__.rows } }
  - name: step_key
    data_key: __input__.doc
    file: { path: "out/{{ 'again' }}.json", mode: write }
"#,
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let pretty = "{\n  \"b\": 1,\n  \"a\": \"x\"\n}\n";
    assert_eq!(read_text(&report, "out/doc.json"), pretty);
    report.assert_data(
        "json",
        json!({"path": "out/doc.json", "bytes": pretty.len()}),
    );
    assert_eq!(read_text(&report, "out/again.json"), pretty);
    assert_eq!(read_text(&report, "out/doc.yaml"), "b: 1\na: x\n");
    assert_eq!(
        read_text(&report, "out/rows.csv"),
        "id,name,note\n1,\"a, b\",\n2,c,\n"
    );
    assert_eq!(read_text(&report, "out/note.txt"), "as is\n");
    assert_eq!(read_text(&report, "out/doc.txt"), r#"{"b":1,"a":"x"}"#);
    assert_eq!(
        read_text(&report, "out/ids.lines"),
        "{\"id\":1,\"name\":\"a, b\",\"note\":null}\n{\"id\":2,\"name\":\"c\"}\n"
    );
    // Written through a temporary file and a rename: nothing else is left behind.
    assert_eq!(
        names(&report.data_dir().join("out")),
        [
            "again.json",
            "doc.json",
            "doc.txt",
            "doc.yaml",
            "ids.lines",
            "note.txt",
            "rows.csv"
        ]
    );
}

#[tokio::test]
async fn write_replaces_the_whole_file() {
    let report = harness()
        .file("out.txt", &"old content that is longer\n".repeat(100))
        .input(json!("new"))
        .flow("steps: [{name: a, file: {path: out.txt, mode: write, data_key: __input__}}]")
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(read_text(&report, "out.txt"), "new");
    let leftovers: Vec<String> = names(&report.data_dir())
        .into_iter()
        .filter(|n| n.starts_with(".octoflow-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn binary_and_yaml_round_trip() {
    let report = harness()
        .file("in.bin", "\u{0}\u{1}bytes\u{ff}")
        .file("docs.yaml", "a: 1\n")
        .input(json!({"b": 2}))
        .flow(
            r"
steps:
  - { name: raw, file: { path: in.bin, format: binary } }
  - { name: copy, file: { path: out.bin, mode: write, format: binary, data_key: raw } }
  - { name: plain, file: { path: plain.bin, mode: write, format: binary, data_key: raw.base64 } }
  - { name: more, file: { path: docs.yaml, mode: append, data_key: __input__ } }
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let original = fs::read(report.data_dir().join("in.bin")).expect("input");
    assert_eq!(
        fs::read(report.data_dir().join("out.bin")).expect("copy"),
        original
    );
    assert_eq!(
        fs::read(report.data_dir().join("plain.bin")).expect("plain"),
        original
    );
    assert_eq!(read_text(&report, "docs.yaml"), "a: 1\n---\nb: 2\n");
}

#[tokio::test]
async fn reads_are_capped() {
    let h = harness();
    let big = fs::File::create(h.data_dir().join("big.txt")).expect("file");
    big.set_len(ops::MAX_READ_BYTES + 1).expect("sparse file");
    let report = h
        .flow("steps: [{name: a, file: {path: big.txt}}]")
        .run()
        .await;
    assert_failed(
        &report,
        "a",
        "file `big.txt` is 268435457 bytes, more than the 268435456 bytes a step reads",
    );
}

#[tokio::test]
async fn write_without_data_key_says_to_set_it() {
    let report = harness()
        .flow("steps: [{name: a, file: {path: out.json, mode: write}}]")
        .run()
        .await;
    assert_failed(
        &report,
        "a",
        "mode `write` writes a value from `data`; set `data_key` (`\".\"` for all of `data`)",
    );
    assert!(!report.data_dir().join("out.json").exists());
}

#[tokio::test]
async fn csv_needs_a_list_of_objects() {
    let report = harness()
        .input(json!({"a": 1}))
        .flow("steps: [{name: a, file: {path: o.csv, mode: write, data_key: __input__}}]")
        .run()
        .await;
    assert_failed(
        &report,
        "a",
        "cannot write file `o.csv` as csv: `csv` writes a list of objects, found an object",
    );
}

#[tokio::test]
async fn appends_in_each_format() {
    let report = harness()
        .file("log.txt", "start")
        .file("list.lines", "a\n")
        .file("rows.csv", "name,id\nx,0\n")
        .input(json!({"line": "!", "items": ["b", "c"], "rows": [{"id": 1, "name": "y"}], "event": {"n": 1}}))
        .flow(
            r"
steps:
  - { name: text, file: { path: log.txt, mode: append, data_key: __input__.line } }
  - { name: lines, file: { path: list.lines, mode: append, format: lines, data_key: __input__.items } }
  - { name: csv, file: { path: rows.csv, mode: append, data_key: __input__.rows } }
  - { name: new_csv, file: { path: new/rows.csv, mode: append, data_key: __input__.rows } }
  - { name: json1, file: { path: events.json, mode: append, data_key: __input__.event } }
  - { name: json2, file: { path: events.json, mode: append, data_key: __input__.event } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("text", json!({"path": "log.txt", "bytes": 1}));
    assert_eq!(read_text(&report, "log.txt"), "start!");
    assert_eq!(read_text(&report, "list.lines"), "a\nb\nc\n");
    assert_eq!(read_text(&report, "rows.csv"), "name,id\nx,0\ny,1\n");
    assert_eq!(read_text(&report, "new/rows.csv"), "id,name\n1,y\n");
    assert_eq!(read_text(&report, "events.json"), "{\"n\":1}\n{\"n\":1}\n");
}

#[tokio::test]
async fn delete_exists_move_and_copy() {
    let report = harness()
        .file("a.txt", "A")
        .file("gone.txt", "G")
        .flow(
            r"
steps:
  - { name: copy, file: { path: a.txt, mode: copy, to: copies/b.txt } }
  - { name: move, file: { path: a.txt, mode: move, to: moved/c.txt } }
  - { name: exists_old, file: { path: a.txt, mode: exists } }
  - { name: exists_new, file: { path: moved/c.txt, mode: exists } }
  - { name: delete, file: { path: gone.txt, mode: delete } }
  - { name: delete_again, file: { path: gone.txt, mode: delete } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("copy", json!({"path": "a.txt", "to": "copies/b.txt"}))
        .assert_data("move", json!({"path": "a.txt", "to": "moved/c.txt"}))
        .assert_data("exists_old", json!({"path": "a.txt", "exists": false}))
        .assert_data("exists_new", json!({"path": "moved/c.txt", "exists": true}))
        .assert_data("delete", json!({"path": "gone.txt", "deleted": true}))
        .assert_data(
            "delete_again",
            json!({"path": "gone.txt", "deleted": false}),
        );
    assert_eq!(read_text(&report, "copies/b.txt"), "A");
    assert_eq!(read_text(&report, "moved/c.txt"), "A");
    assert!(!report.data_dir().join("gone.txt").exists());
    assert_eq!(names(&report.data_dir().join("copies")), ["b.txt"]);
}

#[tokio::test]
async fn moving_a_missing_file_fails() {
    let report = harness()
        .flow("steps: [{name: a, file: {path: x.txt, mode: move, to: y.txt}}]")
        .run()
        .await;
    assert_failed(&report, "a", "file `x.txt` does not exist");
}

#[tokio::test]
async fn jq_expression_shapes_a_read() {
    harness()
        .file(
            "issues.json",
            r#"{"issues": [{"key": "A-1"}, {"key": "A-2"}]}"#,
        )
        .flow(
            r#"
steps:
  - name: keys
    file: { path: issues.json }
    jq_expression: "[.issues[].key]"
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("keys", json!(["A-1", "A-2"]));
}

#[tokio::test]
async fn escapes_are_refused_when_loading() {
    let outside = tempfile::tempdir().expect("temporary directory");
    let target = outside.path().join("target.txt");
    fs::write(&target, "untouched").expect("target file");
    let h = harness();
    std::os::unix::fs::symlink(&target, h.data_dir().join("link.txt")).expect("symlink");
    let yaml = format!(
        r"
steps:
  - {{ name: up, file: {{ path: ../x.json }} }}
  - {{ name: abs, file: {{ path: /etc/passwd }} }}
  - {{ name: link, file: {{ path: link.txt, mode: write, data_key: . }} }}
  - {{ name: to, file: {{ path: a.txt, mode: copy, to: {} }} }}
",
        target.display()
    );
    let errors = h.flow(&yaml).load().expect_err("escapes are load errors");
    let target = target.display();
    assert_eq!(
        errors,
        [
            "flow.yml:3:31: steps[0].file.path: path `../x.json` is outside the data directory and the allowed roots".to_owned(),
            "flow.yml:4:32: steps[1].file.path: path `/etc/passwd` is outside the data directory and the allowed roots".to_owned(),
            "flow.yml:5:33: steps[2].file.path: path `link.txt` is outside the data directory and the allowed roots".to_owned(),
            format!("flow.yml:6:54: steps[3].file.to: path `{target}` is outside the data directory and the allowed roots"),
        ]
    );
}

#[tokio::test]
async fn escapes_are_refused_at_run_time_and_nothing_is_touched() {
    let outside = tempfile::NamedTempFile::new().expect("file beside the data directory");
    fs::write(outside.path(), "untouched").expect("target file");
    let name = outside
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let h = harness();
    std::os::unix::fs::symlink(outside.path(), h.data_dir().join("link.txt")).expect("symlink");
    let report = h
        .file("a.txt", "A")
        .input(json!({"up": format!("../{name}"), "abs": outside.path(), "link": "link.txt"}))
        .flow(
            r#"
steps:
  - name: up
    file: { path: "{{ __input__.up }}", mode: write, data_key: __input__ }
    ignore_errors: [outside]
  - name: abs
    file: { path: "{{ __input__.abs }}", mode: delete }
    ignore_errors: [outside]
  - name: link
    file: { path: "{{ __input__.link }}", mode: append, data_key: __input__ }
    ignore_errors: [outside]
  - name: to
    file: { path: a.txt, mode: move, to: "{{ __input__.up }}" }
    ignore_errors: [outside]
"#,
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let abs = outside.path().display();
    for (step, shown) in [
        ("up", format!("../{name}")),
        ("abs", abs.to_string()),
        ("link", "link.txt".to_owned()),
        ("to", format!("../{name}")),
    ] {
        report.assert_step(step, StepStatus::Ignored);
        assert_eq!(
            report.step(step).error.clone().unwrap_or_default(),
            format!("path `{shown}` is outside the data directory and the allowed roots")
        );
    }
    assert_eq!(
        fs::read_to_string(outside.path()).expect("target"),
        "untouched"
    );
    assert_eq!(read_text(&report, "a.txt"), "A");
}

#[test]
fn settings_problems_are_load_errors() {
    assert_eq!(
        load_errors("steps: [{name: a, file: {pth: a.json}}]"),
        ["flow.yml:1:26: steps[0].file.pth: unknown field `pth`; did you mean `path`?"]
    );
    assert_eq!(
        load_errors("steps: [{name: a, file: {path: a.json, mode: wrte}}]"),
        ["flow.yml:1:46: steps[0].file.mode: unknown variant `wrte`; did you mean `write`?"]
    );
    assert_eq!(
        load_errors("steps: [{name: a, file: {path: a.json, format: toml}}]"),
        [
            "flow.yml:1:48: steps[0].file.format: unknown variant `toml`; expected one of `json`, `yaml`, `text`, `csv`, `lines`, `binary`, `xml`"
        ]
    );
    assert_eq!(
        load_errors("steps: [{name: a, file: {path: a.xml, mode: write, format: xml}}]"),
        ["flow.yml:1:60: steps[0].file.format: `xml` is only read; write the document as `text`"]
    );
    assert_eq!(
        load_errors("steps: [{name: a, file: {path: a.json, format: json, type: json}}]"),
        [
            "flow.yml:1:60: steps[0].file.type: `type` is the spooler's name for `format`; give only one of them"
        ]
    );
    assert_eq!(
        load_errors("steps: [{name: a, file: {path: a.json, mode: move}}]"),
        ["flow.yml:1:46: steps[0].file.mode: mode `move` needs a target; set `to`"]
    );
    assert_eq!(
        load_errors("steps: [{name: a, file: {path: a.json, to: b.json}}]"),
        ["flow.yml:1:44: steps[0].file.to: `to` is only for modes `move` and `copy`, not `read`"]
    );
}

/// A flow in the spooler service's own format (seed 002) runs unchanged.
#[tokio::test]
async fn a_spooler_flow_runs_unchanged() {
    let report = harness()
        .file(
            "input/issues.json",
            r#"{"issues": [
                {"key": "OPS-1", "status": "open", "summary": "disk full"},
                {"key": "OPS-2", "status": "closed", "summary": "old"},
                {"key": "OPS-3", "status": "open", "summary": "slow API"}
            ]}"#,
        )
        .file(
            "templates/report.j2",
            "{\"title\": \"{{ title }}\", \"count\": {{ issues | length }}, \"keys\": [{% for i in issues %}\"{{ i.key }}\"{% if not loop.last %}, {% endif %}{% endfor %}]}\n",
        )
        .flow(
            r#"
name: spooler
steps:
  - name: load_issues
    type: file
    file:
      path: input/issues.json
      type: json
    result_key: raw
  - name: open_issues
    type: jq
    jq:
      expression: '{title: "Open issues", issues: [.issues[] | select(.status == "open")]}'
      data_key: raw
    result_key: open
  - name: render
    type: jinja
    jinja:
      path: report.j2
      data_key: open
      parse: json
    result_key: report
  - name: save
    type: file
    file:
      path: output/report.json
      mode: write
      type: json
      data_key: report
    when:
      - report.count > 0
      - "{{ open.title == 'Open issues' }}"
    result_key: saved
  - name: save_all
    type: file
    file:
      path: output/data.json
      mode: write
      data_key: "."
    jq_expression: .bytes > 0
    result_key: all_saved
  - name: never
    type: file
    file:
      path: output/never.json
      mode: write
      data_key: report
    when: report.count > 10
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("never", StepStatus::Skipped)
        .assert_data("all_saved", json!(true))
        .assert_data(
            "report",
            json!({"title": "Open issues", "count": 2, "keys": ["OPS-1", "OPS-3"]}),
        );
    let written: Value =
        serde_json::from_str(&read_text(&report, "output/report.json")).expect("json");
    assert_eq!(
        written,
        json!({"title": "Open issues", "count": 2, "keys": ["OPS-1", "OPS-3"]})
    );
    let all: Value = serde_json::from_str(&read_text(&report, "output/data.json")).expect("json");
    assert_eq!(
        all["saved"],
        json!({"path": "output/report.json", "bytes": read_text(&report, "output/report.json").len()})
    );
    assert_eq!(all["open"]["issues"][1]["key"], json!("OPS-3"));
    assert!(!report.data_dir().join("output/never.json").exists());
}
