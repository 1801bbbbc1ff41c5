//! Tests of the `rest` kind through the real engine, against a real HTTP peer: an axum
//! server on `127.0.0.1:0` started by each test. Methods, query, headers, bodies, forms,
//! multipart uploads, authentication, `expect`, `ignore_errors`, retries, timeout, cancel,
//! `save_to` of a large streamed body, `full_response`, and load-time problems.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Query, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{any, get, post};
use octoflow_core::step::Registry;
use octoflow_core::store::{RunStatus, StepStatus};
use octoflow_testkit::harness::{Harness, Report};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SECRETS: &str = "
- { name: jira, type: credential, username: bot, password: s3cret-pw }
- { name: api, type: token, token: tok-abc123 }
- { name: key, type: api-key, key: k-999 }
- { name: custom, type: api-key, key: k-777, header: X-Custom-Key }
";

/// What the peer saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct PeerState {
    seen: Arc<Mutex<Vec<Seen>>>,
    flaky_calls: Arc<AtomicU32>,
}

/// A local HTTP server for one test.
struct Peer {
    base: String,
    state: PeerState,
}

impl Peer {
    async fn start() -> Self {
        let state = PeerState::default();
        let app = Router::new()
            .route("/echo", any(echo))
            .route("/missing", any(missing))
            .route("/status", any(status))
            .route("/flaky", get(flaky))
            .route("/slow", get(slow))
            .route("/text", get(|| async { "plain text body" }))
            .route("/empty", any(|| async { StatusCode::NO_CONTENT }))
            .route("/deny", get(deny))
            .route("/big", get(big))
            .route("/upload", post(upload))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    /// The headers of the last request to `path`.
    fn last_headers(&self, path: &str) -> BTreeMap<String, String> {
        let seen = self.state.seen.lock().unwrap();
        seen.iter()
            .rev()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("no request to {path}: {seen:?}"))
            .headers
            .clone()
    }

    fn methods(&self, path: &str) -> Vec<String> {
        let seen = self.state.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.path == path)
            .map(|s| s.method.clone())
            .collect()
    }
}

fn record(state: &PeerState, method: &Method, path: &str, headers: &HeaderMap) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    state.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.to_owned(),
        headers,
    });
}

async fn echo(
    State(state): State<PeerState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&state, &method, "/echo", &headers);
    let body = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let answer = json!({
        "method": method.as_str(),
        "query": query,
        "content_type": header("content-type"),
        "x_trace": header("x-trace"),
        "x_num": header("x-num"),
        "body": body,
    });
    (
        AppendHeaders([("x-peer", "a"), ("x-peer", "b")]),
        axum::Json(answer),
    )
        .into_response()
}

async fn missing() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not found"})),
    )
        .into_response()
}

async fn status(Query(q): Query<BTreeMap<String, String>>) -> Response {
    let code: u16 = q["code"].parse().unwrap();
    let size: usize = q.get("size").map_or(0, |s| s.parse().unwrap());
    (StatusCode::from_u16(code).unwrap(), "x".repeat(size)).into_response()
}

