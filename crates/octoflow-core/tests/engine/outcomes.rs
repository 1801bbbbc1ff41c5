//! Results, errors, retries, timeouts, cancellation and recovery steps.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use octoflow_core::store::{RunStatus, StepStatus};
use octoflow_testkit::harness::Harness;
use serde_json::json;

use crate::kinds::{counter, registry};

#[tokio::test]
async fn result_key_data_key_and_jq_expression() {
    Harness::new(registry(counter()))
        .input(json!({"issues": [{"id": 1, "open": true}, {"id": 2, "open": false}]}))
        .flow(
            r"
steps:
  - name: pick
    echo: { value: '{{ issues }}' }
    jq_expression: '[.[] | select(.open) | .id]'
    result_key: open_ids
  - name: whole
    echo: { value: '{{ data.__input__.issues | length }}' }
",
        )
        .run()
        .await
        .assert_status(RunStatus::Succeeded)
        .assert_data("open_ids", json!([1]))
        .assert_data("whole", json!(2));
}

/// A result up to `max_result_bytes` (as JSON) is kept in the step's record; a larger one
/// goes to a file in the run's workspace, which the record names, while `data` keeps it.
#[tokio::test]
async fn a_large_result_is_written_to_a_file() {
    // `"abcdefghij"` is 12 bytes as JSON.
    let report = Harness::new(registry(counter()))
        .max_result_bytes(12)
        .flow(
            r"
steps:
  - name: fits
    echo: { value: 'abcdefghij' }
  - name: large
    echo: { value: 'abcdefghijk' }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("large", json!("abcdefghijk"));
    assert_eq!(report.step("fits").result, Some(json!("abcdefghij")));
    let name = "results/large.1.json";
    assert_eq!(
        report.step("large").result,
        Some(json!({"$file": name, "bytes": 13}))
    );
    let file = report
        .data_dir()
        .join("runs")
        .join(report.run.id.to_string())
        .join(name);
    let written = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    assert_eq!(written, r#""abcdefghijk""#);
}

#[tokio::test]
async fn ignored_errors_are_listed_and_the_flow_goes_on() {
    let report = Harness::new(registry(counter()))
        .flow(
            r#"
steps:
  - name: missing
    fail: { message: "status_code: 404, response_content: not found" }
    ignore_errors: [".*404"]
  - name: next
    echo: { value: "{{ missing.error }}" }
"#,
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("missing", StepStatus::Ignored)
        .assert_data(
            "next",
            json!("status_code: 404, response_content: not found"),
        );
    assert_eq!(report.run.data["__errors__"][0]["ignored"], json!(true));
}

#[tokio::test]
async fn retries_until_success_with_each_attempt_recorded() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
retry: { attempts: 3, delay: 10ms, backoff: exponential, max_delay: 15ms }
steps:
  - name: flaky
    fail: { message: not yet, until_attempt: 3 }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("flaky", json!({"attempt": 3}));
    let attempts: Vec<(u32, StepStatus)> =
        report.steps.iter().map(|s| (s.attempt, s.status)).collect();
    assert_eq!(
        attempts,
        [
            (1, StepStatus::Failed),
            (2, StepStatus::Failed),
            (3, StepStatus::Succeeded)
        ]
    );
}

#[tokio::test]
async fn step_timeout_ends_a_stubborn_step_as_timed_out() {
    let started = Instant::now();
    let report = Harness::new(registry(counter()))
        .kill_grace(Duration::from_millis(100))
        .flow(
            r"
steps:
  - name: slow
    nap: { ms: 60000, stubborn: true }
    timeout: 200ms
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("slow", StepStatus::TimedOut);
    assert_eq!(
        report.step("slow").error.as_deref(),
        Some("timed out after 200ms")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn run_timeout_ends_the_run_timed_out() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
timeout: 300ms
steps:
  - { name: slow, nap: { ms: 60000 } }
  - { name: never, echo: { value: 1 } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::TimedOut)
        .assert_step("slow", StepStatus::TimedOut)
        .assert_step("never", StepStatus::Skipped);
    assert_eq!(
        report.run.error.as_ref().unwrap().message,
        "run timed out after 300ms"
    );
}

#[tokio::test]
async fn cancel_reaches_every_running_step() {
    let naps = counter();
    let report = Harness::new(registry(naps))
        .cancel_after(Duration::from_millis(200))
        .flow(
            r"
steps:
  - { name: a, nap: { ms: 60000 }, depends: [] }
  - { name: b, nap: { ms: 60000 }, depends: [] }
  - { name: c, echo: { value: 1 }, depends: [a, b] }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("a", StepStatus::Cancelled)
        .assert_step("b", StepStatus::Cancelled)
        .assert_step("c", StepStatus::Skipped);
    assert_eq!(naps.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_cancelled_run_runs_on_cancel_with_the_error() {
    let report = Harness::new(registry(counter()))
        .cancel_after(Duration::from_millis(200))
        .flow(
            r"
steps:
  - { name: work, nap: { ms: 60000 } }
on_failure:
  - { name: tell, echo: { value: never } }
on_cancel:
  - name: cleanup
    echo: { value: '{{ error.kind }}: {{ error.message }}' }
  - { name: slow_cleanup, nap: { ms: 50 } }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("work", StepStatus::Cancelled)
        .assert_step("cleanup", StepStatus::Succeeded)
        .assert_step("slow_cleanup", StepStatus::Succeeded)
        .assert_data("cleanup", json!("cancelled: cancelled"));
    assert!(
        report.steps.iter().all(|s| s.step != "tell"),
        "on_failure ran"
    );
}

#[tokio::test]
async fn on_failure_sees_the_error_and_finally_step_runs() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
finally_step: cleanup
steps:
  - { name: work, fail: { message: disk full } }
  - name: cleanup
    echo: { value: 'cleaned after {{ __errors__ | length }} error(s)' }
    when: 'false'
on_failure:
  - name: tell
    echo: { value: 'step {{ error.step }} failed: {{ error.message }}' }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_data("cleanup", json!("cleaned after 1 error(s)"))
        .assert_data("tell", json!("step work failed: disk full"));
}

#[tokio::test]
async fn undefined_names_fail_the_step_naming_the_setting() {
    let report = Harness::new(registry(counter()))
        .flow("steps: [{ name: a, echo: { value: '{{ nope }}' } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = report.step("a").error.clone().unwrap();
    assert!(error.starts_with("cannot render `value`: "), "{error}");
    assert!(error.contains("undefined"), "{error}");
}

#[tokio::test]
async fn spooler_reserved_data_keys_are_present() {
    let report = Harness::new(registry(counter()))
        .input(json!({"x": 1}))
        .flow("steps: [{ name: a, echo: { value: '{{ __job_id__ }}|{{ __input__.x }}|{{ __timestamp__ | length }}' } }]")
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let expected = format!("{}|1|14", report.run.id);
    assert_eq!(report.run.data["a"], json!(expected));
}

#[tokio::test]
async fn secrets_reach_templates_but_never_the_record() {
    let report = Harness::new(registry(counter()))
        .secrets("- { name: api, type: token, token: tok-12345 }")
        .flow(
            r"
steps:
  - name: header
    echo: { value: 'Bearer {{ secrets.api.token }}' }
  - name: url
    echo: { value: 'postgres://app:pw-9876@db:5432/x' }
  - name: boom
    fail: { message: 'refused tok-12345' }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_data("header", json!("Bearer ***"))
        .assert_data("url", json!("postgres://***@db:5432/x"));
    let all = format!("{:?}{:?}{:?}", report.run, report.steps, report.logs);
    assert!(
        !all.contains("tok-12345") && !all.contains("pw-9876"),
        "{all}"
    );
    assert_eq!(report.run.error.as_ref().unwrap().message, "refused ***");
}

/// A panic in a kind fails its step with an error that says so; the run records its end and
/// the process goes on.
#[tokio::test]
async fn a_panicking_kind_fails_its_step_and_the_run_ends_recorded() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - name: buggy
    panic: { message: index out of bounds }
  - name: after
    echo: { value: never }
on_failure:
  - name: tell
    echo: { value: '{{ error.message }}' }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("buggy", StepStatus::Failed)
        .assert_step("after", StepStatus::Skipped)
        .assert_data(
            "tell",
            json!("internal error: the step panicked: index out of bounds"),
        );
}

/// An endless `jq_expression` ends its step `timed_out` at the step's timeout (it runs off
/// the async threads, which stay free meanwhile).
#[tokio::test]
async fn an_endless_jq_program_times_out() {
    let started = Instant::now();
    let report = Harness::new(registry(counter()))
        .kill_grace(Duration::from_millis(100))
        .flow(
            r"
steps:
  - name: spin
    echo: { value: 1 }
    jq_expression: 'last(repeat(1))'
    timeout: 200ms
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("spin", StepStatus::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "ended after {:?}",
        started.elapsed()
    );
}

/// A jq program reads `$params` and `$run` as variables: a param's value is data, never
/// program text.
#[tokio::test]
async fn jq_programs_see_params_and_run_as_variables() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
params:
  field: { type: string }
steps:
  - name: pick
    echo: { value: { a: 1, b: 2 } }
    jq_expression: '[.[$params.field], $run.flow]'
",
        )
        .param("field", json!("b) | halt_error(\"injected\""))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("pick", json!([null, report.run.flow]));
}

#[tokio::test]
async fn a_private_result_is_used_but_never_recorded() {
    let report = Harness::new(registry(counter()))
        .flow(
            r"
steps:
  - name: raw
    private: true
    echo: { value: { barcode: '25555000123' } }
  - name: masked
    echo: { value: '{{ raw.barcode[:5] }}…' }
",
        )
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("masked", json!("25555…"));
    assert_eq!(report.run.data.get("raw"), None, "{:#}", report.run.data);
    assert_eq!(report.step("raw").result, Some(json!({"$private": true})));
    let everything = format!("{:?} {:?} {:?}", report.run, report.steps, report.logs);
    assert!(!everything.contains("25555000123"), "{everything}");
}
