//! Order, `depends`, concurrency bounds and skipping after failures.

use octoflow_core::store::{RunStatus, StepStatus};
use octoflow_testkit::harness::Harness;
use serde_json::json;

use crate::kinds::{counter, registry};

#[tokio::test]
async fn steps_run_in_file_order_and_see_earlier_results() {
    Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - name: a
    echo: { value: 2 }
  - name: b
    echo: { value: '{{ a * 10 }}' }
  - name: c
    echo: { value: 'a={{ data.a }} b={{ b }}' }
",
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("b", json!(20))
        .assert_data("c", json!("a=2 b=20"));
}

#[tokio::test]
async fn independent_steps_overlap() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - { name: left, nap: { ms: 300 }, depends: [] }
  - { name: right, nap: { ms: 300 }, depends: [] }
  - { name: join, echo: { value: done }, depends: [left, right] }
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let data = &report.run.data;
    let (l0, l1) = (
        data["left"]["start_ms"].as_u64().unwrap(),
        data["left"]["end_ms"].as_u64().unwrap(),
    );
    let (r0, r1) = (
        data["right"]["start_ms"].as_u64().unwrap(),
        data["right"]["end_ms"].as_u64().unwrap(),
    );
    assert!(
        l0 < r1 && r0 < l1,
        "left {l0}..{l1} and right {r0}..{r1} did not overlap"
    );
    let join = report.step("join");
    assert!(join.started_at >= report.step("left").finished_at.unwrap());
    assert!(join.started_at >= report.step("right").finished_at.unwrap());
}

#[tokio::test]
async fn max_parallel_bounds_concurrency() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
max_parallel: 1
steps:
  - { name: one, nap: { ms: 150 }, depends: [] }
  - { name: two, nap: { ms: 150 }, depends: [] }
",
        )
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let d = &report.run.data;
    let (a0, a1) = (
        d["one"]["start_ms"].as_u64().unwrap(),
        d["one"]["end_ms"].as_u64().unwrap(),
    );
    let (b0, b1) = (
        d["two"]["start_ms"].as_u64().unwrap(),
        d["two"]["end_ms"].as_u64().unwrap(),
    );
    assert!(
        a1 <= b0 || b1 <= a0,
        "steps overlapped with max_parallel: 1"
    );
}

#[tokio::test]
async fn a_failure_skips_dependents_but_not_independent_branches() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - { name: bad, fail: { message: boom }, depends: [] }
  - { name: after_bad, echo: { value: 1 } }
  - { name: other, echo: { value: 2 }, depends: [] }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("bad", StepStatus::Failed)
        .assert_step("after_bad", StepStatus::Skipped)
        .assert_step("other", StepStatus::Succeeded)
        .assert_data("other", json!(2));
    let error = report.run.error.as_ref().unwrap();
    assert_eq!(
        (error.step.as_deref(), error.message.as_str()),
        (Some("bad"), "boom")
    );
    assert_eq!(
        report.run.data["__errors__"],
        json!([{"step": "bad", "error": "boom", "ignored": false}])
    );
}

#[tokio::test]
async fn when_false_skips_only_that_step() {
    Harness::new(registry(counter()))
        .flow(
            r#"
params:
  env: { type: string, default: qas }
steps:
  - name: prd_only
    echo: { value: 1 }
    when: params.env == 'prd'
  - name: both
    echo: { value: 2 }
    when: ["params.env in ['qas', 'prd']", 'true']
  - name: braces
    echo: { value: 3 }
    when: "{{ params.env == 'qas' }}"
"#,
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_step("prd_only", StepStatus::Skipped)
        .assert_step("both", StepStatus::Succeeded)
        .assert_data("braces", json!(3));
}

#[tokio::test]
async fn exit_ends_the_run_successfully_and_skips_the_rest() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - { name: a, echo: { value: 1 } }
  - { name: done, stop: { message: nothing to do } }
  - { name: later, echo: { value: 2 } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("later", StepStatus::Skipped);
    assert_eq!(report.run.message.as_deref(), Some("nothing to do"));
}
