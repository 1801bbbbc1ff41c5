//! Webhook bodies under their bounds: the size of a body held in memory, the files and
//! fields of an upload, a body that stalls, an `hmac` upload kept out of the run's workspace
//! until its signature holds. Each refusal answers at once, runs nothing and leaves nothing.
//! And the in-flight slots of each hook: a hook whose slots are held by stalled uploads
//! leaves the others answering, and callers that fail the check never take a slot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use hmac::{KeyInit, Mac};
use octoflow_server::{BodyLimits, HookSettings};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::hooks::tokio_stream_of;
use crate::support::{App, Req, get, post};

const BOUNDARY: &str = "limits-boundary";

const FLOW: &str = r"name: intake
triggers:
  - webhook: { path: open }
  - webhook: { path: signed, auth: { hmac: { secret: gh, header: X-Hub-Signature-256 } } }
steps:
  - name: a
    set_fact: { value: 1 }
";

fn app(limits: BodyLimits) -> App {
    App::builder()
        .flow("intake.yml", FLOW)
        .secrets("- { name: gh, type: value, value: gh-key }\n")
        .limits(limits)
        .build()
}

fn small() -> BodyLimits {
    BodyLimits {
        body: 64 * 1024,
        files: 3,
        read_timeout: Duration::from_millis(300),
        ..BodyLimits::default()
    }
}

fn part(head: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {head}\r\n\r\n").into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

fn end() -> Vec<u8> {
    format!("--{BOUNDARY}--\r\n").into_bytes()
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Everything under `runs/`.
fn left(app: &App) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(entry.path());
            if entry.path().is_dir() {
                walk(&entry.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.dir.path().join("runs"), &mut out);
    out
}

async fn no_run(app: &App) {
    let runs = app.send(get("/api/v1/runs")).await.json();
    assert_eq!(runs["total"], 0, "{runs}");
    assert_eq!(left(app), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_body_held_in_memory_is_bounded_by_max_body_bytes() {
    let app = app(small());
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(70 * 1024));
    let refused = app
        .send(
            post("/hooks/open")
                .header("content-type", "application/json")
                .raw(big.into_bytes()),
        )
        .await
        .expect(413)
        .json();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("`limits.max_body_bytes`"), "{message}");
    // Streamed without a length: cut off once past the bound.
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    for _ in 0..20 {
        tx.send(Ok(vec![b' '; 8 * 1024])).await.unwrap();
    }
    drop(tx);
    let request = post("/hooks/open")
        .header("content-type", "text/plain")
        .build_with(Body::from_stream(tokio_stream_of(rx)));
    let answer = app.router().oneshot(request).await.unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    no_run(&app).await;
    app.send(
        post("/hooks/open")
            .header("content-type", "application/json")
            .raw(br#"{"fits": true}"#.to_vec()),
    )
    .await
    .expect(202);
}

#[tokio::test]
async fn an_upload_with_too_many_files_or_fields_is_refused() {
    let app = app(small());
    let mut body = Vec::new();
    for n in 0..4 {
        body.extend(part(
            &format!("name=\"f{n}\"; filename=\"f{n}.txt\""),
            b"data",
        ));
    }
    refused_upload(&app, body, "more than 3 files (`limits.max_upload_files`)").await;

    // 10,000 text parts: refused at the 1,001st, without reading the rest.
    let mut body = Vec::new();
    for n in 0..10_000 {
        body.extend(part(&format!("name=\"k{n}\""), b"v"));
    }
    refused_upload(&app, body, "more than 1000 text fields").await;
}

#[tokio::test]
async fn ten_thousand_file_parts_are_refused_with_the_default_limit() {
    let app = app(BodyLimits::default());
    assert_eq!(BodyLimits::default().files, 100);
    let mut body = Vec::new();
    for n in 0..10_000 {
        body.extend(part(
            &format!("name=\"f{n}\"; filename=\"f{n}.txt\""),
            b"data",
        ));
    }
    refused_upload(
        &app,
        body,
        "more than 100 files (`limits.max_upload_files`)",
    )
    .await;
}

/// Posts the multipart `parts` (then the closing boundary): `413` saying `why`, no run left.
async fn refused_upload(app: &App, mut parts: Vec<u8>, why: &str) {
    parts.extend(end());
    let refused = app
        .send(
            post("/hooks/open")
                .header("content-type", &multipart_type())
                .raw(parts),
        )
        .await
        .expect(413)
        .json();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(why), "{message}");
    no_run(app).await;
}

#[tokio::test]
async fn a_body_that_stalls_is_408_and_leaves_nothing() {
    let app = app(small());
    for content_type in ["application/json".to_owned(), multipart_type()] {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let first = if content_type.starts_with("multipart") {
            let mut head = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n"
            )
            .into_bytes();
            head.extend_from_slice(b"some bytes");
            head
        } else {
            b"{\"a\": ".to_vec()
        };
        tx.send(Ok(first)).await.unwrap();
        let request = post("/hooks/open")
            .header("content-type", &content_type)
            .build_with(Body::from_stream(tokio_stream_of(rx)));
        let answer = tokio::time::timeout(Duration::from_secs(10), app.router().oneshot(request))
            .await
            .expect("answered without the rest of the body")
            .unwrap();
        assert_eq!(answer.status().as_u16(), 408, "{content_type}");
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .unwrap();
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["error"]["code"], "request_timeout");
        drop(tx);
        no_run(&app).await;
    }
}

