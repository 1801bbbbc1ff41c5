//! `octoflow validate`: every problem of every file, one line each, as
//! `file:line:column: path: message`; exit 1 when any.

use insta::assert_snapshot;

use crate::{octo, recorded_runs};

/// Validates one bad flow: exit 1, one problem line naming the file and place; `run` of
/// the same flow is a usage error that records nothing. Returns the problem line.
#[track_caller]
fn one_problem(name: &str, yaml: &str) -> String {
    let o = octo().flow(name, yaml);
    let file = format!("data/flows/{name}.yml");
    let out = o.clone().args(["validate", &file]).run();
    out.failure().stderr_contains("1 problem in 1 of 1 flow");
    let lines: Vec<&str> = out.stdout().lines().collect();
    assert_eq!(lines.len(), 1, "one line per problem:\n{}", out.stdout());
    assert!(lines[0].starts_with(&format!("{file}:")), "{}", lines[0]);

    let run = o.clone().args(["run", name]).run();
    run.code(2);
    assert_eq!(run.stderr(), format!("error: {}\n", lines[0]));
    assert!(
        recorded_runs(&o).is_empty(),
        "no run is recorded for an invalid flow"
    );
    lines[0].to_owned()
}

#[test]
fn malformed_yaml() {
    let line = one_problem(
        "malformed",
        "steps:\n  - name: a\n    exec: {command: [echo, \"open}\n",
    );
    assert_snapshot!(line, @"data/flows/malformed.yml:3:28: invalid YAML: unclosed quote");
}

#[test]
fn wrong_type() {
    let line = one_problem(
        "wrong_type",
        "max_parallel: many\nsteps:\n  - name: a\n    set_fact: {value: 1}\n",
    );
    assert_snapshot!(line);
}

#[test]
fn unknown_kind() {
    let line = one_problem("unknown_kind", "steps:\n  - name: a\n    type: exce\n");
    assert_snapshot!(line);
}

#[test]
fn unknown_field_with_suggestion() {
    let line = one_problem(
        "unknown_field",
        "steps:\n  - name: a\n    set_fact: {value: 1}\n    reslt_key: x\n",
    );
    assert_snapshot!(line);
}

#[test]
fn bad_duration() {
    let line = one_problem(
        "bad_duration",
        "steps:\n  - name: a\n    exec:\n      command: [sleep, \"1\"]\n      timeout: 10 minutes\n",
    );
    assert_snapshot!(line);
}

#[test]
fn bad_cron() {
    let line = one_problem(
        "bad_cron",
        "schedule:\n  cron: \"61 * * * *\"\nsteps:\n  - name: a\n    set_fact: {value: 1}\n",
    );
    assert_snapshot!(line);
}

#[test]
fn every_seconds_past_a_hundred_years() {
    let line = one_problem(
        "every_age",
        "schedule: { every_seconds: 3153600001 }\nsteps:\n  - name: a\n    set_fact: {value: 1}\n",
    );
    assert_snapshot!(line, @"data/flows/every_age.yml:1:28: schedule.every_seconds: must be at most 3153600000 (100 years)");
}

#[test]
fn a_hook_wait_timeout_past_a_hundred_years() {
    let line = one_problem(
        "wait_age",
        "triggers:\n  - webhook: { path: slow, wait: true, wait_timeout: 36501d }\nsteps:\n  - name: a\n    set_fact: {value: 1}\n",
    );
    assert_snapshot!(line, @"data/flows/wait_age.yml:2:54: triggers[0].webhook.wait_timeout: invalid duration `36501d`; at most 36500d (100 years)");
}

#[test]
fn cycle() {
    let line = one_problem(
        "cycle",
        "steps:\n  - name: a\n    depends: [b]\n    set_fact: {value: 1}\n  - name: b\n    depends: [a]\n    set_fact: {value: 2}\n",
    );
    assert_snapshot!(line);
}

#[test]
fn unknown_depends() {
    let line = one_problem(
        "unknown_depends",
        "steps:\n  - name: render\n    set_fact: {value: 1}\n  - name: launch\n    depends: [rendr]\n    set_fact: {value: 2}\n",
    );
    assert_snapshot!(line);
}

#[test]
fn missing_template() {
    let line = one_problem(
        "missing_template",
        "steps:\n  - name: render\n    jinja: {path: missing.j2}\n",
    );
    assert_snapshot!(line);
}

#[test]
fn every_problem_of_every_file_is_printed() {
    let o = octo()
        .flow("good", "steps: [{name: a, set_fact: {value: 1}}]")
        .flow("two", "steps:\n  - name: a\n    depends: [zz]\n    set_fact: {value: 1}\n  - name: b\n    timeout: soon\n    set_fact: {value: 1}\n")
        .file("data/flows/sub/deep.yaml", "steps:\n  - name: x\n    set_fact: {value: 1}\n    when_: true\n")
        .file("data/flows/notes.txt", "not a flow");
    let out = o.clone().args(["validate"]).run();
    out.failure();
    assert_snapshot!(out.stdout(), @r"
    data/flows/sub/deep.yaml:4:5: steps[0].when_: unknown field `when_` in step `x`; did you mean `when`?
    data/flows/two.yml:3:15: steps[0].depends[0]: step `a` depends on unknown step `zz`
    data/flows/two.yml:6:14: steps[1].timeout: invalid duration `soon`; use 500ms, 30s, 5m, 2h or 1d
    ");
    assert_eq!(out.stderr(), "3 problems in 2 of 3 flows\n");
}

#[test]
fn good_flows_pass() {
    let o = octo()
        .flow("a", "steps: [{name: a, set_fact: {value: 1}}]")
        .flow("b", "steps: [{name: b, exec: {command: [\"true\"]}}]");
    let out = o.clone().args(["validate"]).run();
    out.success().stdout_is("");
    assert_eq!(out.stderr(), "2 flows ok\n");
    o.clone()
        .args(["validate", "data/flows/a.yml"])
        .run()
        .success();
    assert_eq!(
        o.clone()
            .args(["validate", "data/flows/a.yml"])
            .run()
            .stderr(),
        "1 flow ok\n"
    );
}

#[test]
fn flow_names_are_unique() {
    let o = octo()
        .flow("a", "steps: [{name: a, set_fact: {value: 1}}]")
        .flow("b", "name: a\nsteps: [{name: a, set_fact: {value: 1}}]");
    let out = o.args(["validate"]).run();
    out.failure();
    assert_snapshot!(out.stdout(), @"data/flows/b.yml:1:7: name: flow name `a` is already used by `data/flows/a.yml`");
}

#[test]
fn missing_paths_are_usage_errors() {
    octo()
        .args(["validate", "nope.yml"])
        .run()
        .code(2)
        .stderr_contains("error: `nope.yml` does not exist");
    let o = octo();
    std::fs::remove_dir_all(o.path("data")).unwrap();
    o.args(["validate"])
        .run()
        .code(2)
        .stderr_contains("error: the flows directory `data/flows` does not exist");
}
