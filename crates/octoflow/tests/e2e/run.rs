//! `octoflow run`: outcomes and exit codes, params, input, JSON output, dry runs, and the
//! rule that nothing is recorded when the flow or its params are wrong.

use insta::assert_snapshot;
use serde_json::json;

use crate::{octo, recorded_runs, step_runs};

const PARAMS_FLOW: &str = r#"
params:
  env:   { type: string, enum: [qas, prd], default: qas }
  batch: { type: integer, default: 10, minimum: 1 }
steps:
  - name: show
    set_fact:
      value: "{{ params.env }}-{{ params.batch }}"
"#;

#[test]
fn a_run_that_succeeds_prints_a_line_per_step_and_exits_0() {
    let o = octo().flow(
        "build",
        r#"
steps:
  - name: build
    exec: { command: [echo, built] }
  - name: skipped
    when: "false"
    set_fact: { value: 1 }
  - name: tail
    set_fact: { value: "{{ build.stdout | trim }}" }
"#,
    );
    let out = o.clone().args(["run", "build"]).run();
    out.success()
        .stdout_is("")
        .stderr_contains("step build succeeded (")
        .stderr_contains("step skipped skipped: `when` is false: false")
        .stderr_contains(" succeeded in ");
    let runs = recorded_runs(&o);
    assert!(
        out.stderr()
            .starts_with(&format!("run {} of flow `build` started\n", runs[0].id))
    );
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status.as_str(), "succeeded");
    assert_eq!(runs[0].data["tail"], json!("built"));
    assert!(
        out.stderr()
            .contains(&format!("run {} succeeded in ", runs[0].id))
    );
}

#[test]
fn a_failed_step_fails_the_run_with_exit_1_and_names_the_error() {
    let o = octo().flow(
        "broken",
        r#"
steps:
  - name: x
    exec: { command: [sh, -c, "echo boom >&2; exit 3"] }
  - name: after
    set_fact: { value: 1 }
"#,
    );
    let out = o.clone().args(["run", "broken"]).run();
    out.failure()
        .stderr_contains("step x failed (")
        .stderr_contains("): exit code 3: boom")
        .stderr_contains("step after skipped: an earlier step did not succeed")
        .stderr_contains(" failed in ")
        .stderr_contains(": step `x`: exit code 3: boom");
    let runs = recorded_runs(&o);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status.as_str(), "failed");
}

