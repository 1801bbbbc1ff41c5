//! The HTTP peer every `rest` test talks to: an axum server on `127.0.0.1:0` that echoes,
//! fails, stalls, denies, streams a large body and takes uploads; and the harness helpers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Query, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::{any, get, post};
use octoflow_core::step::Registry;
use octoflow_core::store::StepStatus;
use octoflow_testkit::harness::{Harness, Report};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub(super) const SECRETS: &str = "
- { name: jira, type: credential, username: bot, password: s3cret-pw }
- { name: api, type: token, token: tok-abc123 }
- { name: key, type: api-key, key: k-999 }
- { name: custom, type: api-key, key: k-777, header: X-Custom-Key }
";

/// What the peer saw of one request.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
pub(super) struct PeerState {
    pub(super) seen: Arc<Mutex<Vec<Seen>>>,
    pub(super) flaky_calls: Arc<AtomicU32>,
}

/// A local HTTP server for one test.
pub(super) struct Peer {
    pub(super) base: String,
    pub(super) state: PeerState,
}

impl Peer {
    pub(super) async fn start() -> Self {
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
            .route("/redirect", any(redirect))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    /// The headers of the last request to `path`.
    pub(super) fn last_headers(&self, path: &str) -> BTreeMap<String, String> {
        let seen = self.state.seen.lock().unwrap();
        seen.iter()
            .rev()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("no request to {path}: {seen:?}"))
            .headers
            .clone()
    }

    pub(super) fn methods(&self, path: &str) -> Vec<String> {
        let seen = self.state.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.path == path)
            .map(|s| s.method.clone())
            .collect()
    }
}

pub(super) fn record(state: &PeerState, method: &Method, path: &str, headers: &HeaderMap) {
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

pub(super) async fn echo(
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

/// `/redirect?code=307&to=URL`: a redirect, to itself without `to`.
pub(super) async fn redirect(Query(q): Query<BTreeMap<String, String>>) -> Response {
    let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(302);
    let to = q.get("to").map_or("/redirect", String::as_str);
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::LOCATION, to.to_owned())],
    )
        .into_response()
}

pub(super) async fn missing() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not found"})),
    )
        .into_response()
}

pub(super) async fn status(Query(q): Query<BTreeMap<String, String>>) -> Response {
    let code: u16 = q["code"].parse().unwrap();
    let size: usize = q.get("size").map_or(0, |s| s.parse().unwrap());
    (StatusCode::from_u16(code).unwrap(), "x".repeat(size)).into_response()
}

pub(super) async fn flaky(State(state): State<PeerState>) -> Response {
    let n = state.flaky_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= 2 {
        (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
    } else {
        axum::Json(json!({"ok": true, "calls": n})).into_response()
    }
}

pub(super) async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

pub(super) async fn deny(State(state): State<PeerState>, headers: HeaderMap) -> Response {
    record(&state, &Method::GET, "/deny", &headers);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (StatusCode::UNAUTHORIZED, format!("bad credentials: {auth}")).into_response()
}

/// Chunks of the big body: 64 KiB windows into a pseudo-random block, shifted per chunk.
pub(super) const CHUNK: usize = 64 * 1024;

pub(super) fn block() -> Bytes {
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

pub(super) fn big_chunks(total: usize) -> impl Iterator<Item = Bytes> {
    let block = block();
    (0..total.div_ceil(CHUNK)).map(move |i| {
        let start = i % 251;
        let len = CHUNK.min(total - i * CHUNK);
        block.slice(start..start + len)
    })
}

pub(super) async fn big(Query(q): Query<BTreeMap<String, usize>>) -> Response {
    let total = q["bytes"];
    let stream = futures::stream::iter(big_chunks(total).map(Ok::<_, Infallible>));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, total)
        .body(Body::from_stream(stream))
        .unwrap()
}

pub(super) async fn upload(
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

pub(super) fn harness(peer: &Peer, yaml: &str) -> Harness {
    let mut registry = Registry::new();
    crate::register_builtin(&mut registry);
    Harness::new(registry)
        .secrets(SECRETS)
        .flow(&yaml.replace("BASE", &peer.base))
}

#[track_caller]
pub(super) fn error(report: &Report, step: &str) -> String {
    report.step(step).error.clone().unwrap_or_default()
}

pub(super) fn attempts(report: &Report, step: &str) -> Vec<(u32, StepStatus)> {
    report
        .steps
        .iter()
        .filter(|s| s.step == step)
        .map(|s| (s.attempt, s.status))
        .collect()
}