fn signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"gh-key").unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn an_hmac_upload_reaches_the_run_only_once_its_signature_holds() {
    let app = app(BodyLimits::default());
    let mut body = part("name=\"doc\"; filename=\"doc.pdf\"", &vec![b'p'; 64 * 1024]);
    body.extend(end());

    // While it arrives, its file is outside every run's workspace.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (head, tail) = body.split_at(body.len() / 2);
    tx.send(Ok(head.to_vec())).await.unwrap();
    let request = post("/hooks/signed")
        .header("content-type", &multipart_type())
        .header("x-hub-signature-256", &signature(&body))
        .build_with(Body::from_stream(tokio_stream_of(rx)));
    let router = app.router();
    let pending = tokio::spawn(async move { router.oneshot(request).await.unwrap() });
    let runs = app.dir.path().join("runs");
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = left(&app);
        if seen.iter().any(|p| p.ends_with("doc.pdf")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let file = seen
        .iter()
        .find(|p| p.ends_with("doc.pdf"))
        .expect("written as it arrives");
    let top = file
        .strip_prefix(&runs)
        .unwrap()
        .components()
        .next()
        .unwrap();
    assert!(
        top.as_os_str()
            .to_string_lossy()
            .starts_with(".unverified-"),
        "{}",
        file.display()
    );
    tx.send(Ok(tail.to_vec())).await.unwrap();
    drop(tx);
    let answer = pending.await.unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .unwrap();
    let id = serde_json::from_slice::<Value>(&body).unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now: Vec<PathBuf> = left(&app);
    assert!(
        now.contains(&runs.join(&id).join("uploads/doc.pdf")),
        "{now:?}"
    );
    assert!(
        !now.iter()
            .any(|p| p.to_string_lossy().contains(".unverified-")),
        "{now:?}"
    );

    // A wrong signature: refused, and nothing of it anywhere.
    let mut forged = part("name=\"doc\"; filename=\"evil.pdf\"", b"evil");
    forged.extend(end());
    app.send(
        post("/hooks/signed")
            .header("content-type", &multipart_type())
            .header("x-hub-signature-256", &signature(b"something else"))
            .raw(forged),
    )
    .await
    .expect(401);
    let after = left(&app);
    assert!(
        !after.iter().any(|p| p.to_string_lossy().contains("evil")),
        "{after:?}"
    );
}

const NOISY: &str = r"name: noisy
triggers:
  - webhook: { path: noisy }
  - webhook: { path: guarded, auth: { token: { secret: hook_token } } }
steps:
  - name: a
    set_fact: { value: 1 }
";

const QUIET: &str = r"name: quiet
triggers:
  - webhook: { path: quiet }
steps:
  - name: a
    set_fact: { value: 1 }
";

/// A server whose hooks each have `per_hook` in-flight slots.
fn slots_app(per_hook: usize) -> App {
    App::builder()
        .flow("noisy.yml", NOISY)
        .flow("quiet.yml", QUIET)
        .secrets("- { name: hook_token, type: token, token: tok-123 }\n")
        .hooks(HookSettings {
            max_in_flight_per_hook: per_hook,
            ..HookSettings::default()
        })
        .build()
}

/// An upload to `request` that sends the start of file `name` and then stalls: the sender
/// of the rest, and the answer to come.
async fn stalled_upload(
    app: &App,
    request: Req,
    name: &str,
) -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    tokio::task::JoinHandle<axum::response::Response>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let head = part(&format!("name=\"{name}\"; filename=\"{name}\""), b"");
    // The part's start only: its bytes, then nothing (no closing CRLF, no boundary).
    tx.send(Ok(head[..head.len() - 2].to_vec())).await.unwrap();
    tx.send(Ok(b"first bytes".to_vec())).await.unwrap();
    let request = request
        .header("content-type", &multipart_type())
        .build_with(Body::from_stream(tokio_stream_of(rx)));
    let router = app.router();
    let answer = tokio::spawn(async move { router.oneshot(request).await.unwrap() });
    (tx, answer)
}

