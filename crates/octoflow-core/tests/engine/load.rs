//! Load-time problems: every one reported, each with its place.

use octoflow_testkit::harness::Harness;

use crate::kinds::{counter, registry};

#[track_caller]
fn problems(yaml: &str) -> Vec<String> {
    Harness::new(registry(counter()))
        .flow(yaml)
        .load()
        .expect_err("flow should not load")
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let got = problems(
        "name: demo\nsteps:\n  - name: a\n    echo: { value: 1 }\n    reslt_key: x\n  - name: b\n    ech: { value: 2 }\n  - name: c\n    echo: { value: 3 }\n    timeout: 10 minutes\n",
    );
    assert_eq!(
        got,
        [
            "flow.yml:5:5: steps[0].reslt_key: unknown field `reslt_key` in step `a`; did you mean `result_key`?",
            "flow.yml:6:5: steps[1]: step `b` needs a `type` or a kind block such as `exec:`",
            "flow.yml:7:5: steps[1].ech: unknown field `ech` in step `b`; did you mean `echo`?",
            "flow.yml:10:14: steps[2].timeout: invalid duration `10 minutes`; use 500ms, 30s, 5m, 2h or 1d",
        ]
    );
}

#[test]
fn unknown_kinds_cycles_and_unknown_depends() {
    let got = problems(
        "steps:\n  - { name: a, type: ecko, ecko: {} }\n  - { name: b, echo: { value: 1 }, depends: [c] }\n  - { name: c, echo: { value: 1 }, depends: [b] }\n  - { name: d, echo: { value: 1 }, depends: [zz] }\n",
    );
    assert!(
        got.iter()
            .any(|p| p.contains("steps[0].type: unknown step kind `ecko`; did you mean `echo`?")),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|p| p.contains("steps form a cycle: ")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|p| p.contains("step `d` depends on unknown step `zz`")),
        "{got:#?}"
    );
}

#[test]
fn malformed_yaml_names_line_and_column() {
    let got = problems("steps:\n  - name: a\n    echo: { value: 1\n");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("flow.yml:"), "{got:#?}");
    assert!(got[0].contains("invalid YAML"), "{got:#?}");
}

#[test]
fn wrong_types_and_bad_schedules() {
    let got = problems(
        "cron: '61 * * * *'\nmax_parallel: many\nparams:\n  n: { type: integer, default: x }\nsteps:\n  - { name: a, echo: { value: 1 }, result_key: params }\n",
    );
    let text = got.join("\n");
    assert!(
        text.contains("cron: invalid cron expression `61 * * * *`"),
        "{text}"
    );
    assert!(text.contains("max_parallel: invalid type"), "{text}");
    assert!(
        text.contains("params.n.default: `\"x\"` is not of type integer"),
        "{text}"
    );
    assert!(text.contains("`params` is a reserved name"), "{text}");
}
