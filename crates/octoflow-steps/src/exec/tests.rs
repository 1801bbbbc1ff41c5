//! The `exec` kind through the real engine: results, logs, failures, timeouts, cancel,
//! process-group clean-up, stdin, `cwd` confinement and load-time problems.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use octoflow_core::step::Registry;
use octoflow_core::store::{LogStream, RunStatus, StepStatus};
use octoflow_testkit::harness::{Harness, Report};
use serde_json::{Value, json};

use super::Exec;

fn harness(yaml: &str) -> Harness {
    let mut registry = Registry::new();
    registry.register(Exec);
    Harness::new(registry).flow(yaml)
}

fn lines(report: &Report, step: &str, stream: LogStream) -> Vec<String> {
    report
        .logs
        .iter()
        .filter(|l| l.step == step && l.stream == stream)
        .map(|l| l.line.clone())
        .collect()
}

fn result(report: &Report, step: &str) -> Value {
    report.run.data[step].clone()
}

#[track_caller]
fn error(report: &Report, step: &str) -> String {
    report.step(step).error.clone().unwrap_or_default()
}

fn read_pid(dir: &Path, file: &str) -> Pid {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    Pid::from_raw(text.trim().parse().unwrap())
}

/// Gone, or a zombie waiting for a parent that does not reap (PID 1 in some containers).
fn is_gone(pid: Pid) -> bool {
    match kill(pid, None) {
        Err(Errno::ESRCH) => true,
        Ok(()) => std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        }),
        Err(e) => panic!("cannot probe {pid}: {e}"),
    }
}

