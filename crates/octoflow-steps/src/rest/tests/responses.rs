//! What a `rest` step does with what comes back, and around it: authentication, secrets,
//! `expect`, `ignore_errors`, retries, timeout, cancel, `full_response` and `save_to`.

use std::io::Read;
use std::time::{Duration, Instant};

use octoflow_core::store::{RunStatus, StepStatus};
use serde_json::{Value, json};

use super::peer::*;

#[tokio::test]
async fn authentication_from_secrets() {
    let peer = Peer::start().await;
    let cases = [
        (
            "{type: basic, secret: jira}",
            "authorization",
            "Basic Ym90OnMzY3JldC1wdw==",
        ),
        (
            "{type: token, secret: api}",
            "authorization",
            "Bearer tok-abc123",
        ),
        (
            "{type: token, secret: api, bearer: Token}",
            "authorization",
            "Token tok-abc123",
        ),
        (
            "{type: token, secret: api, bearer: ''}",
            "authorization",
            "tok-abc123",
        ),
        ("{type: api_key, secret: key}", "x-api-key", "k-999"),
        ("{type: api_key, secret: custom}", "x-custom-key", "k-777"),
    ];
    for (auth, header, value) in cases {
        let yaml = format!(
            "steps: [{{ name: call, rest: {{ uri: BASE/echo, authentication: {auth} }} }}]"
        );
        let report = harness(&peer, &yaml).run().await;
        report.assert_status(RunStatus::Succeeded);
        assert_eq!(peer.last_headers("/echo")[header], value, "{auth}");
        let log = report.log_text("call");
        assert!(
            !log.contains(value) && !log.to_lowercase().contains(header),
            "{log}"
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_errors_or_logs() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/deny, authentication: {type: token, secret: api} } }]",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    let text = error(&report, "call");
    assert!(
        text.contains("status_code: 401, response_content: bad credentials: Bearer ***"),
        "{text}"
    );
    assert!(!text.contains("tok-abc123"), "{text}");
    assert_eq!(
        peer.last_headers("/deny")["authorization"],
        "Bearer tok-abc123"
    );
}

#[tokio::test]
async fn unknown_secret_or_wrong_secret_type_fails_naming_it() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/echo, authentication: {type: token, secret: nope} } }]",
    )
    .run()
    .await;
    report.assert_step("call", StepStatus::Failed);
    assert_eq!(
        error(&report, "call"),
        "unknown secret `nope` in `authentication.secret`; add it to secrets.yml"
    );
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/echo, authentication: {type: basic, secret: api} } }]",
    )
    .run()
    .await;
    assert_eq!(
        error(&report, "call"),
        "secret `api` has no `username`; `type: basic` authentication needs a `credential` secret"
    );
    assert!(peer.methods("/echo").is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn expect_accepts_and_refuses() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - { name: created, rest: { uri: 'BASE/status?code=201', expect: [201, 202] } }
  - { name: not_found_ok, rest: { uri: BASE/missing, expect: [404] } }
  - { name: ok_refused, rest: { uri: 'BASE/status?code=200', expect: [201] } }
",
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("created", StepStatus::Succeeded)
        .assert_data("created", Value::Null)
        .assert_data("not_found_ok", json!({"error": "not found"}));
    let text = error(&report, "ok_refused");
    assert!(
        text.ends_with(
            "answered an unexpected status (expected 201): status_code: 200, response_content: "
        ),
        "{text}"
    );
}

#[tokio::test]
async fn not_found_fails_and_ignore_errors_matches_it() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/missing } }]",
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("call", StepStatus::Failed);
    assert_eq!(
        error(&report, "call"),
        format!(
            "`GET {}/missing` answered an unexpected status (expected 2xx): status_code: 404, response_content: {{\"error\":\"not found\"}}",
            peer.base
        )
    );

    let report = harness(
        &peer,
        r#"
steps:
  - { name: call, rest: { uri: BASE/missing }, ignore_errors: [".*404"], retry: { attempts: 3, delay: 10ms } }
  - { name: after, set_fact: { value: done } }
"#,
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_step("call", StepStatus::Ignored)
        .assert_data("after", json!("done"));
    assert_eq!(attempts(&report, "call"), [(1, StepStatus::Ignored)]);
    assert!(
        report.run.data["call"]["error"]
            .as_str()
            .unwrap()
            .contains("status_code: 404")
    );
}

#[tokio::test]
async fn refused_content_is_cut_to_about_two_kilobytes() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: 'BASE/status?code=400&size=100000' } }]",
    )
    .run()
    .await;
    let text = error(&report, "call");
    let content = text.split("response_content: ").nth(1).unwrap();
    assert_eq!(content, format!("{}…", "x".repeat(2048)));
}