async fn flaky(State(state): State<PeerState>) -> Response {
    let n = state.flaky_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= 2 {
        (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
    } else {
        axum::Json(json!({"ok": true, "calls": n})).into_response()
    }
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

async fn deny(State(state): State<PeerState>, headers: HeaderMap) -> Response {
    record(&state, &Method::GET, "/deny", &headers);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (StatusCode::UNAUTHORIZED, format!("bad credentials: {auth}")).into_response()
}

/// Chunks of the big body: 64 KiB windows into a pseudo-random block, shifted per chunk.
const CHUNK: usize = 64 * 1024;

fn block() -> Bytes {
    let mut x = 0x2545_f491_u32;
    (0..CHUNK + 251)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

fn big_chunks(total: usize) -> impl Iterator<Item = Bytes> {
    let block = block();
    (0..total.div_ceil(CHUNK)).map(move |i| {
        let start = i % 251;
        let len = CHUNK.min(total - i * CHUNK);
        block.slice(start..start + len)
    })
}

async fn big(Query(q): Query<BTreeMap<String, usize>>) -> Response {
    let total = q["bytes"];
    let stream = futures::stream::iter(big_chunks(total).map(Ok::<_, Infallible>));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, total)
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn upload(
    State(state): State<PeerState>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    record(&state, &Method::POST, "/upload", &headers);
    let mut fields = serde_json::Map::new();
    let mut files = serde_json::Map::new();
    while let Some(mut field) = form.next_field().await.unwrap() {
        let name = field.name().unwrap().to_owned();
        match field.file_name().map(ToOwned::to_owned) {
            None => {
                fields.insert(name, json!(field.text().await.unwrap()));
            }
            Some(file_name) => {
                let mut hasher = Sha256::new();
                let mut bytes = 0usize;
                while let Some(chunk) = field.chunk().await.unwrap() {
                    bytes += chunk.len();
                    hasher.update(&chunk);
                }
                let digest = hex::encode(hasher.finalize());
                files.insert(
                    name,
                    json!({"file_name": file_name, "bytes": bytes, "sha256": digest}),
                );
            }
        }
    }
    axum::Json(json!({"fields": fields, "files": files})).into_response()
}

fn harness(peer: &Peer, yaml: &str) -> Harness {
    let mut registry = Registry::new();
    crate::register_builtin(&mut registry);
    Harness::new(registry)
        .secrets(SECRETS)
        .flow(&yaml.replace("BASE", &peer.base))
}

#[track_caller]
fn error(report: &Report, step: &str) -> String {
    report.step(step).error.clone().unwrap_or_default()
}

fn attempts(report: &Report, step: &str) -> Vec<(u32, StepStatus)> {
    report
        .steps
        .iter()
        .filter(|s| s.step == step)
        .map(|s| (s.attempt, s.status))
        .collect()
}

#[tokio::test]
async fn get_sends_query_and_headers() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r#"
params:
  word: { type: string, default: "hello world" }
steps:
  - name: call
    rest:
      uri: "BASE/echo?fixed=1"
      query: { q: "{{ params.word }}", list: [a, b], none: null }
      headers: { X-Trace: "t-{{ params.word | length }}", X-Num: 5, X-Absent: null }
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["call"];
    assert_eq!(answer["method"], json!("GET"));
    assert_eq!(
        answer["query"],
        json!("fixed=1&list=a&list=b&q=hello+world")
    );
    assert_eq!(answer["x_trace"], json!("t-11"));
    assert_eq!(answer["x_num"], json!("5"));
    let headers = peer.last_headers("/echo");
    assert!(!headers.contains_key("x-absent"), "{headers:?}");
    let agent = concat!("octoflow/", env!("CARGO_PKG_VERSION"));
    assert_eq!(headers["user-agent"], agent);
    assert!(
        report.log_text("call").starts_with(&format!(
            "Request `GET {}/echo` answered 200 after ",
            peer.base
        )),
        "{}",
        report.log_text("call")
    );
}

#[tokio::test]
async fn post_sends_body_and_data_key_wins() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r#"
params:
  n: { type: integer, default: 7 }
steps:
  - name: from_body
    rest:
      uri: BASE/echo
      method: post
      body: { n: "{{ params.n }}", tags: [x, "{{ params.n }}-y"] }
  - name: payload
    set_fact: { value: { from: data } }
  - name: from_data
    data_key: payload
    rest:
      uri: BASE/echo
      method: POST
      body: { ignored: true }
  - name: spooler_form
    type: rest
    rest:
      uri: BASE/echo
      method: Post
      data_key: payload
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let data = &report.run.data;
    assert_eq!(data["from_body"]["method"], json!("POST"));
    assert_eq!(data["from_body"]["content_type"], json!("application/json"));
    assert_eq!(
        data["from_body"]["body"],
        json!({"n": 7, "tags": ["x", "7-y"]})
    );
    assert_eq!(data["from_data"]["body"], json!({"from": "data"}));
    assert_eq!(data["spooler_form"]["body"], json!({"from": "data"}));
}

#[tokio::test]
async fn put_patch_delete_and_head() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - { name: put, rest: { uri: BASE/echo, method: put, body: [1] } }
  - { name: patch, rest: { uri: BASE/echo, method: PATCH, body: { a: 1 } } }
  - { name: delete, rest: { uri: BASE/echo, method: DELETE } }
  - { name: head, rest: { uri: BASE/echo, method: head } }
",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let data = &report.run.data;
    assert_eq!(data["put"]["method"], json!("PUT"));
    assert_eq!(data["put"]["body"], json!([1]));
    assert_eq!(data["patch"]["method"], json!("PATCH"));
    assert_eq!(data["patch"]["body"], json!({"a": 1}));
    assert_eq!(data["delete"]["method"], json!("DELETE"));
    assert_eq!(data["delete"]["body"], json!(""));
    assert_eq!(data["head"], Value::Null);
    assert_eq!(peer.methods("/echo"), ["PUT", "PATCH", "DELETE", "HEAD"]);
}

