//! Webhooks against real `octoflow serve` processes: the pitstop round trip of
//! `examples/pitstop` (SCENARIOS §1) between two nodes, refused calls that run nothing and
//! leave nothing on disk, and a large upload streamed with bounded memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use octoflow_testkit::cli::Octo;
use serde_json::{Value, json};

use crate::octo;
use crate::server::Server;

/// A path in `examples/pitstop`.
fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/pitstop")
        .join(rel)
}

/// A working directory holding a copy of the example node's `data/`.
fn node(name: &str) -> Octo {
    let mut octo = octo().env("PITSTOP_CLI", example("pitstop/bin/preflight.sh"));
    let root = example(&format!("{name}/data"));
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            octo = octo.file(&format!("data/{rel}"), &text);
        }
    }
    octo
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Waits (at most 20 s) for a file to exist; returns its text.
async fn appears(path: &Path) -> String {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not appear", path.display());
}

/// Entries under `data/runs/` of a node.
fn workspaces(octo: &Octo) -> Vec<String> {
    std::fs::read_dir(octo.path("data/runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sends a PDF to the bookmaker node's `send_to_pitstop`; returns the run once ended.
async fn send(bookmaker: &Server, pitstop: &Server, file: &str, job_id: &str) -> Value {
    let params = json!({
        "file": file,
        "job_id": job_id,
        "pitstop_url": pitstop.url,
        "callback_url": format!("{}/hooks/from_pitstop", bookmaker.url),
        "imprint": "pine",
    });
    let (code, run) = bookmaker
        .post(
            "/api/v1/flows/send_to_pitstop/runs",
            &json!({ "params": params }),
        )
        .await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap();
    bookmaker.until(id, &["succeeded", "failed"]).await
}

/// A multipart upload straight to pitstop's hook.
async fn upload(pitstop: &Server, auth: &str, bytes: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("direct.pdf"),
    );
    let answer = pitstop
        .http
        .post(format!(
            "{}/hooks/to_pitstop?job_id=direct&callback_url=http://127.0.0.1:9/none",
            pitstop.url
        ))
        .header("authorization", auth)
        // A refused upload's connection is closed by the server before the body is read;
        // it must not go back to the client's pool for the next request.
        .header("connection", "close")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_goes_to_pitstop_and_its_result_comes_back() {
    let pitstop_node = node("pitstop").file(
        "data/config.yml",
        "limits: { max_upload_bytes: 256KiB }\nsteps: { env_pass: [PITSTOP_CLI] }\n",
    );
    let pitstop = Server::start(&pitstop_node, &[]);
    let bookmaker = Server::start(&node("bookmaker"), &[]);
    let book = bookmaker.octo.path("data/incoming/9781250000001.pdf");
    let pdf = std::fs::read(&book).unwrap();

    // A good book: the result and `success` land beside each other on bookmaker.
    let run = send(&bookmaker, &pitstop, "incoming/9781250000001.pdf", "job-1").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let status = bookmaker
        .octo
        .path("data/from_pitstop/job-1/pitstop_status.json");
    let text = appears(&status).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"pitstop_status": "success"})
    );
    let returned = bookmaker
        .octo
        .path("data/from_pitstop/job-1/9781250000001.pdf");
    assert_eq!(std::fs::read(returned).unwrap(), pdf);
    let (_, runs) = pitstop.get("/api/v1/runs?flow=to_pitstop").await;
    let remote = &runs["items"][0];
    assert_eq!(remote["params"]["pitstop_setting"], "bookmaker_cropmarks");
    assert_eq!(remote["trigger"]["detail"]["by"], "bookmaker");
    assert!(
        remote["params"]["file"]
            .as_str()
            .unwrap()
            .ends_with("/uploads/9781250000001.pdf")
    );

    // A broken book: the status says what went wrong.
    std::fs::write(bookmaker.octo.path("data/incoming/broken.pdf"), &pdf).unwrap();
    let run = send(&bookmaker, &pitstop, "incoming/broken.pdf", "job-2").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let text = appears(
        &bookmaker
            .octo
            .path("data/from_pitstop/job-2/pitstop_status.json"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"pitstop_status": "error: preflight exited 1 with 1 errors and 0 failures"})
    );

    // Wrong credentials: 401, nothing runs, nothing is written.
    let (_, before) = pitstop.get("/api/v1/runs").await;
    let kept = workspaces(&pitstop.octo);
    let (code, error) = upload(&pitstop, &basic("bookmaker", "wrong"), pdf.clone()).await;
    assert_eq!(code, 401, "{error}");
    let (code, _) = upload(&pitstop, "", pdf.clone()).await;
    assert_eq!(code, 401);
    // Too large: 413, nothing runs, nothing stays on disk.
    let good = basic("bookmaker", "bookmaker-demo-password");
    let (code, error) = upload(&pitstop, &good, vec![b'%'; 300 * 1024]).await;
    assert_eq!(code, 413, "{error}");
    assert_eq!(error["error"]["code"], "payload_too_large");
    let (_, after) = pitstop.get("/api/v1/runs").await;
    assert_eq!(before["total"], after["total"]);
    assert_eq!(workspaces(&pitstop.octo), kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_upload_is_streamed_with_bounded_memory() {
    let sink = "name: sink\nparams: { file: { type: string } }\ntriggers:\n  - webhook: { path: sink }\nsteps:\n  - name: done\n    set_fact: { value: 1 }\n";
    let server = Server::start(&octo().flow("sink", sink), &[]);
    let peak = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    // Warm up the paths a request takes, then measure the peak around a 20 MB upload.
    let small = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![1; 1024]).file_name("a.bin"),
    );
    let answer = server
        .http
        .post(format!("{}/hooks/sink", server.url))
        .multipart(small)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let before = peak();
    let size = 20 * 1024 * 1024;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![7u8; size]).file_name("big.bin"),
    );
    let answer = server
        .http
        .post(format!("{}/hooks/sink", server.url))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let run: Value = answer.json().await.unwrap();
    let grown = peak().saturating_sub(before);
    let run = server
        .until(run["run_id"].as_str().unwrap(), &["succeeded"])
        .await;
    let saved = PathBuf::from(run["params"]["file"].as_str().unwrap());
    assert_eq!(std::fs::metadata(saved).unwrap().len(), size as u64);
    assert!(
        grown < 8 * 1024 * 1024,
        "the server's peak memory grew by {grown} bytes for a {size}-byte upload"
    );
}