#[test]
fn json_prints_the_run_record_with_its_steps_and_nothing_else() {
    let o = octo().flow("p", PARAMS_FLOW);
    let run = o
        .clone()
        .args(["run", "p", "--json", "-p", "env=prd", "-p", "batch=50"])
        .run();
    run.success();
    let value = run.json();
    assert_eq!(value["flow"], "p");
    assert_eq!(value["status"], "succeeded");
    assert_eq!(value["params"], json!({"env": "prd", "batch": 50}));
    assert_eq!(value["trigger"]["kind"], "manual");
    assert_eq!(value["data"]["show"], "prd-50");
    assert!(
        value["node"].as_str().is_some_and(|n| n.contains(':')),
        "node is host:pid"
    );
    let steps = value["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["step"], "show");
    assert_eq!(steps[0]["status"], "succeeded");
    assert_eq!(steps[0]["result"], "prd-50");
    assert_eq!(
        recorded_runs(&o)[0].id.to_string(),
        value["id"].as_str().unwrap()
    );
}

#[test]
fn quiet_prints_nothing_but_errors() {
    let o = octo().flow("p", PARAMS_FLOW);
    o.clone()
        .args(["run", "p", "-q"])
        .run()
        .success()
        .stdout_is("");
    let out = o.args(["run", "p", "--quiet"]).run();
    assert_eq!(out.stderr(), "");
}

#[test]
fn an_undeclared_param_is_a_usage_error_and_records_nothing() {
    let o = octo().flow("p", PARAMS_FLOW);
    let out = o.clone().args(["run", "p", "-p", "envv=prd"]).run();
    out.code(2);
    assert_snapshot!(out.stderr(), @"error: param `envv`: is not declared by the flow; did you mean `env`?");
    assert!(recorded_runs(&o).is_empty());
}

#[test]
fn every_bad_param_is_reported_at_once() {
    let o = octo().flow("p", PARAMS_FLOW);
    let out = o
        .clone()
        .args(["run", "p", "-p", "env=dev", "-p", "batch=0", "-p", "x=1"])
        .run();
    out.code(2);
    assert_snapshot!(out.stderr(), @r#"
    error: param `x`: is not declared by the flow (declared: env, batch)
    error: param `env`: `"dev"` is not one of "qas", "prd"
    error: param `batch`: 0 is less than the minimum 1
    "#);
    let out = o.clone().args(["run", "p", "-p", "batch=ten"]).run();
    out.code(2)
        .stderr_contains("error: param `batch`: `ten` is not a valid integer");
    assert!(recorded_runs(&o).is_empty());
}

#[test]
fn an_invalid_flow_is_a_usage_error_with_every_problem_and_records_nothing() {
    let o = octo().flow(
        "bad",
        "steps:\n  - name: a\n    depends: [z]\n    set_fact: {value: 1}\n  - name: b\n    reslt_key: x\n    set_fact: {value: 2}\n",
    );
    let out = o.clone().args(["run", "bad"]).run();
    out.code(2);
    assert_snapshot!(out.stderr(), @r"
    error: data/flows/bad.yml:3:15: steps[0].depends[0]: step `a` depends on unknown step `z`
    error: data/flows/bad.yml:6:5: steps[1].reslt_key: unknown field `reslt_key` in step `b`; did you mean `result_key`?
    ");
    assert!(recorded_runs(&o).is_empty());
}

#[test]
fn a_flow_is_found_by_path_by_file_stem_or_by_name() {
    let flow = "name: named\nsteps: [{name: a, set_fact: {value: 1}}]";
    let o = octo()
        .flow("file-stem", flow)
        .file("loose/other.yaml", flow);
    o.clone().args(["run", "file-stem"]).run().success();
    o.clone().args(["run", "named"]).run().success();
    o.clone().args(["run", "loose/other.yaml"]).run().success();
    o.clone()
        .args(["run", "nmed"])
        .run()
        .code(2)
        .stderr_contains("error: flow `nmed` not found in `data/flows`; did you mean `named`?");
    o.clone()
        .args(["run", "loose/missing.yml"])
        .run()
        .code(2)
        .stderr_contains("error: flow file `loose/missing.yml` does not exist");
    assert_eq!(recorded_runs(&o).len(), 3);
}

#[test]
fn a_data_file_is_the_runs_input() {
    let flow = r#"
steps:
  - name: total
    jq: { expression: '[.__input__.items[] | .n] | add' }
  - name: first
    set_fact: { value: "{{ items[0].n }}" }
"#;
    let o = octo()
        .flow("sum", flow)
        .file("in.json", r#"{"items": [{"n": 1}, {"n": 2}]}"#)
        .file("in.yml", "items:\n  - n: 5\n  - n: 6\n");
    let value = o
        .clone()
        .args(["run", "sum", "--json", "--data-file", "in.json"])
        .run()
        .json();
    assert_eq!(value["data"]["total"], 3);
    assert_eq!(value["data"]["first"], 1);
    let value = o
        .clone()
        .args(["run", "sum", "--json", "--data-file", "in.yml"])
        .run()
        .json();
    assert_eq!(value["data"]["total"], 11);
    let value = o
        .clone()
        .stdin(r#"{"items": [{"n": 7}]}"#)
        .args(["run", "sum", "--json", "--data-file", "-"])
        .run()
        .json();
    assert_eq!(value["data"]["total"], 7);
    o.clone()
        .file("bad.json", "{\"items\": [1,]}")
        .args(["run", "sum", "--data-file", "bad.json"])
        .run()
        .code(2)
        .stderr_contains("error: bad.json:1:14: invalid JSON: ");
}

#[test]
fn a_dry_run_renders_settings_runs_nothing_and_records_nothing() {
    let flow = r#"
params:
  env: { type: string, default: qas }
steps:
  - name: deploy
    exec: { command: [echo, "deploying to {{ params.env }}"] }
  - name: only_prd
    when: params.env == "prd"
    file: { path: "out/{{ params.env }}.txt", mode: write, data_key: deploy }
"#;
    let o = octo().flow("deploy", flow);
    let out = o
        .clone()
        .args(["run", "deploy", "--dry-run", "-p", "env=qas"])
        .run();
    out.success();
    assert_snapshot!(out.stdout(), @r#"
    dry run of flow `deploy`; nothing runs, nothing is recorded
    params: {"env":"qas"}

    step deploy (exec)
      command:
      - echo
      - deploying to qas

    step only_prd (file) — skipped by `when`
      path: out/qas.txt
      mode: write
      data_key: deploy
    "#);
    let value = o
        .clone()
        .args(["run", "deploy", "--dry-run", "--json"])
        .run()
        .json();
    assert_eq!(value["steps"][1]["skipped"], true);
    assert_eq!(
        value["steps"][0]["settings"]["command"][1],
        "deploying to qas"
    );
    assert!(recorded_runs(&o).is_empty());
    assert!(!o.path("data/out").exists());
}

#[test]
fn sigterm_cancels_the_run_gracefully() {
    let o = octo().flow(
        "slow",
        "steps:\n  - name: wait\n    exec: { command: [sleep, \"30\"] }\n  - name: never\n    set_fact: { value: 1 }\n",
    );
    let slow = crate::start(&o.clone().args(["run", "slow"]));
    crate::recover::wait_for_running(&o, 1);
    nix_kill(slow.id(), nix::sys::signal::Signal::SIGTERM);
    let (out, stderr) = slow.wait();
    out.failure();
    assert!(stderr.contains("step wait cancelled ("), "{stderr}");
    assert!(stderr.contains(" cancelled in "), "{stderr}");
    let runs = recorded_runs(&o);
    assert_eq!(runs[0].status.as_str(), "cancelled");
    let steps = step_runs(&o, &runs[0]);
    let statuses: Vec<_> = steps
        .iter()
        .map(|s| (s.step.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(statuses, [("wait", "cancelled"), ("never", "skipped")]);
}

/// Sends a signal to a process.
pub(crate) fn nix_kill(pid: u32, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

#[test]
fn secrets_reach_templates_and_are_redacted_everywhere() {
    let o = octo()
        .file("data/secrets.yml", "- { name: api, type: token, token: s3cr3t-value }\n")
        .flow(
            "secret",
            "steps:\n  - name: call\n    exec: { command: [echo, \"token={{ secrets.api.token }}\"] }\n",
        );
    let run = o.clone().args(["run", "secret", "--json"]).run();
    run.success();
    assert!(!run.stdout().contains("s3cr3t-value"), "{}", run.stdout());
    assert_eq!(run.json()["data"]["call"]["stdout"], "token=***\n");
    let dry = o.clone().args(["run", "secret", "--dry-run"]).run();
    dry.success().stdout_contains("token=***");
    assert!(!dry.stdout().contains("s3cr3t-value"));
    o.clone()
        .file(
            "data/secrets.yml",
            "- { name: db, type: env, env: OCTO_TEST_UNSET }\n",
        )
        .args(["run", "secret"])
        .run()
        .code(2)
        .stderr_contains(
            "error: secret `db` reads environment variable `OCTO_TEST_UNSET`, which is not set",
        );
}

#[test]
fn a_tracker_document_is_kept_when_tracker_dir_is_set() {
    let o = octo()
        .file("data/config.yml", "tracker_dir: trackers\n")
        .flow("t", "steps:\n  - name: fetch\n    set_fact: { value: 1 }\n  - name: convert\n    set_fact: { value: 2 }\n");
    let value = o
        .clone()
        .args(["run", "t", "--json"])
        .run()
        .success()
        .json();
    let id = value["id"].as_str().unwrap();
    let text = std::fs::read_to_string(o.path(&format!("data/trackers/{id}.json"))).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["job_ticket_id"], id);
    assert_eq!(doc["job_name"], "t");
    assert_eq!(
        doc["job_management"],
        json!({"current_step": 2, "steps": {"1": "fetch", "2": "convert"},
               "job_status": "succeeded", "previous_step_status": "succeeded"})
    );
    assert_eq!(doc["context"]["convert"], 2);
}

#[test]
fn a_flow_step_runs_another_flow_of_the_flows_dir() {
    let o = octo()
        .flow("child", "steps:\n  - name: double\n    jq: { expression: '.__input__.n * 2' }\n")
        .flow(
            "parent",
            "steps:\n  - name: call\n    flow: { name: child, data_key: payload }\n    result_key: out\n",
        )
        .file("in.json", r#"{"payload": {"n": 21}}"#);
    let value = o
        .clone()
        .args(["run", "parent", "--json", "--data-file", "in.json"])
        .run()
        .success()
        .json();
    assert_eq!(value["data"]["out"]["double"], 42);
    assert_eq!(recorded_runs(&o).len(), 2, "the child is its own run");
}
