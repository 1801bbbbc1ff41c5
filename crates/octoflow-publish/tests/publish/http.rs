//! HTTP sinks against an in-process axum peer: batches posted as JSON arrays with headers
//! rendered from secrets and a stable `Idempotency-Key`, refused statuses re-sent, a 4xx
//! failing at once, cancel while a batch waits. The peer also serves Avro schemas (and
//! counts how often) for `avro.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use octoflow_core::store::RunStatus;
use serde_json::{Value, json};

use crate::common::{harness, records};

/// What the peer saw of one `POST`.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Post {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct PeerState {
    posts: Arc<Mutex<Vec<Post>>>,
    refuse_first: Arc<AtomicU32>,
    schema_fetches: Arc<AtomicU32>,
    schema: Arc<Mutex<String>>,
}

/// A local HTTP server for one test.
pub(crate) struct Peer {
    pub(crate) base: String,
    state: PeerState,
}

impl Peer {
    pub(crate) async fn start() -> Self {
        let state = PeerState::default();
        let app = Router::new()
            .route("/in", post(accept))
            .route(
                "/bad",
                post(|| async { (StatusCode::BAD_REQUEST, "no such list") }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    StatusCode::OK
                }),
            )
            .route("/schema.avsc", get(schema))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    pub(crate) fn posts(&self) -> Vec<Post> {
        self.state.posts.lock().unwrap().clone()
    }

    /// Answers the next `n` posts to `/in` with 503.
    fn refuse_first(&self, n: u32) {
        self.state.refuse_first.store(n, Ordering::SeqCst);
    }

    /// Serves `schema` at `/schema.avsc`.
    pub(crate) fn serve_schema(&self, schema: &Value) {
        *self.state.schema.lock().unwrap() = schema.to_string();
    }

    pub(crate) fn schema_fetches(&self) -> u32 {
        self.state.schema_fetches.load(Ordering::SeqCst)
    }

    /// A sink `partner` posting to `path`.
    pub(crate) fn sinks(&self, path: &str) -> Value {
        json!({"partner": {"kind": "http", "url": format!("{}{path}", self.base),
                           "headers": {"X-Key": "{{ secrets.p.token }}"}}})
    }
}

async fn accept(State(state): State<PeerState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    state.posts.lock().unwrap().push(Post {
        headers,
        body: body.to_vec(),
    });
    let refuse = state
        .refuse_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn schema(State(state): State<PeerState>) -> impl IntoResponse {
    state.schema_fetches.fetch_add(1, Ordering::SeqCst);
    let schema = state.schema.lock().unwrap().clone();
    if schema.is_empty() {
        (StatusCode::NOT_FOUND, String::new())
    } else {
        (StatusCode::OK, schema)
    }
}

/// The secret the sink's header is rendered from.
pub(crate) const SECRETS: &str = "- { name: p, type: token, token: tok-123 }";

#[tokio::test]
async fn each_batch_is_one_post_of_a_json_array() {
    let peer = Peer::start().await;
    let report = harness(peer.sinks("/in"), "sink: partner, batch_size: 2")
        .secrets(SECRETS)
        .input(records(5))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 5, "batches": 3}));
    let posts = peer.posts();
    assert_eq!(posts.len(), 3);
    let all = records(5);
    assert_eq!(posts[0].json(), json!([all[0], all[1]]));
    assert_eq!(posts[2].json(), json!([all[4]]));
    assert_eq!(posts[0].header("x-key"), "tok-123");
    assert_eq!(posts[0].header("content-type"), "application/json");
    assert_eq!(
        posts[2].header("idempotency-key"),
        format!("{}:send:1:batch-3", report.run.id)
    );
    let log = report.log_text("send");
    assert!(!log.contains("patron"), "the log shows a payload: {log}");
}

#[tokio::test]
async fn refused_batches_are_sent_again() {
    let peer = Peer::start().await;
    peer.refuse_first(2);
    let report = harness(peer.sinks("/in"), "sink: partner, retry: {delay: 10ms}")
        .secrets(SECRETS)
        .input(records(3))
        .run()
        .await;
    report
        .assert_status(RunStatus::Succeeded)
        .assert_data("send", json!({"published": 3, "batches": 1}));
    assert_eq!(peer.posts().len(), 3);
    let log = report.log_text("send");
    assert!(
        log.contains("3 records published to sink `partner` (http)"),
        "{log}"
    );
    assert!(log.contains("6 re-sent"), "{log}");
}

#[tokio::test]
async fn a_client_error_fails_at_once() {
    let peer = Peer::start().await;
    let report = harness(peer.sinks("/bad"), "sink: partner")
        .secrets(SECRETS)
        .input(records(3))
        .run()
        .await;
    report.assert_status(RunStatus::Failed);
    assert_eq!(
        report.step("send").error.as_deref(),
        Some("sink `partner` refused the batch: status 400: no such list")
    );
}

#[tokio::test]
async fn cancel_stops_a_waiting_batch() {
    let peer = Peer::start().await;
    let started = Instant::now();
    let report = harness(peer.sinks("/slow"), "sink: partner")
        .secrets(SECRETS)
        .input(records(3))
        .cancel_after(Duration::from_millis(300))
        .run()
        .await;
    report.assert_status(RunStatus::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_step_timeout_stops_a_waiting_batch() {
    let peer = Peer::start().await;
    let sinks = peer.sinks("/slow");
    let yaml = "steps:\n  - name: send\n    timeout: 300ms\n    publish: { sink: partner, data_key: __input__ }\n";
    let started = Instant::now();
    let report = octoflow_testkit::harness::Harness::new(crate::common::registry(sinks))
        .flow(yaml)
        .secrets(SECRETS)
        .input(records(3))
        .run()
        .await;
    report
        .assert_status(RunStatus::Failed)
        .assert_step("send", octoflow_core::store::StepStatus::TimedOut);
    assert_eq!(
        report.step("send").error.as_deref(),
        Some("timed out after 300ms")
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
