//! Webhook uploads: multipart files streamed into the run's workspace and passed as params,
//! names sanitised, `413` past the limit, and nothing left on disk by a refused request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;

use crate::hooks::tokio_stream_of;
use crate::support::{App, get, post};

const BOUNDARY: &str = "octoflow-test-boundary";

/// A `multipart/form-data` body: text fields, then files `(field, file name, bytes)`.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

const INTAKE: &str = r#"name: intake
params:
  file: { type: file, required: true }
  job_id: { type: string }
  pitstop_setting: { type: string, default: default }
concurrency: { key: "{{ params.job_id }}", policy: dedupe }
triggers:
  - webhook: { path: intake }
steps:
  - name: size
    exec: { command: [wc, -c, "{{ params.file }}"] }
"#;

fn app(max_body: usize, workers: bool) -> App {
    let builder = App::builder().flow("intake.yml", INTAKE).max_body(max_body);
    if workers { builder.workers() } else { builder }.build()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push(path.clone());
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn an_upload_is_saved_in_the_run_workspace_and_passed_as_a_param() {
    let app = app(1024 * 1024, true);
    let pdf = b"%PDF-1.4 fake pdf\n".repeat(100);
    let body = multipart(
        &[("pitstop_setting", "bookmaker_SMP"), ("note", "hi")],
        &[
            ("file", "../../up/my book.pdf", &pdf),
            ("extra", ".hidden.txt", b"x"),
        ],
    );
    let answer = app
        .send(
            post("/hooks/intake?job_id=j1")
                .header("content-type", &content_type())
                .raw(body),
        )
        .await
        .expect(202)
        .json();
    let id = answer["run_id"].as_str().unwrap();
    let run = app.finished(id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let workspace = std::fs::canonicalize(app.dir.path())
        .unwrap()
        .join("runs")
        .join(id);
    let saved = workspace.join("uploads/my book.pdf");
    assert_eq!(std::fs::read(&saved).unwrap(), pdf);
    assert_eq!(run["params"]["file"], saved.display().to_string());
    assert_eq!(run["params"]["pitstop_setting"], "bookmaker_SMP");
    assert_eq!(run["params"]["job_id"], "j1");
    assert_eq!(
        run["data"]["extra"],
        workspace.join("uploads/hidden.txt").display().to_string()
    );
    assert_eq!(run["data"]["note"], "hi");
    assert_eq!(run["trigger"]["detail"]["uploads"][0]["bytes"], pdf.len());
    let size = run["data"]["size"]["stdout"].as_str().unwrap();
    assert!(size.starts_with(&pdf.len().to_string()), "{size}");

    // The same name twice in one request: the second gets a number.
    let body = multipart(&[], &[("file", "a.pdf", b"1"), ("other", "a.pdf", b"2")]);
    let answer = app
        .send(
            post("/hooks/intake?job_id=j2")
                .header("content-type", &content_type())
                .raw(body),
        )
        .await
        .expect(202)
        .json();
    let run = app.finished(answer["run_id"].as_str().unwrap()).await;
    assert!(
        run["data"]["other"]
            .as_str()
            .unwrap()
            .ends_with("/uploads/a-1.pdf"),
        "{run}"
    );
}

#[tokio::test]
async fn an_upload_is_written_to_disk_while_it_arrives() {
    let app = app(64 * 1024 * 1024, false);
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
    );
    let chunk = vec![b'x'; 1024 * 1024];
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let router = app.router();
    let request = post("/hooks/intake?job_id=s")
        .header("content-type", &content_type())
        .build_with(Body::from_stream(tokio_stream_of(rx)));
    let pending = tokio::spawn(async move {
        use tower::ServiceExt;
        router.oneshot(request).await.unwrap()
    });
    tx.send(Ok(head.into_bytes())).await.unwrap();
    for _ in 0..4 {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    // The request is still open, and the file already holds what was sent.
    let runs = app.dir.path().join("runs");
    let mut on_disk = 0;
    for _ in 0..200 {
        on_disk = files_under(&runs)
            .iter()
            .filter(|p| p.ends_with("uploads/big.bin"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum::<u64>();
        if on_disk >= 2 * 1024 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!pending.is_finished());
    assert!(on_disk >= 2 * 1024 * 1024, "only {on_disk} bytes on disk");
    for _ in 0..16 {
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    tx.send(Ok(format!("\r\n--{BOUNDARY}--\r\n").into_bytes()))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(pending.await.unwrap().status().as_u16(), 202);
    let saved: Vec<PathBuf> = files_under(&runs)
        .into_iter()
        .filter(|p| p.ends_with("uploads/big.bin"))
        .collect();
    assert_eq!(
        std::fs::metadata(&saved[0]).unwrap().len(),
        20 * 1024 * 1024
    );
}

#[tokio::test]
async fn an_oversized_upload_is_413_and_leaves_nothing() {
    let app = app(256 * 1024, false);
    let big = vec![b'y'; 300 * 1024];
    // Streamed (no length given): refused once past the limit, the partial file removed.
    let body = multipart(&[], &[("file", "big.pdf", &big)]);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    for piece in body.chunks(16 * 1024) {
        tx.send(Ok(piece.to_vec())).await.unwrap();
    }
    drop(tx);
    let request = post("/hooks/intake?job_id=big")
        .header("content-type", &content_type())
        .build_with(Body::from_stream(tokio_stream_of(rx)));
    let response = {
        use tower::ServiceExt;
        app.router().oneshot(request).await.unwrap()
    };
    assert_eq!(response.status().as_u16(), 413);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "payload_too_large");
    assert_eq!(
        files_under(&app.dir.path().join("runs")),
        Vec::<PathBuf>::new()
    );

    // With a declared length: refused before reading.
    let body = multipart(&[], &[("file", "big.pdf", &big)]);
    app.send(
        post("/hooks/intake?job_id=big")
            .header("content-type", &content_type())
            .header("content-length", &body.len().to_string())
            .raw(body),
    )
    .await
    .expect(413);
    assert_eq!(
        files_under(&app.dir.path().join("runs")),
        Vec::<PathBuf>::new()
    );
    let runs = app.send(get("/api/v1/runs")).await.json();
    assert_eq!(runs["total"], 0);
}

#[tokio::test]
async fn refused_uploads_leave_nothing_behind() {
    let app = app(1024 * 1024, false);
    // Bad params: the upload is removed.
    let body = multipart(&[("job_id", "x")], &[("file", "a.pdf", b"data")]);
    let error = app
        .send(
            post("/hooks/intake?nope=1")
                .header("content-type", &content_type())
                .raw(body),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(error["error"]["details"]["errors"][0]["param"], "nope");
    assert_eq!(
        files_under(&app.dir.path().join("runs")),
        Vec::<PathBuf>::new()
    );

    // A malformed multipart body.
    app.send(
        post("/hooks/intake?job_id=x")
            .header("content-type", &content_type())
            .raw(b"--nope".to_vec()),
    )
    .await
    .expect(400);
    assert_eq!(
        files_under(&app.dir.path().join("runs")),
        Vec::<PathBuf>::new()
    );

    // `dedupe`: the second upload answers the first run and its file is not kept.
    let upload = |name: &str| {
        post("/hooks/intake?job_id=same")
            .header("content-type", &content_type())
            .raw(multipart(&[], &[("file", name, b"data")]))
    };
    let first = app.send(upload("first.pdf")).await.expect(202).json();
    let second = app.send(upload("second.pdf")).await.expect(200).json();
    assert_eq!(first, second);
    let left: Vec<String> = files_under(&app.dir.path().join("runs"))
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "pdf"))
        .collect();
    assert_eq!(left, ["first.pdf"]);
}

/// Regression (issue 12): a param meant for an upload could be filled by a field, the query
/// or JSON with any path (`secrets.yml`, `/etc/passwd`). A `type: file` param takes only a
/// file part, and no field may share a file part's name; each refusal starts nothing.
#[tokio::test]
async fn uploaded_file_params_take_only_uploads() {
    let app = app(1024 * 1024, false);
    let refused = |body: Vec<u8>, content_type: String, query: &'static str| {
        let app = &app;
        async move {
            app.send(
                post(&format!("/hooks/intake{query}"))
                    .header("content-type", &content_type)
                    .raw(body),
            )
            .await
            .expect(400)
            .json()
        }
    };
    let field = refused(
        multipart(&[("file", "/etc/passwd")], &[]),
        content_type(),
        "?job_id=a",
    )
    .await;
    assert_eq!(field["error"]["code"], "invalid_params");
    assert_eq!(field["error"]["details"]["errors"][0]["param"], "file");
    assert_eq!(
        field["error"]["details"]["errors"][0]["message"],
        "must be an uploaded file (a multipart part of that name), not a field, a query value or JSON"
    );
    refused(
        multipart(&[], &[("other", "x.pdf", b"1")]),
        content_type(),
        "?job_id=b&file=secrets.yml",
    )
    .await;
    refused(
        b"file=secrets.yml".to_vec(),
        "application/x-www-form-urlencoded".to_owned(),
        "?job_id=c",
    )
    .await;
    refused(
        br#"{"file": "secrets.yml", "job_id": "d"}"#.to_vec(),
        "application/json".to_owned(),
        "",
    )
    .await;
    // A file part and a field of the same name: the field may not replace the upload.
    let clash = refused(
        multipart(
            &[("note", "x"), ("file", "secrets.yml")],
            &[("file", "a.pdf", b"1")],
        ),
        content_type(),
        "?job_id=e",
    )
    .await;
    assert_eq!(clash["error"]["details"]["errors"][0]["param"], "file");
    let runs = app.send(get("/api/v1/runs")).await.expect(200).json();
    assert_eq!(runs["total"], 0, "no refused request started a run");
}
