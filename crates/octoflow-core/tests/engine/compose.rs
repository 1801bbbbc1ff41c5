//! Composition: sub-flows, loops over sub-flows, branches, jumps and waits.

use std::time::Duration;

use octoflow_core::store::{RunStatus, StepStatus};
use octoflow_testkit::harness::Harness;
use serde_json::json;

use crate::kinds::{counter, registry};

const CHILD: &str = r"
steps:
  - name: greet
    echo: { value: 'hello {{ who }} #{{ __loop_index__ | default(0) }}' }
";

#[tokio::test]
async fn a_flow_step_runs_a_linked_child_run() {
    let report = Harness::new(registry(counter()))
        .child_flow("child", CHILD)
        .input(json!({"person": {"who": "ada"}}))
        .flow(
            r"
steps:
  - name: sub
    type: flow
    flow: { name: child, data_key: person }
  - name: by_path
    flow: { path: child.yml }
    data_key: person
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(report.run.data["sub"]["greet"], json!("hello ada #0"));
    assert_eq!(report.run.data["by_path"]["greet"], json!("hello ada #0"));
    assert_eq!(report.others.len(), 2);
    for child in &report.others {
        assert_eq!(child.parent_run_id, Some(report.run.id));
        assert_eq!(child.trigger.kind, "flow");
        assert_eq!(child.status, RunStatus::Succeeded);
    }
}

#[tokio::test]
async fn flow_loop_keeps_input_order_and_numbers_children_from_one() {
    let report = Harness::new(registry(counter()))
        .child_flow("child", CHILD)
        .input(json!({"people": [{"who": "a"}, {"who": "b"}, {"who": "c"}, {"who": "d"}]}))
        .flow(
            "steps: [{ name: all, flow_loop: { name: child, data_key: people, concurrency: 3 } }]",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let greetings: Vec<&str> = report.run.data["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["greet"].as_str().unwrap())
        .collect();
    assert_eq!(
        greetings,
        ["hello a #1", "hello b #2", "hello c #3", "hello d #4"]
    );
    assert_eq!(report.others.len(), 4);
}

#[tokio::test]
async fn a_failing_child_fails_the_step_unless_ignored() {
    let failing = "steps: [{ name: boom, fail: { message: 'bad item {{ __loop_index__ }}' } }]";
    let report = Harness::new(registry(counter()))
        .child_flow("bad", failing)
        .input(json!({"items": [1, 2]}))
        .flow(
            r"
steps:
  - { name: loop, flow_loop: { name: bad, data_key: items } }
  - { name: after, echo: { value: 1 } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("after", StepStatus::Skipped);
    let error = report.step("loop").error.clone().unwrap();
    assert!(
        error.starts_with("1 of 2 child runs failed: item 1: run "),
        "{error}"
    );
    assert!(error.ends_with("ended failed: bad item 1"), "{error}");

    Harness::new(registry(counter()))
        .child_flow("bad", failing)
        .input(json!({"items": [1]}))
        .flow("steps: [{ name: loop, flow_loop: { name: bad, data_key: items }, ignore_errors: ['bad item'] }]")
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_step("loop", StepStatus::Ignored);
}

#[tokio::test]
async fn flow_loop_needs_a_list() {
    let report = Harness::new(registry(counter()))
        .child_flow("child", CHILD)
        .input(json!({"one": {"who": "x"}}))
        .flow("steps: [{ name: loop, flow_loop: { name: child, data_key: one } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("loop").error.as_deref(),
        Some("`data_key` of a `flow_loop` must name a list; `one` is an object")
    );
}

#[tokio::test]
async fn cancelling_the_parent_cancels_the_children() {
    let report = Harness::new(registry(counter()))
        .child_flow("slow", "steps: [{ name: nap, nap: { ms: 60000 } }]")
        .input(json!({"items": [1, 2]}))
        .cancel_after(Duration::from_millis(300))
        .flow("steps: [{ name: loop, flow_loop: { name: slow, data_key: items, concurrency: 2 } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Cancelled);
    assert_eq!(report.others.len(), 2);
    assert!(
        report
            .others
            .iter()
            .all(|r| r.status == RunStatus::Cancelled),
        "{:#?}",
        report.others
    );
}

#[tokio::test]
async fn a_flow_that_calls_itself_stops_at_the_nesting_limit() {
    let report = Harness::new(registry(counter()))
        .child_flow("again", "steps: [{ name: deeper, flow: { name: again } }]")
        .flow("steps: [{ name: start, flow: { name: again } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert!(
        report
            .run
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("ended failed"),
        "{:?}",
        report.run.error
    );
    assert!(report.others.iter().any(|r| {
        r.error
            .as_ref()
            .is_some_and(|e| e.message.contains("nest more than 16 deep"))
    }));
}

#[tokio::test]
async fn switch_runs_the_first_matching_case() {
    Harness::new(registry(counter()))
        .param("env", json!("prd-eu"))
        .flow(
            r"
params:
  env: { type: string }
steps:
  - name: pick
    switch:
      value: params.env
      cases:
        - { when: '^qas', step: { echo: { value: test } } }
        - { when: '^prd', step: { echo: { value: 'production {{ params.env }}' } } }
        - { when: '.*', step: { echo: { value: other } } }
",
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("pick", json!("production prd-eu"));
}

#[tokio::test]
async fn switch_problems_are_found_at_load_time() {
    let problems = Harness::new(registry(counter()))
        .flow("steps: [{ name: s, switch: { value: x, cases: [{ when: '(', step: { ehco: {} } }] } }]")
        .load()
        .unwrap_err();
    let text = problems.join("\n");
    assert!(
        text.contains("steps[0].switch.cases[0].when: invalid regex"),
        "{text}"
    );
    assert!(text.contains("steps[0].switch.cases[0].step"), "{text}");
}

#[tokio::test]
async fn goto_loops_until_a_condition_and_on_error_goto_recovers() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - name: count
    echo: { value: '{{ (count | default(0)) + 1 }}' }
  - name: again
    goto: { step_name: count }
    when: count < 3
  - name: risky
    fail: { message: nope }
    on_error_goto: recover
  - name: skipped_over
    echo: { value: never }
  - name: recover
    echo: { value: 'recovered from {{ __errors__[0].error }}' }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("count", json!(3))
        .assert_data("recover", json!("recovered from nope"))
        .assert_step("skipped_over", StepStatus::Skipped);
}

#[tokio::test]
async fn goto_beyond_max_jumps_fails_the_run() {
    let report = Harness::new(registry(counter()))
        .flow("max_jumps: 5\nsteps:\n  - { name: a, echo: { value: 1 } }\n  - { name: b, goto: { step_name: a } }\n")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert!(
        report
            .run
            .error
            .as_ref()
            .unwrap()
            .message
            .starts_with("more than 5 jumps"),
        "{:?}",
        report.run.error
    );
}

#[tokio::test]
async fn goto_end_finishes_successfully() {
    Harness::new(registry(counter()))
        .flow("steps:\n  - { name: a, goto: { step_name: __end__ } }\n  - { name: b, echo: { value: 1 } }\n")
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_step("b", StepStatus::Skipped);
}

#[tokio::test]
async fn wait_for_a_file_that_appears() {
    let harness = Harness::new(registry(counter()));
    let target = harness.data_dir().join("incoming/ready.json");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::fs::create_dir_all(target.parent().unwrap())
            .await
            .unwrap();
        tokio::fs::write(&target, "{}").await.unwrap();
    });
    let report = harness
        .flow("steps: [{ name: w, wait: { file: { path: incoming/ready.json, interval: 50ms, timeout: 10s } } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    assert!(report.run.data["w"]["waited_ms"].as_u64().unwrap() >= 250);
}

#[tokio::test]
async fn wait_times_out_naming_what_it_waited_for() {
    let report = Harness::new(registry(counter()))
        .flow("steps: [{ name: w, wait: { file: { path: never.json, interval: 50ms, timeout: 200ms } } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("w").error.as_deref(),
        Some("waited 200ms for file `never.json`; it did not happen")
    );
}

#[tokio::test]
async fn wait_gives_up_after_its_checks_taken_from_params() {
    let flow = r#"
params:
  interval: { default: 50ms }
  checks: { type: integer, default: 3 }
steps:
  - name: w
    wait:
      file: { path: never.json, interval: "{{ params.interval }}", checks: "{{ params.checks }}" }
"#;
    let started = std::time::Instant::now();
    let report = Harness::new(registry(counter())).flow(flow).run().await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("w").error.as_deref(),
        Some("waited 100ms (3 checks, every 50ms) for file `never.json`; it did not happen")
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    let report = Harness::new(registry(counter()))
        .flow("steps: [{ name: w, wait: { until: 'false', interval: 10ms, checks: 1 } }]")
        .run()
        .await;
    assert_eq!(
        report.step("w").error.as_deref(),
        Some("waited 0s (1 check, every 10ms) for `false` to hold; it did not happen")
    );
    let problems = Harness::new(registry(counter()))
        .flow("steps: [{ name: w, wait: { file: { path: a.json, checks: 0 } } }]")
        .load()
        .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("steps[0].wait.file.checks"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn wait_until_an_expression_holds_and_is_cancellable() {
    Harness::new(registry(counter()))
        .flow("steps: [{ name: w, wait: { until: 'now() > \"2000\"', interval: 10ms } }]")
        .run()
        .await
        .assert_status(RunStatus::Succeeded);
    Harness::new(registry(counter()))
        .cancel_after(Duration::from_millis(200))
        .flow("steps: [{ name: w, wait: { until: 'false', interval: 10ms } }]")
        .run()
        .await
        .assert_status(RunStatus::Cancelled)
        .assert_step("w", StepStatus::Cancelled);
}

#[test]
fn jumps_and_depends_do_not_mix() {
    let problems = Harness::new(registry(counter()))
        .flow("steps:\n  - { name: a, echo: { value: 1 }, depends: [] }\n  - { name: b, goto: { step_name: a } }\n")
        .load()
        .unwrap_err();
    assert_eq!(
        problems,
        ["flow.yml:3:5: steps[1]: step `b` jumps, which a flow that uses `depends` cannot do"]
    );
}

#[tokio::test]
async fn state_is_written_together_and_seen_by_later_steps() {
    Harness::new(registry(counter()))
        .flow(
            r#"
steps:
  - name: before
    state: { get: cursor, default: { key: 0 } }
  - name: save
    state: { set: { cursor: '{{ {"key": before.key + 5} }}', seen: 'yes' } }
  - name: after
    echo: { value: '{{ state.cursor.key }}/{{ state.seen }}' }
  - name: again
    state: { get: cursor }
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("before", json!({"key": 0}))
        .assert_data("after", json!("5/yes"))
        .assert_data("again", json!({"key": 5}));
}

#[tokio::test]
async fn a_secret_written_to_state_is_kept_masked() {
    let report = Harness::new(registry(counter()))
        .secrets("- { name: api, type: token, token: tok-1234-secret }\n")
        .flow(
            r"
steps:
  - name: save
    state: { set: { header: 'Bearer {{ secrets.api.token }}', encoded: '{{ secrets.api.token | b64encode }}' } }
  - name: again
    state: { get: header }
  - name: encoded
    state: { get: encoded }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("again", json!("Bearer ***"))
        .assert_data("encoded", json!("***"));
    assert_eq!(
        serde_json::Value::Object(report.state.clone()),
        json!({"header": "Bearer ***", "encoded": "***"}),
        "the store keeps the masked values"
    );
}