#[tokio::test]
async fn server_errors_are_retried_client_errors_are_not() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - name: call
    rest: { uri: BASE/flaky }
    retry: { attempts: 3, delay: 10ms }
  - name: client_error
    rest: { uri: BASE/missing }
    retry: { attempts: 3, delay: 10ms }
",
    )
    .run()
    .await;
    assert_eq!(
        attempts(&report, "call"),
        [
            (1, StepStatus::Failed),
            (2, StepStatus::Failed),
            (3, StepStatus::Succeeded)
        ]
    );
    assert_eq!(report.run.data["call"], json!({"ok": true, "calls": 3}));
    assert!(error(&report, "client_error").contains("status_code: 404"));
    assert_eq!(attempts(&report, "client_error"), [(1, StepStatus::Failed)]);
}

#[tokio::test]
async fn connection_errors_are_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let peer = Peer {
        base: base.clone(),
        state: PeerState::default(),
    };
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: 'BASE/x?token=abc' }, retry: { attempts: 2, delay: 10ms } }]",
    )
    .run()
    .await;
    assert_eq!(
        attempts(&report, "call"),
        [(1, StepStatus::Failed), (2, StepStatus::Failed)]
    );
    let text = error(&report, "call");
    assert!(
        text.starts_with(&format!("request `GET {base}/x` failed: ")),
        "{text}"
    );
    assert!(!text.contains("token=abc"), "{text}");
}

#[tokio::test]
async fn timeout_stops_the_request() {
    let peer = Peer::start().await;
    let started = Instant::now();
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/slow, timeout: 300ms } }]",
    )
    .run()
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    report
        .assert_status(RunStatus::Failed)
        .assert_step("call", StepStatus::TimedOut);
    assert_eq!(error(&report, "call"), "timed out after 300ms");
}

#[tokio::test]
async fn cancel_stops_the_request() {
    let peer = Peer::start().await;
    let started = Instant::now();
    let report = harness(&peer, "steps: [{ name: call, rest: { uri: BASE/slow } }]")
        .cancel_after(Duration::from_millis(200))
        .run()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    report
        .assert_status(RunStatus::Cancelled)
        .assert_step("call", StepStatus::Cancelled);
}

#[tokio::test]
async fn full_response_text_and_empty_bodies() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - { name: full, rest: { uri: 'BASE/echo?a=1', full_response: true } }
  - { name: text, rest: { uri: BASE/text } }
  - { name: empty, rest: { uri: BASE/empty, method: DELETE } }
  - { name: empty_full, rest: { uri: BASE/empty, full_response: true } }
",
    )
    .run()
    .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("text", json!("plain text body"))
        .assert_data("empty", Value::Null);
    let full = &report.run.data["full"];
    let keys: Vec<&String> = full.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["status", "headers", "body"]);
    assert_eq!(full["status"], json!(200));
    assert_eq!(full["headers"]["content-type"], json!("application/json"));
    assert_eq!(full["headers"]["x-peer"], json!(["a", "b"]));
    assert_eq!(full["body"]["query"], json!("a=1"));
    assert_eq!(report.run.data["empty_full"]["status"], json!(204));
    assert_eq!(report.run.data["empty_full"]["body"], Value::Null);
}

/// The peak resident set of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_to_streams_a_large_body_to_disk() {
    const SIZE: usize = 200 * 1024 * 1024;
    let peer = Peer::start().await;
    let before = peak_rss();
    let report = harness(
        &peer,
        &format!(
            "steps: [{{ name: dl, rest: {{ uri: 'BASE/big?bytes={SIZE}', save_to: out/big.bin, full_response: true }} }}]"
        ),
    )
    .run()
    .await;
    let grown = peak_rss().saturating_sub(before);

    report.assert_status(RunStatus::Succeeded);
    let result = &report.run.data["dl"];
    assert_eq!(result["status"], json!(200));
    assert_eq!(result["path"], json!("out/big.bin"));
    assert_eq!(result["bytes"], json!(SIZE));
    assert_eq!(result["headers"]["content-length"], json!(SIZE.to_string()));
    assert!(
        grown < 64 * 1024 * 1024,
        "peak RSS grew by {} MiB",
        grown >> 20
    );

    // Exactly the bytes the peer generated, compared chunk by chunk (stronger than a checksum,
    // and SHA-256 of 200 MB takes half a minute in a debug build).
    let path = report.data_dir().join("out/big.bin");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
    let mut file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut buf = vec![0u8; CHUNK];
    for (i, expected) in big_chunks(SIZE).enumerate() {
        let part = &mut buf[..expected.len()];
        file.read_exact(part).unwrap();
        assert!(part == &expected[..], "chunk {i} differs");
    }
    assert_eq!(
        file.read(&mut buf).unwrap(),
        0,
        "nothing after the last chunk"
    );

    let names: Vec<_> = std::fs::read_dir(report.data_dir().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["big.bin"], "no temporary file is left");
}