#[tokio::test]
async fn form_without_files_is_urlencoded() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r"
steps:
  - name: call
    rest:
      uri: BASE/echo
      method: POST
      form: { a: 1, b: x y, skip: null }
",
    )
    .run()
    .await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["call"];
    assert_eq!(
        answer["content_type"],
        json!("application/x-www-form-urlencoded")
    );
    assert_eq!(answer["body"], json!("a=1&b=x+y"));
}

#[tokio::test]
async fn multipart_upload_arrives_intact_with_form_fields() {
    let peer = Peer::start().await;
    let harness = harness(
        &peer,
        r#"
steps:
  - name: note
    file: { path: "{{ run.workdir }}/note.txt", mode: write, format: text }
    data_key: __input__
  - name: call
    rest:
      uri: BASE/upload
      method: POST
      form: { project: avo, batch: 3 }
      files:
        blob: uploads/blob.bin
        note: "{{ run.workdir }}/note.txt"
"#,
    )
    .input(json!("a note"));
    let blob: Vec<u8> = big_chunks(3 * 1024 * 1024 + 17)
        .flat_map(|b| b.to_vec())
        .collect();
    std::fs::create_dir_all(harness.data_dir().join("uploads")).unwrap();
    std::fs::write(harness.data_dir().join("uploads/blob.bin"), &blob).unwrap();
    let report = harness.run().await;
    report.assert_status(RunStatus::Succeeded);
    let answer = &report.run.data["call"];
    assert_eq!(answer["fields"], json!({"project": "avo", "batch": "3"}));
    assert_eq!(
        answer["files"]["blob"],
        json!({
            "file_name": "blob.bin",
            "bytes": blob.len(),
            "sha256": hex::encode(Sha256::digest(&blob)),
        })
    );
    assert_eq!(
        answer["files"]["note"],
        json!({
            "file_name": "note.txt",
            "bytes": 6,
            "sha256": hex::encode(Sha256::digest(b"a note")),
        })
    );
    let content_type = &peer.last_headers("/upload")["content-type"];
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
}

#[tokio::test]
async fn upload_paths_are_confined() {
    let peer = Peer::start().await;
    let report = harness(
        &peer,
        r#"
steps:
  - name: call
    rest: { uri: BASE/upload, method: POST, files: { f: "{{ '/etc/passwd' }}" } }
"#,
    )
    .run()
    .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        error(&report, "call"),
        "cannot upload `rest.files.f`: path `/etc/passwd` is outside the data directory and the allowed roots"
    );
    let report = harness(
        &peer,
        "steps: [{ name: call, rest: { uri: BASE/upload, method: POST, files: { f: nope.bin } } }]",
    )
    .run()
    .await;
    assert!(
        error(&report, "call")
            .starts_with("cannot upload `rest.files.f`: cannot read `nope.bin`: "),
        "{}",
        error(&report, "call")
    );
}

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