async fn assert_gone(pid: Pid) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_gone(pid) {
        assert!(Instant::now() < deadline, "process {pid} survived the step");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn command_list_result_and_logs() {
    let report = harness(
        r#"
steps:
  - name: a
    exec:
      command: [sh, -c, 'echo one; echo oops >&2; echo "two  words"; printf last']
"#,
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("a", StepStatus::Succeeded);
    let a = result(&report, "a");
    assert_eq!(a["exit_code"], json!(0));
    assert_eq!(a["stdout"], json!("one\ntwo  words\nlast"));
    assert_eq!(a["stderr"], json!("oops\n"));
    assert!(a["duration_ms"].is_u64(), "{a}");
    assert!(a.get("stdout_truncated").is_none(), "{a}");
    assert_eq!(
        lines(&report, "a", LogStream::Stdout),
        ["one", "two  words", "last"]
    );
    assert_eq!(lines(&report, "a", LogStream::Stderr), ["oops"]);
}

#[tokio::test]
async fn arguments_are_never_split_by_a_shell() {
    let report = harness(
        r#"
params:
  word: { type: string, default: "a b; echo injected" }
  n: { type: integer, default: 5 }
steps:
  - name: a
    exec:
      command: [printf, "%s|", "{{ params.word }}", "{{ params.n }}", "$HOME"]
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(
        result(&report, "a")["stdout"],
        json!("a b; echo injected|5|$HOME|")
    );
}

#[tokio::test]
async fn script_sees_flow_env_step_env_and_params() {
    let report = harness(
        r#"
params:
  who: { type: string, default: world }
env: { GREETING: hello }
steps:
  - name: a
    exec:
      script: |
        echo "$GREETING $WHO {{ params.who }}"
        echo "home=${HOME:-unset} manifest=${CARGO_MANIFEST_DIR:-unset}"
        pwd
      env: { WHO: "{{ params.who | upper }}" }
      parse: lines
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let data_dir = std::fs::canonicalize(report.data_dir()).unwrap();
    assert_eq!(
        result(&report, "a")["stdout"],
        json!([
            "hello WORLD world",
            "home=unset manifest=unset",
            data_dir.to_str().unwrap()
        ])
    );
}

#[tokio::test]
async fn script_uses_sh_eu_by_default_and_shell_when_given() {
    let report = harness(
        r#"
steps:
  - name: strict
    exec: { script: 'echo "$UNDEFINED_VAR"; echo after' }
    ignore_errors: ["exit code"]
  - name: lenient
    exec: { script: 'echo "[$UNDEFINED_VAR]"', shell: [sh, -c] }
"#,
    )
    .run()
    .await;
    report.assert_step("strict", StepStatus::Ignored);
    assert!(
        error(&report, "strict").contains("UNDEFINED_VAR"),
        "{}",
        error(&report, "strict")
    );
    assert!(lines(&report, "strict", LogStream::Stdout).is_empty());
    report.assert_step("lenient", StepStatus::Succeeded);
    assert_eq!(result(&report, "lenient")["stdout"], json!("[]\n"));
}

#[tokio::test]
async fn parse_json_and_lines() {
    let report = harness(
        r#"
steps:
  - name: j
    exec: { command: [echo, '{"a": [1, 2], "b": "x"}'], parse: json }
  - name: l
    exec: { command: [printf, "x\n\ny\n"], parse: lines }
  - name: t
    exec: { command: [echo, hi], parse: text }
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(
        result(&report, "j")["stdout"],
        json!({"a": [1, 2], "b": "x"})
    );
    assert_eq!(result(&report, "l")["stdout"], json!(["x", "", "y"]));
    assert_eq!(result(&report, "t")["stdout"], json!("hi"));
}

#[tokio::test]
async fn invalid_json_fails_clearly() {
    let report = harness("steps: [{name: a, exec: {command: [echo, 'not json'], parse: json}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    assert_eq!(
        error(&report, "a"),
        "stdout is not valid JSON: expected ident at line 1 column 2"
    );
}

#[tokio::test]
async fn non_zero_exit_fails_with_stderr() {
    let report = harness("steps: [{name: a, exec: {script: 'echo ok; echo boom >&2; exit 3'}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    assert_eq!(error(&report, "a"), "exit code 3: boom");
    assert_eq!(lines(&report, "a", LogStream::Stdout), ["ok"]);

    let report = harness("steps: [{name: a, exec: {command: ['false']}}]")
        .run()
        .await;
    assert_eq!(error(&report, "a"), "exit code 1");
}

#[tokio::test]
async fn success_codes_accept_other_exits() {
    let report = harness(
        "steps: [{name: a, exec: {script: 'echo boom >&2; exit 3', success_codes: [0, 3]}}]",
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("a", StepStatus::Succeeded);
    assert_eq!(result(&report, "a")["exit_code"], json!(3));
    assert_eq!(result(&report, "a")["stderr"], json!("boom\n"));
}

#[tokio::test]
async fn ignore_errors_matches_the_exit_text() {
    let report = harness(
        r#"
steps:
  - name: a
    exec: { script: 'echo boom >&2; exit 3' }
    ignore_errors: ["exit code 3"]
  - name: b
    exec: { command: [echo, next] }
"#,
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("a", StepStatus::Ignored);
    report.assert_data("a", json!({"error": "exit code 3: boom"}));
    report.assert_step("b", StepStatus::Succeeded);
}

#[tokio::test]
async fn signal_death_is_named() {
    let report = harness("steps: [{name: a, exec: {script: 'echo bye >&2; kill -SEGV $$'}}]")
        .run()
        .await;
    report.assert_step("a", StepStatus::Failed);
    assert_eq!(error(&report, "a"), "killed by signal SIGSEGV: bye");
}

#[tokio::test]
async fn step_timeout_stops_the_process() {
    let started = Instant::now();
    let report = harness(
        r"
steps:
  - name: a
    timeout: 1s
    exec: { script: 'echo $$ > a.pid; exec sleep 30' }
",
    )
    .run()
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    report.assert_step("a", StepStatus::TimedOut);
    assert_ne!(report.run.status, RunStatus::Succeeded);
    assert_gone(read_pid(&report.data_dir(), "a.pid")).await;
}

#[tokio::test]
async fn own_timeout_stops_the_process() {
    let started = Instant::now();
    let report = harness(
        r"
steps:
  - name: a
    exec: { script: 'echo $$ > a.pid; exec sleep 30', timeout: 500ms }
",
    )
    .run()
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    report.assert_step("a", StepStatus::TimedOut);
    assert_eq!(error(&report, "a"), "timed out after 500ms");
    assert_gone(read_pid(&report.data_dir(), "a.pid")).await;
}

#[tokio::test]
async fn cancel_stops_the_process() {
    let started = Instant::now();
    let report = harness("steps: [{name: a, exec: {script: 'echo $$ > a.pid; exec sleep 30'}}]")
        .cancel_after(Duration::from_millis(500))
        .run()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("a", StepStatus::Cancelled);
    assert_gone(read_pid(&report.data_dir(), "a.pid")).await;
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_kill_grace() {
    let started = Instant::now();
    let report = harness(
        r#"
steps:
  - name: a
    exec:
      script: "trap '' TERM; echo $$ > a.pid; sleep 30 & echo $! > b.pid; wait"
      kill_grace: 500ms
"#,
    )
    .cancel_after(Duration::from_millis(500))
    .run()
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("a", StepStatus::Cancelled);
    assert!(
        report.log_text("a").contains("sending SIGKILL"),
        "{}",
        report.log_text("a")
    );
    assert_gone(read_pid(&report.data_dir(), "a.pid")).await;
    assert_gone(read_pid(&report.data_dir(), "b.pid")).await;
}

#[tokio::test]
async fn dropped_step_kills_the_group() {
    // The engine waits the node's kill_grace + 1s for the step, then drops it: the guard
    // must SIGKILL the group, although the step's own kill_grace has not run out.
    let started = Instant::now();
    let report = harness(
        r#"
steps:
  - name: a
    exec:
      script: "trap '' TERM; echo $$ > a.pid; sleep 30 & echo $! > b.pid; wait"
      kill_grace: 30s
"#,
    )
    .kill_grace(Duration::from_millis(100))
    .cancel_after(Duration::from_millis(300))
    .run()
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("a", StepStatus::Cancelled);
    assert_gone(read_pid(&report.data_dir(), "a.pid")).await;
    assert_gone(read_pid(&report.data_dir(), "b.pid")).await;
}

#[tokio::test]
async fn output_past_the_cap_is_streamed_but_not_kept() {
    let report = harness(
        "steps: [{name: a, exec: {script: 'head -c 17000000 /dev/zero | tr \"\\\\0\" a'}}]",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let a = result(&report, "a");
    assert_eq!(
        a["stdout"].as_str().map(str::len),
        Some(super::output::MAX_CAPTURE)
    );
    assert_eq!(a["stdout_truncated"], json!(true));
    assert!(a.get("stderr_truncated").is_none(), "{}", a["stderr"]);
    let logged: usize = lines(&report, "a", LogStream::Stdout)
        .iter()
        .map(String::len)
        .sum();
    assert_eq!(logged, 17_000_000);
}

#[tokio::test]
async fn background_grandchild_does_not_survive() {
    let started = Instant::now();
    let report =
        harness("steps: [{name: a, exec: {script: 'sleep 300 & echo $! > bg.pid; echo done'}}]")
            .run()
            .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(result(&report, "a")["stdout"], json!("done\n"));
    assert_gone(read_pid(&report.data_dir(), "bg.pid")).await;
}

#[tokio::test]
async fn stdin_from_setting_and_from_data_key() {
    let report = harness(
        r#"
params:
  name: { type: string, default: octo }
steps:
  - name: text
    exec: { command: [cat], stdin: "hello {{ params.name }}" }
  - name: json
    exec: { command: [echo, '{"k": [1, "two"]}'], parse: json }
  - name: from_key
    data_key: json.stdout
    exec: { command: [cat], parse: json, stdin: ignored }
  - name: from_string
    data_key: text.stdout
    exec: { command: [cat] }
  - name: none
    exec: { command: [cat] }
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    assert_eq!(result(&report, "text")["stdout"], json!("hello octo"));
    assert_eq!(
        result(&report, "from_key")["stdout"],
        json!({"k": [1, "two"]})
    );
    assert_eq!(
        result(&report, "from_string")["stdout"],
        json!("hello octo")
    );
    assert_eq!(result(&report, "none")["stdout"], json!(""));
}

#[tokio::test]
async fn cwd_inside_the_data_dir() {
    let report = harness("steps: [{name: a, exec: {command: [pwd], cwd: sub/dir, parse: text}}]")
        .file("sub/dir/x", "")
        .run()
        .await;
    report.assert_status(RunStatus::Succeeded);
    let expected = std::fs::canonicalize(report.data_dir().join("sub/dir")).unwrap();
    assert_eq!(
        result(&report, "a")["stdout"],
        json!(expected.to_str().unwrap())
    );

    let report = harness("steps: [{name: a, exec: {command: [pwd], cwd: missing}}]")
        .run()
        .await;
    report.assert_step("a", StepStatus::Failed);
    assert!(
        error(&report, "a").contains("is not a directory"),
        "{}",
        error(&report, "a")
    );
}

#[tokio::test]
async fn cwd_outside_the_data_dir_is_refused() {
    let report = harness(
        r#"
params:
  dir: { type: string, default: /etc }
steps:
  - name: a
    exec: { script: 'touch ran', cwd: "{{ params.dir }}" }
"#,
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    assert_eq!(
        error(&report, "a"),
        "cannot use `cwd`: path `/etc` is outside the data directory and the allowed roots"
    );
    assert!(
        report.logs.iter().all(|l| l.stream == LogStream::Engine),
        "{:?}",
        report.logs
    );

    let problems = harness("steps: [{name: a, exec: {command: [ls], cwd: ../..}}]")
        .load()
        .unwrap_err();
    assert_eq!(
        problems,
        [
            "flow.yml:1:46: steps[0].exec.cwd: path `../..` is outside the data directory and the allowed roots"
        ]
    );
}

#[tokio::test]
async fn missing_program_cannot_start() {
    let report = harness("steps: [{name: a, exec: {command: [no-such-program-octoflow, x]}}]")
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("a", StepStatus::Failed);
    let error = error(&report, "a");
    assert!(
        error.starts_with("cannot start `no-such-program-octoflow`: "),
        "{error}"
    );
}

#[tokio::test]
async fn render_errors_name_the_setting() {
    let report = harness("steps: [{name: a, exec: {command: [echo, '{{ nope }}']}}]")
        .run()
        .await;
    report.assert_step("a", StepStatus::Failed);
    let error = error(&report, "a");
    assert!(error.starts_with("cannot render `exec.command`"), "{error}");
}

#[track_caller]
fn assert_problems(yaml: &str, expected: &[&str]) {
    let problems = harness(yaml).load().unwrap_err();
    assert_eq!(problems, expected);
}

#[test]
fn load_time_problems() {
    assert_problems(
        "steps: [{name: a, exec: {cwd: x}}]",
        &[
            "flow.yml:1:25: steps[0].exec: an `exec` step needs `command` (a list: the program, then its arguments) or `script`",
        ],
    );
    assert_problems(
        "steps: [{name: a, exec: {command: [ls], script: ls}}]",
        &["flow.yml:1:49: steps[0].exec.script: `command` and `script` are both set; keep one"],
    );
    assert_problems(
        "steps: [{name: a, exec: {command: []}}]",
        &[
            "flow.yml:1:35: steps[0].exec.command: the first item of `command` must be the program to run",
        ],
    );
    assert_problems(
        "steps: [{name: a, exec: {command: [ls], shell: [bash, -c]}}]",
        &["flow.yml:1:48: steps[0].exec.shell: `shell` is only used with `script`"],
    );
    assert_problems(
        "steps: [{name: a, exec: {command: [ls], success_codes: []}}]",
        &[
            "flow.yml:1:56: steps[0].exec.success_codes: `success_codes` is empty; no exit code could succeed",
        ],
    );
    assert_problems(
        "steps: [{name: a, exec: {command: [ls], timeout: 10 minutes}}]",
        &[
            "flow.yml:1:50: steps[0].exec.timeout: invalid duration `10 minutes`; use 500ms, 30s, 5m, 2h or 1d",
        ],
    );
}

#[test]
fn unknown_setting_names_its_path_and_a_suggestion() {
    assert_problems(
        "steps: [{name: a, exec: {comand: [ls]}}]",
        &["flow.yml:1:26: steps[0].exec.comand: unknown field `comand`; did you mean `command`?"],
    );
}