/// Waits (at most 10 s) until files named `names` are being written under `runs/`: their
/// requests are past the caller check and hold their slots.
async fn writing(app: &App, names: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = left(app);
        if names
            .iter()
            .all(|name| seen.iter().any(|p| p.ends_with(name)))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{names:?} not written: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends the rest of a stalled upload and expects `202`.
async fn finish(
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    answer: tokio::task::JoinHandle<axum::response::Response>,
) {
    let mut rest = b" and the rest\r\n".to_vec();
    rest.extend(end());
    tx.send(Ok(rest)).await.unwrap();
    drop(tx);
    assert_eq!(answer.await.unwrap().status().as_u16(), 202);
}

#[tokio::test]
async fn a_hook_whose_slots_are_held_by_stalled_uploads_leaves_the_others_answering() {
    let app = slots_app(2);
    let (tx1, held1) = stalled_upload(&app, post("/hooks/noisy"), "one.bin").await;
    let (tx2, held2) = stalled_upload(&app, post("/hooks/noisy"), "two.bin").await;
    writing(&app, &["one.bin", "two.bin"]).await;

    // The noisy hook is full: refused at once, told to come back.
    let refused = app
        .send(post("/hooks/noisy").json(&json!({})))
        .await
        .expect(429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("too many requests to this webhook at once"),
        "{message}"
    );
    // Another hook still answers, several times over.
    for _ in 0..3 {
        app.send(post("/hooks/quiet").json(&json!({})))
            .await
            .expect(202);
    }

    finish(tx1, held1).await;
    finish(tx2, held2).await;
    app.send(post("/hooks/noisy").json(&json!({})))
        .await
        .expect(202);
    let runs = app.send(get("/api/v1/runs")).await.json();
    assert_eq!(runs["total"], 6, "{runs}");
}

#[tokio::test]
async fn callers_that_fail_the_check_take_no_slot() {
    let app = slots_app(1);
    let good = || post("/hooks/guarded").header("x-token", "tok-123");
    // The hook's only slot, held by a stalled upload of a right caller.
    let (tx, held) = stalled_upload(&app, good(), "held.bin").await;
    writing(&app, &["held.bin"]).await;
    app.send(good().json(&json!({}))).await.expect(429);

    // Wrong or missing tokens are refused by the check, which comes before the slots: a
    // `401` each, never a `429`, however many at once.
    let mut refused = Vec::new();
    for n in 0..20 {
        let request = match n % 2 {
            0 => post("/hooks/guarded").header("x-token", &format!("tok-{n}")),
            _ => post("/hooks/guarded"),
        }
        .json(&json!({"n": n}))
        .build();
        let router = app.router();
        refused.push(tokio::spawn(async move {
            router.oneshot(request).await.unwrap().status().as_u16()
        }));
    }
    for answer in refused {
        assert_eq!(answer.await.unwrap(), 401);
    }

    // None of them kept anything: once the upload ends, its slot is there for the next.
    finish(tx, held).await;
    app.send(good().json(&json!({}))).await.expect(202);
    let runs = app.send(get("/api/v1/runs")).await.json();
    assert_eq!(runs["total"], 2, "{runs}");
}
