//! Every kind through the real binary on a real flow file: success, a failure, a timeout and
//! a cancel, each recorded in the store the way the user reads it back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::mail::Mailbox;
use crate::octo;

#[test]
fn every_leaf_and_engine_kind_runs_through_the_binary() {
    let o = octo()
        .file("data/templates/line.j2", "{{ name }} has {{ n }}\n")
        .file("data/in/items.csv", "name,n\nada,2\nbob,3\n")
        .flow(
            "child",
            "steps: [{ name: double, set_fact: { value: '{{ n * 2 }}' } }]\n",
        )
        .flow(
            "kinds",
            r#"
steps:
  - name: rows
    file: { path: in/items.csv }
  - name: ints
    jq: { expression: '[.rows[] | {name, n: (.n | tonumber)}]' }
  - name: lines
    jinja: { path: line.j2, data_key: ints.0 }
  - name: shout
    exec: { command: [tr, a-z, A-Z], stdin: "{{ lines }}" }
    jq_expression: .stdout
  - name: fact
    set_fact: { value: { shout: "{{ shout | trim }}" } }
  - name: show
    debug: { data_key: fact }
  - name: doubles
    flow_loop: { name: child, data_key: ints }
  - name: pick
    switch:
      value: fact.shout
      cases: [{ when: '^ADA', step: { set_fact: { value: ada first } } }]
  - name: memo
    state: { set: { last: "{{ fact.shout }}" } }
  - name: nap
    sleep: { seconds: 0.05 }
  - name: saved
    file: { path: out/result.json, mode: write, data_key: fact }
  - name: ready
    wait: { file: { path: out/result.json, timeout: 5s } }
  - name: done
    exit: { message: all kinds ran }
  - name: never
    set_fact: { value: 1 }
"#,
        );
    let out = o.clone().args(["run", "kinds", "--json"]).run();
    out.success();
    let run = out.json();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["message"], "all kinds ran");
    assert_eq!(run["data"]["fact"], json!({"shout": "ADA HAS 2"}));
    assert_eq!(run["data"]["doubles"][1]["double"], 6);
    assert_eq!(run["data"]["pick"], "ada first");
    let never = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "never")
        .unwrap();
    assert_eq!(never["status"], "skipped");
    let written = std::fs::read_to_string(o.data_dir().join("out/result.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&written).unwrap(),
        json!({"shout": "ADA HAS 2"})
    );
}

#[test]
fn a_step_timeout_ends_the_step_timed_out_and_the_run_failed() {
    let o = octo().flow(
        "slow",
        "steps:\n  - { name: wait, exec: { command: [sleep, '30'] }, timeout: 500ms }\n  - { name: after, set_fact: { value: 1 } }\n",
    );
    let started = Instant::now();
    let out = o.clone().args(["run", "slow", "--json"]).run();
    out.code(1);
    assert!(started.elapsed() < Duration::from_secs(20));
    let run = out.json();
    assert_eq!(run["status"], "failed");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], "timed_out");
    assert_eq!(steps[0]["error"], "timed out after 500ms");
    assert_eq!(steps[1]["status"], "skipped");
}

#[test]
fn a_run_timeout_ends_the_run_timed_out() {
    let o = octo().flow(
        "slow",
        "timeout: 300ms\nsteps: [{ name: nap, sleep: { seconds: 30 } }]\n",
    );
    let out = o.clone().args(["run", "slow", "--json"]).run();
    out.code(1);
    let run = out.json();
    assert_eq!(run["status"], "timed_out");
    assert_eq!(run["error"]["message"], "run timed out after 300ms");
    assert_eq!(run["steps"][0]["status"], "timed_out");
}

#[test]
fn a_path_outside_the_data_directory_is_refused_before_anything_runs() {
    let o = octo().flow(
        "escape",
        "steps: [{ name: read, file: { path: ../../etc/passwd } }]\n",
    );
    o.clone()
        .args(["validate"])
        .run()
        .failure()
        .stdout_contains("steps[0].file.path");
    o.clone()
        .args(["run", "escape"])
        .run()
        .code(2)
        .stderr_contains("outside the data directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_through_the_configured_mail_server() {
    let Some(mailbox) = Mailbox::start().await else {
        return;
    };
    let o = octo()
        .file(
            "data/config.yml",
            &mailbox.config("flows@example.org"),
        )
        .flow(
            "tell",
            "steps: [{ name: mail, email: { to: [ops@example.org], subject: 'run {{ run.id }}', body: hello } }]",
        );
    let out = tokio::task::spawn_blocking(move || o.args(["run", "tell", "--json"]).run())
        .await
        .unwrap();
    out.success();
    let run = out.json();
    let id = run["id"].as_str().unwrap().to_owned();
    let message = mailbox.received(1).await.remove(0);
    assert!(message.contains(&format!("Subject: run {id}")), "{message}");
    assert!(message.contains("From: flows@example.org"), "{message}");
    assert_eq!(
        run["data"]["mail"]["message_id"]
            .as_str()
            .map(|m| message.contains(m)),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_renders_its_body_from_a_template_file() {
    let Some(mailbox) = Mailbox::start().await else {
        return;
    };
    let o = octo()
        .file("data/config.yml", &mailbox.config("flows@example.org"))
        .file(
            "data/templates/counts.j2",
            "Hello {{ params.who }},\n{% for item in counts %}- {{ item.name }}: {{ item.n }}\n{% endfor %}Run {{ run.id }}.\n",
        )
        .flow(
            "tell",
            r"
params:
  who: { type: string, default: ops }
steps:
  - name: counts
    set_fact: { value: [{ name: ada, n: 2 }, { name: bob, n: 3 }] }
  - name: mail
    email: { to: [ops@example.org], subject: counts, template: counts.j2 }
",
        );
    let out = tokio::task::spawn_blocking(move || {
        o.args(["run", "tell", "-p", "who=Ada Lovelace", "--json"])
            .run()
    })
    .await
    .unwrap();
    out.success();
    let id = out.json()["id"].as_str().unwrap().to_owned();
    let message = mailbox.received(1).await.remove(0);
    let (_, body) = message
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("no body: {message}"));
    assert_eq!(
        body.trim_end(),
        format!("Hello Ada Lovelace,\n- ada: 2\n- bob: 3\nRun {id}."),
        "{message}"
    );
}
