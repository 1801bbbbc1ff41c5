//! The client commands (`flows`, `runs`, `locks`) against a fake API server, and the admin
//! helpers (`user`, `token`) against the data directory's store.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use insta::assert_snapshot;
use octoflow_core::store::{AuthStore, Role, TokenKind};
use octoflow_server::access::{digest, verify_password};
use octoflow_testkit::cli::Octo;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::peer::{Peer, serve};
use crate::{octo, with_store};

/// What the fake server saw, and the switch that lets its log stream go on.
#[derive(Default)]
struct Seen {
    auth: Mutex<Vec<String>>,
    queries: Mutex<Vec<String>>,
    bodies: Mutex<Vec<Value>>,
    go_on: Notify,
}

fn run_json(id: &str, flow: &str, status: &str) -> Value {
    json!({
        "id": id, "flow": flow, "flow_version": "abc123", "status": status,
        "params": {}, "trigger": {"kind": "manual", "detail": {"via": "api"}},
        "concurrency_key": null, "parent_run_id": null,
        "created_at": "2026-11-22T10:00:00Z", "started_at": "2026-11-22T10:00:01Z",
        "finished_at": if status == "running" { Value::Null } else { json!("2026-11-22T10:00:03Z") },
        "error": if status == "failed" { json!({"step": "fetch", "message": "HTTP 500"}) } else { Value::Null },
        "data": {}, "node": "h:1", "message": null, "progress": null
    })
}

fn api_error(status: StatusCode, code: &str, message: &str, details: &Value) -> Response {
    let body = json!({"error": {"code": code, "message": message, "details": details}});
    (status, axum::Json(body)).into_response()
}

/// Notes the `Authorization` header of every request.
async fn note_auth(State(seen): State<Arc<Seen>>, request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap().to_owned();
        seen.auth.lock().unwrap().push(value);
    }
    next.run(request).await
}