#[tokio::test]
async fn save_to_keeps_the_old_file_when_refused_and_is_confined() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - { name: dl, rest: { uri: BASE/missing, save_to: out/x.json } }
",
    )
    .file("out/x.json", "old")
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        std::fs::read_to_string(report.data_dir().join("out/x.json")).unwrap(),
        "old"
    );

    let report = harness(
        &peer,
        r#"steps: [{ name: dl, rest: { uri: BASE/text, save_to: "{{ '../escape.txt' }}" } }]"#,
    )
    .run()
    .await;
    assert_eq!(
        error(&report, "dl"),
        "cannot use `save_to`: path `../escape.txt` is outside the data directory and the allowed roots"
    );
}

#[tokio::test]
async fn load_time_problems() {
    let peer = Peer::start().await;
    let cases = [
        (
            "{ uri: BASE, method: FETCH }",
            "steps[0].rest.method: unknown method `FETCH`; use GET, POST, PUT, PATCH, DELETE or HEAD",
        ),
        (
            "{ uri: BASE, retry: { attempts: 2 } }",
            "steps[0].rest.retry: `retry` is a field of the step, not of its `rest` block; move it one level up",
        ),
        (
            "{ uri: BASE, body: {}, form: { a: 1 } }",
            "steps[0].rest.body: `body` and `form`/`files` both give the request body; keep one",
        ),
        (
            "{ uri: BASE, expect: [] }",
            "steps[0].rest.expect: `expect` is empty; no status could succeed (leave it out for any 2xx)",
        ),
        (
            "{ uri: BASE, expect: [200, 99] }",
            "steps[0].rest.expect[1]: invalid status code `99`; use 100 to 599",
        ),
        (
            "{ uri: 'ftp://x/y' }",
            "steps[0].rest.uri: invalid `uri` `ftp://x/y`: scheme `ftp` is not supported; use http or https",
        ),
        (
            "{ uri: BASE, authentication: { type: basic, secret: jira, bearer: X } }",
            "steps[0].rest.authentication.bearer: `bearer` is only for `type: token`, not `basic`",
        ),
        (
            "{ uri: BASE, authentication: { type: oauth, secret: jira } }",
            "steps[0].rest.authentication.type: unknown variant `oauth`; expected one of `basic`, `token`, `api-key`, `api_key`",
        ),
        (
            "{ uri: BASE, save_to: ../x }",
            "steps[0].rest.save_to: path `../x` is outside the data directory and the allowed roots",
        ),
        (
            "{ uri: BASE, headers: { 'bad name': x } }",
            "steps[0].rest.headers.bad name: invalid header name `bad name`",
        ),
        (
            "{ uri: BASE, timeout: soon }",
            "steps[0].rest.timeout: invalid duration `soon`; use 500ms, 30s, 5m, 2h or 1d",
        ),
    ];
    for (block, expected) in cases {
        let yaml = format!("steps: [{{ name: call, rest: {block} }}]");
        let problems = harness(&peer, &yaml).load().unwrap_err();
        assert_eq!(problems.len(), 1, "{block}: {problems:?}");
        assert!(
            problems[0].ends_with(expected),
            "{block}:\n{}\nwanted: {expected}",
            problems[0]
        );
    }
}

#[tokio::test]
async fn save_to_refuses_an_answer_past_its_cap_and_leaves_nothing() {
    let peer = Peer::start().await;
    let mut config = crate::StepsConfig::default();
    config.http.max_save_bytes = 64 * 1024;
    let mut registry = octoflow_core::step::Registry::new();
    crate::register_builtin_with(&mut registry, &config);
    let report = octoflow_testkit::harness::Harness::new(registry)
        .flow(&format!(
            "steps: [{{ name: dl, rest: {{ uri: '{}/big?bytes=1000000', save_to: out/big.bin }} }}]",
            peer.base
        ))
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    let error = error(&report, "dl");
    assert!(
        error.contains("larger than 65536 bytes (`http.max_save_bytes`)"),
        "{error}"
    );
    let out = report.data_dir().join("out");
    let left = std::fs::read_dir(&out).map_or(0, Iterator::count);
    assert_eq!(left, 0, "nothing is left in {}", out.display());
}