/// An SSE body: the events `before`, then — once the test says so — the events `after`.
fn sse(seen: Arc<Seen>, before: Vec<String>, after: Vec<String>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(async move {
        for event in before {
            tx.send(event).await.unwrap();
        }
        if !after.is_empty() {
            seen.go_on.notified().await;
        }
        for event in after {
            tx.send(event).await.unwrap();
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn fake_api() -> (Peer, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let router = run_routes()
        .merge(flow_and_lock_routes())
        .layer(axum::middleware::from_fn_with_state(
            seen.clone(),
            note_auth,
        ))
        .with_state(seen.clone());
    (serve(router), seen)
}

/// `/api/v1/runs…`.
fn run_routes() -> Router<Arc<Seen>> {
    Router::new()
        .route(
            "/api/v1/runs",
            get(
                async |State(seen): State<Arc<Seen>>, Query(q): Query<Vec<(String, String)>>| {
                    let text: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    seen.queries.lock().unwrap().push(text.join("&"));
                    axum::Json(json!({
                        "items": [run_json("r-2", "sync", "failed"), run_json("r-1", "sync", "succeeded")],
                        "page": 1, "per_page": 2, "total": 7
                    }))
                },
            ),
        )
        .route(
            "/api/v1/runs/{id}",
            get(async |Path(id): Path<String>| match id.as_str() {
                "r-ok" => axum::Json(run_json("r-ok", "sync", "succeeded")).into_response(),
                "r-bad" | "r-2" => {
                    let mut run = run_json(&id, "sync", "failed");
                    run["steps"] = json!([{"run_id": id, "step": "fetch", "attempt": 1,
                        "status": "failed", "started_at": "2026-11-22T10:00:01Z",
                        "finished_at": "2026-11-22T10:00:02Z", "result": null, "error": "HTTP 500"}]);
                    axum::Json(run).into_response()
                }
                _ => api_error(StatusCode::NOT_FOUND, "not_found", &format!("no run `{id}`"), &Value::Null),
            }),
        )
        .route(
            "/api/v1/runs/{id}/logs",
            get(
                async |State(seen): State<Arc<Seen>>,
                       Path(id): Path<String>,
                       Query(q): Query<Vec<(String, String)>>| {
                    let follow = q.iter().any(|(k, v)| k == "follow" && v == "true");
                    if !follow {
                        return "2026-11-22T10:00:01.000Z stdout fetch: one\n".into_response();
                    }
                    let line = |text: &str| {
                        let record = json!({"ts": "2026-11-22T10:00:01Z", "step": "fetch",
                            "attempt": 1, "stream": "stdout", "line": text});
                        format!("event: log\ndata: {record}\n\n")
                    };
                    match id.as_str() {
                        "r-bad" => sse(
                            seen,
                            vec![": keep-alive\n\n".to_owned(), line("first line")],
                            vec![line("second line"), "event: end\ndata: {\"status\":\"failed\"}\n\n".to_owned()],
                        ),
                        _ => sse(
                            seen,
                            vec!["data: plain text line\n\n".to_owned(), "event: end\ndata: succeeded\n\n".to_owned()],
                            vec![],
                        ),
                    }
                },
            ),
        )
}

/// `/api/v1/flows…` and `/api/v1/locks…`.
fn flow_and_lock_routes() -> Router<Arc<Seen>> {
    Router::new()
        .route(
            "/api/v1/flows/{name}",
            get(async |Path(name): Path<String>| {
                axum::Json(json!({"name": name, "description": "d", "source": "steps: []\n",
                    "version": "v1", "path": "flows/x.yml",
                    "params": {"batch": {"type": "integer"}, "env": {"type": "string"}},
                    "triggers": [], "problems": []}))
            }),
        )
        .route(
            "/api/v1/flows/{name}/runs",
            post(
                async |State(seen): State<Arc<Seen>>,
                       Path(name): Path<String>,
                       axum::Json(body): axum::Json<Value>| {
                    seen.bodies.lock().unwrap().push(body);
                    match name.as_str() {
                        "busy" => api_error(
                            StatusCode::CONFLICT,
                            "conflict",
                            "flow `busy` is already running and its concurrency policy is `skip`",
                            &json!({"run_id": "r-blocking"}),
                        ),
                        "same" => (StatusCode::OK, axum::Json(run_json("r-old", &name, "running"))).into_response(),
                        "broken" => api_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_flow",
                            "flow `broken` is invalid",
                            &json!({"problems": [{"file": "flows/broken.yml", "line": 3, "column": 5,
                                "path": "steps[0].reslt_key", "message": "unknown field `reslt_key`"}]}),
                        ),
                        _ => (StatusCode::CREATED, axum::Json(run_json("r-ok", &name, "queued"))).into_response(),
                    }
                },
            ),
        )
        .route(
            "/api/v1/locks",
            get(async || {
                axum::Json(json!({"items": [{"key": "sync", "run_id": "r-1", "flow": "sync",
                    "status": "running", "since": "2026-11-22T10:00:01Z", "node": "h:1"}],
                    "page": 1, "per_page": 500, "total": 1}))
            })
            .delete(async || axum::Json(json!({"released": 2}))),
        )
        .route(
            "/api/v1/locks/{key}",
            delete(async |Path(key): Path<String>| {
                if key == "a/b" {
                    axum::Json(json!({"released": 1})).into_response()
                } else {
                    api_error(StatusCode::NOT_FOUND, "not_found", &format!("no lock `{key}`"), &Value::Null)
                }
            }),
        )
}

fn client(peer: &Peer) -> Octo {
    octo().env("OCTOFLOW_SERVER", &peer.url)
}

#[test]
fn runs_list_prints_rows_for_pipes_and_json_for_scripts() {
    let (peer, seen) = fake_api();
    let out = client(&peer)
        .args([
            "runs", "list", "--flow", "sync", "--status", "failed", "--limit", "2",
        ])
        .run();
    out.success();
    assert_snapshot!(out.stdout(), @r"
    r-2	sync	failed	manual	2026-11-22 10:00:00	2.0s	step `fetch`: HTTP 500
    r-1	sync	succeeded	manual	2026-11-22 10:00:00	2.0s
    ");
    assert_eq!(
        seen.queries.lock().unwrap().as_slice(),
        ["page=1&per_page=2&flow=sync&status=failed"]
    );

    let out = client(&peer).args(["runs", "list", "--json"]).run();
    out.success();
    let answer = out.json();
    assert_eq!(answer["total"], 7);
    assert_eq!(answer["items"][0]["id"], "r-2");

    client(&peer)
        .args(["runs", "list", "--status", "broken"])
        .run()
        .code(2)
        .stderr_contains(
            "expected one of queued, running, succeeded, failed, cancelled, timed_out",
        );
}

#[test]
fn runs_show_prints_the_run_and_its_steps() {
    let (peer, _) = fake_api();
    let out = client(&peer).args(["runs", "show", "r-bad"]).run();
    out.success();
    assert_snapshot!(out.stdout(), @r"
    run       r-bad
    flow      sync (version abc123)
    status    failed
    trigger   manual (via api)
    created   2026-11-22 10:00:00
    started   2026-11-22 10:00:01
    finished  2026-11-22 10:00:03 (took 2.0s)
    node      h:1
    error     step `fetch`: HTTP 500

    STEP   ATTEMPT  STATUS  DURATION  ERROR
    fetch  1        failed  1.0s      HTTP 500
    ");
    let out = client(&peer).args(["runs", "show", "nope"]).run();
    out.code(2);
    assert_eq!(out.stderr(), "error: no run `nope`\n");
}

#[test]
fn flows_trigger_says_what_the_server_did() {
    let (peer, seen) = fake_api();
    let out = client(&peer)
        .args([
            "flows", "trigger", "sync", "-p", "batch=50", "-p", "env=007",
        ])
        .args(["--idempotency-key", "k1"])
        .run();
    out.success();
    out.stdout_is("r-ok\n");
    assert_eq!(out.stderr(), "run r-ok of flow `sync` queued\n");
    assert_eq!(
        seen.bodies.lock().unwrap()[0],
        json!({"params": {"batch": 50, "env": "007"}, "idempotency_key": "k1"}),
        "params are sent with their declared types"
    );

    let out = client(&peer).args(["flows", "trigger", "busy"]).run();
    out.failure();
    assert_eq!(
        out.stderr(),
        "error: flow `busy` is already running and its concurrency policy is `skip` (run r-blocking)\n"
    );
    assert_eq!(out.stdout(), "");

    let out = client(&peer).args(["flows", "trigger", "same"]).run();
    out.success().stdout_is("r-old\n");
    assert_eq!(
        out.stderr(),
        "flow `same` already has run r-old (running); no new run was made\n"
    );

    let out = client(&peer).args(["flows", "trigger", "broken"]).run();
    out.code(2);
    assert_eq!(
        out.stderr(),
        "error: flow `broken` is invalid\nerror: flows/broken.yml:3:5: steps[0].reslt_key: unknown field `reslt_key`\n"
    );

    let out = client(&peer)
        .args(["flows", "trigger", "sync", "-p", "batch=many"])
        .run();
    out.code(2).stderr_contains("param `batch`");
}

#[test]
fn flows_trigger_wait_follows_the_run_and_exits_like_run() {
    let (peer, _) = fake_api();
    let out = client(&peer)
        .args(["flows", "trigger", "sync", "--wait"])
        .run();
    out.success().stdout_is("r-ok\n");
    assert_eq!(
        out.stderr(),
        "run r-ok of flow `sync` queued\nplain text line\nrun r-ok succeeded in 2.0s\n"
    );
    let out = client(&peer)
        .args(["flows", "trigger", "sync", "--wait", "--quiet", "--json"])
        .run();
    out.success();
    assert_eq!(out.json()["status"], "succeeded");
    assert!(!out.stderr().contains("plain text line"));
}

#[test]
fn logs_follow_prints_lines_as_they_come_and_exits_with_the_run_status() {
    let (peer, seen) = fake_api();
    let mut child = client(&peer)
        .args(["runs", "logs", "r-bad", "--follow"])
        .spawn();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // The server holds the rest of the stream back until now: the line came as it was sent.
    assert_eq!(first, "2026-11-22T10:00:01.000Z stdout fetch: first line\n");
    seen.go_on.notify_one();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "2026-11-22T10:00:01.000Z stdout fetch: second line\n");
    let out = child.wait(Duration::from_secs(30));
    out.failure();
    assert_eq!(out.stderr(), "");

    let out = client(&peer).args(["runs", "logs", "r-ok", "-f"]).run();
    out.success().stdout_is("plain text line\n");

    let out = client(&peer).args(["runs", "logs", "r-ok"]).run();
    out.success()
        .stdout_is("2026-11-22T10:00:01.000Z stdout fetch: one\n");
}

#[test]
fn locks_are_listed_and_freed() {
    let (peer, _) = fake_api();
    client(&peer)
        .args(["locks", "list"])
        .run()
        .success()
        .stdout_is("sync\tr-1\tsync\trunning\t2026-11-22 10:00:01\th:1\n");
    let out = client(&peer).args(["locks", "rm", "a/b"]).run();
    out.success();
    assert_eq!(out.stderr(), "freed lock `a/b` (1 hold)\n");
    let out = client(&peer).args(["locks", "rm", "--all"]).run();
    out.success();
    assert_eq!(out.stderr(), "freed every lock (2 holds)\n");
    client(&peer)
        .args(["locks", "rm", "other"])
        .run()
        .code(2)
        .stderr_contains("error: no lock `other`");
    client(&peer)
        .args(["locks", "rm"])
        .run()
        .code(2)
        .stderr_contains("<KEY>");
}

#[test]
fn an_unreachable_server_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = octo().args(["runs", "list", "--server", &url]).run();
    out.code(2);
    assert_eq!(
        out.stderr(),
        format!("error: cannot reach the server at {url}: connection refused (os error 111)\n")
    );
    octo()
        .args(["runs", "list", "--server", "localhost:8080"])
        .run()
        .code(2)
        .stderr_contains("invalid server URL `localhost:8080`");
}

#[test]
fn the_token_is_sent_as_bearer_and_never_printed() {
    let (peer, seen) = fake_api();
    let secret = "oft_s3cret-for-the-test";
    let out = client(&peer)
        .env("OCTOFLOW_TOKEN", secret)
        .args(["runs", "show", "r-2"])
        .run();
    out.success();
    let out2 = client(&peer)
        .args(["flows", "trigger", "busy", "--token", secret])
        .run();
    out2.failure();
    let bearer = format!("Bearer {secret}");
    assert_eq!(*seen.auth.lock().unwrap(), [bearer.clone(), bearer]);
    client(&peer).args(["locks", "list"]).run().success();
    assert_eq!(seen.auth.lock().unwrap().len(), 2, "no token, no header");
    let help = client(&peer)
        .env("OCTOFLOW_TOKEN", secret)
        .args(["runs", "list", "--help"])
        .run();
    help.success().stdout_contains("OCTOFLOW_TOKEN");
    for o in [&out, &out2, &help] {
        assert!(!o.stdout().contains(secret) && !o.stderr().contains(secret));
    }
}

#[test]
fn client_help() {
    let out = octo().args(["runs", "--help"]).run();
    out.success();
    assert_snapshot!("runs_help", out.stdout());
    let out = octo().args(["flows", "trigger", "--help"]).run();
    out.success();
    assert_snapshot!("flows_trigger_help", out.stdout());
    let out = octo().args(["user", "add", "--help"]).run();
    out.success();
    assert_snapshot!("user_add_help", out.stdout());
    let out = octo().args(["token", "create", "--help"]).run();
    out.success();
    assert_snapshot!("token_create_help", out.stdout());
}

#[test]
fn user_add_stores_a_hashed_password() {
    let o = octo();
    let out = o
        .clone()
        .args(["user", "add", "alice", "--role", "operator"])
        .stdin("correct horse\n")
        .run();
    out.success();
    assert_eq!(out.stderr(), "user `alice` added with role operator\n");
    let user = with_store(&o, async |s| s.user("alice").await.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(user.role, Role::Operator);
    assert!(!user.password_hash.contains("correct horse"));
    assert!(verify_password("correct horse", &user.password_hash));

    let out = o
        .clone()
        .args([
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin("another one\n")
        .run();
    out.success();
    assert_eq!(
        out.stderr(),
        "user `alice` updated: role admin, new password; 0 session(s) ended\n"
    );
    o.clone()
        .args(["user", "list"])
        .run()
        .success()
        .stdout_contains("alice\tadmin\t");
    o.clone()
        .args(["user", "add", "bob", "--role", "viewer"])
        .run()
        .code(2)
        .stderr_contains("error: no password on stdin");
    o.clone()
        .args(["user", "add", "bob", "--role", "root"])
        .stdin("x\n")
        .run()
        .code(2)
        .stderr_contains("expected one of viewer, operator, admin");
}

#[test]
fn token_create_prints_the_secret_once_and_stores_its_digest() {
    let o = octo();
    let out = o
        .clone()
        .args([
            "token",
            "create",
            "--role",
            "operator",
            "--name",
            "ci",
            "--expires",
            "30d",
        ])
        .run();
    out.success();
    let secret = out.stdout().trim_end().to_owned();
    assert!(secret.starts_with("oft_"), "{secret}");
    assert!(!out.stderr().contains(&secret));
    let token = with_store(&o, async |s| {
        s.token_by_digest(&digest(&secret)).await.unwrap()
    })
    .unwrap()
    .expect("the token is found by the digest of its secret");
    assert_eq!(token.name, "ci");
    assert_eq!(token.role, Role::Operator);
    assert_eq!(token.kind, TokenKind::Api);
    let days = (token.expires_at.unwrap() - token.created_at).num_days();
    assert_eq!(days, 30);
    assert!(
        out.stderr().starts_with(&format!(
            "token {} created: role operator, valid until ",
            token.id
        )),
        "{}",
        out.stderr()
    );

    let list = o.clone().args(["token", "list"]).run();
    list.success()
        .stdout_contains(&format!("{}\tci\toperator\tapi\t", token.id));
    assert!(list.stdout().ends_with("\tactive\n"));
    assert!(!list.stdout().contains(&secret));

    let out = o.clone().args(["token", "revoke", &token.id]).run();
    out.success();
    assert_eq!(out.stderr(), format!("token {} revoked\n", token.id));
    let revoked = with_store(&o, async |s| s.tokens().await.unwrap()).unwrap();
    assert!(revoked[0].revoked);
    o.clone()
        .args(["token", "revoke", "tok_nope"])
        .run()
        .code(2)
        .stderr_contains("error: no token `tok_nope`");
}

#[test]
fn the_commands_work_against_a_real_server() {
    let flow = "params:\n  who: { type: string, default: world }\nsteps:\n  - name: greet\n    exec: { command: [echo, 'hello {{ params.who }}'] }\n";
    let o = octo().flow("hello", flow);
    // A token makes the server ask for one on every request.
    let out = o
        .clone()
        .args(["token", "create", "--role", "operator"])
        .run();
    out.success();
    let secret = out.stdout().trim_end().to_owned();
    let server = crate::server::Server::start(&o, &[]);
    let anonymous = o.clone().env("OCTOFLOW_SERVER", &server.url);
    anonymous
        .clone()
        .args(["runs", "list"])
        .run()
        .code(2)
        .stderr_contains("; give a token with --token or OCTOFLOW_TOKEN");
    let cli = anonymous.env("OCTOFLOW_TOKEN", &secret);
    let run = |args: &[&str]| cli.clone().args(args).run();

    let out = run(&["flows", "trigger", "hello", "-p", "who=cli", "--wait"]);
    out.success().stderr_contains(" succeeded in ");
    let id = out.stdout().trim_end().to_owned();
    out.stderr_contains(&format!("run {id} of flow `hello` queued\n"))
        .stderr_contains("stdout greet: hello cli\n");

    run(&["runs", "show", &id])
        .success()
        .stdout_contains("status    succeeded\n")
        .stdout_contains("params    {\"who\":\"cli\"}\n");
    let list = run(&["runs", "list", "--flow", "hello", "--status", "succeeded"]);
    list.success();
    assert!(
        list.stdout()
            .starts_with(&format!("{id}\thello\tsucceeded\tmanual\t")),
        "{}",
        list.stdout()
    );
    run(&["runs", "logs", &id, "--follow"])
        .success()
        .stdout_contains(" stdout greet: hello cli\n");
    run(&["runs", "logs", &id])
        .success()
        .stdout_contains(" stdout greet: hello cli\n");
    run(&["flows", "list"]).success().stdout_contains("hello\t");
    run(&["flows", "show", "hello"])
        .success()
        .stdout_contains("who: string = \"world\"");
    let bad = run(&["flows", "trigger", "hello", "-p", "nope=1"]);
    bad.code(2);
    assert!(
        bad.stderr()
            .starts_with("error: invalid params: param `nope`")
            && bad.stderr().lines().count() == 1,
        "{}",
        bad.stderr()
    );
    let retried = run(&["runs", "retry", &id, "--wait", "-q"]);
    retried.success();
    assert_ne!(retried.stdout().trim_end(), id);
    run(&["runs", "cancel", &id])
        .failure()
        .stderr_contains("has already ended");
    run(&["runs", "show", "not-a-run"])
        .code(2)
        .stderr_contains("error: no run `not-a-run`");
    let locks = run(&["locks", "list"]);
    locks.success();
    assert_eq!(locks.stdout(), "");
    for out in [&list, &locks] {
        assert!(!out.stdout().contains(&secret) && !out.stderr().contains(&secret));
    }
}
