//! Webhooks against real `octoflow serve` processes: the pitstop round trip of
//! `examples/pitstop` (SCENARIOS §1) between two nodes — a good book comes back as
//! `done/<isbn>_POD.pdf`, the profile is chosen by imprint, project or default, an unknown
//! profile falls back to the default one, and a broken book, a refused upload, a preflight
//! that cannot run and a stopped pitstop each end in `done/PITSTOP_ERROR.txt` and a failure
//! notice — refused calls that run nothing and leave nothing on disk, and a large upload
//! streamed with bounded memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use octoflow_testkit::cli::Octo;
use serde_json::{Value, json};

use crate::mail::Mailbox;
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

/// The bookmaker node, its example config sending mail to `smtp_url` instead of port 25.
fn bookmaker(smtp_url: &str) -> Octo {
    let config = std::fs::read_to_string(example("bookmaker/data/config.yml")).unwrap();
    let ours = config.replace("smtp://127.0.0.1:25", smtp_url);
    assert_ne!(ours, config, "the example's mail server moved");
    node("bookmaker").file("data/config.yml", &ours)
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

/// Starts a flow through the API; returns the run once ended.
async fn run(server: &Server, flow: &str, params: Value) -> Value {
    let (code, run) = server
        .post(
            &format!("/api/v1/flows/{flow}/runs"),
            &json!({ "params": params }),
        )
        .await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap();
    server.until(id, &["succeeded", "failed"]).await
}

/// Sends a PDF to pitstop with bookmaker's `send_to_pitstop` (imprint `pine`, so profile
/// `bookmaker_cropmarks` unless `pitstop_dir` says otherwise); returns the ended run.
async fn send(
    bookmaker: &Server,
    pitstop_url: &str,
    file: &str,
    job_id: &str,
    pitstop_dir: &str,
) -> Value {
    let choice = json!({"imprint": "pine", "pitstop_dir": pitstop_dir});
    send_with(bookmaker, pitstop_url, file, job_id, &choice).await
}

/// As [`send`], with the params that choose the profile (`pitstop_dir`, `imprint`,
/// `project`) given in `choice`.
async fn send_with(
    bookmaker: &Server,
    pitstop_url: &str,
    file: &str,
    job_id: &str,
    choice: &Value,
) -> Value {
    let mut params = json!({
        "file": file,
        "job_id": job_id,
        "pitstop_url": pitstop_url,
        "callback_url": format!("{}/hooks/from_pitstop", bookmaker.url),
    });
    for (key, value) in choice.as_object().unwrap() {
        params[key] = value.clone();
    }
    run(bookmaker, "send_to_pitstop", params).await
}

/// Runs bookmaker's `get_pitstop_output` with short checks; returns the ended run.
async fn collect(
    bookmaker: &Server,
    isbn: &str,
    job_id: &str,
    interval: &str,
    checks: u32,
) -> Value {
    let params = json!({"isbn": isbn, "job_id": job_id, "interval": interval, "checks": checks});
    run(bookmaker, "get_pitstop_output", params).await
}

/// The text of bookmaker's `done/PITSTOP_ERROR.txt`.
fn error_file(bookmaker: &Server) -> String {
    std::fs::read_to_string(bookmaker.octo.path("data/done/PITSTOP_ERROR.txt")).unwrap()
}

/// The step record of a run fetched with its steps.
fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {run}"))
}

/// A run with its steps.
async fn detail(server: &Server, run: &Value) -> Value {
    let (code, run) = server
        .get(&format!("/api/v1/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(code, 200, "{run}");
    run
}

/// A mailed notice: its subject and the error file attached.
#[track_caller]
fn assert_notice(message: &str, subject: &str) {
    assert!(
        message.contains(&format!("Subject: {subject}")),
        "{message}"
    );
    assert!(
        message.contains("To: Production <production@example.org>"),
        "{message}"
    );
    assert!(
        message.contains("filename=\"PITSTOP_ERROR.txt\""),
        "{message}"
    );
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
            "{}/hooks/to_pitstop?pitstop_setting=bookmaker_SMP&job_id=direct&callback_url=http://127.0.0.1:9/none",
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

/// The pitstop node, refusing uploads past 256 KiB.
fn pitstop() -> Server {
    let octo = node("pitstop").file(
        "data/config.yml",
        "limits: { max_upload_bytes: 256KiB }\nsteps: { env_pass: [PITSTOP_CLI] }\n",
    );
    Server::start(&octo, &[])
}

/// Both nodes; bookmaker mails to `mail`.
fn nodes(mail: &Mailbox) -> (Server, Server) {
    (pitstop(), Server::start(&bookmaker(&mail.url()), &[]))
}

/// The stand-in book of the example.
fn book(bookmaker: &Server) -> Vec<u8> {
    std::fs::read(bookmaker.octo.path("data/incoming/9781250000001.pdf")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_goes_to_pitstop_and_its_result_comes_back() {
    let Some(mail) = Mailbox::start().await else {
        return;
    };
    let (pitstop, bookmaker) = nodes(&mail);
    let pdf = book(&bookmaker);

    // A good book: the result and `success` land beside each other on bookmaker, and
    // get_pitstop_output puts the PDF in done/.
    let sent = send(
        &bookmaker,
        &pitstop.url,
        "incoming/9781250000001.pdf",
        "job-1",
        "",
    )
    .await;
    assert_eq!(sent["status"], "succeeded", "{sent}");
    let got = collect(&bookmaker, "9781250000001", "job-1", "100ms", 100).await;
    assert_eq!(got["status"], "succeeded", "{got}");
    let status = bookmaker
        .octo
        .path("data/from_pitstop/job-1/pitstop_status.json");
    assert_eq!(
        serde_json::from_str::<Value>(&appears(&status).await).unwrap(),
        json!({"pitstop_status": "success"})
    );
    let delivered = bookmaker.octo.path("data/done/9781250000001_POD.pdf");
    assert_eq!(std::fs::read(delivered).unwrap(), pdf);
    assert!(!bookmaker.octo.path("data/done/PITSTOP_ERROR.txt").exists());
    let (_, runs) = pitstop.get("/api/v1/runs?flow=to_pitstop").await;
    let remote = detail(&pitstop, &runs["items"][0]).await;
    assert_eq!(remote["params"]["pitstop_setting"], "bookmaker_cropmarks");
    assert_eq!(remote["trigger"]["detail"]["by"], "bookmaker");
    assert!(
        remote["params"]["file"]
            .as_str()
            .unwrap()
            .ends_with("/uploads/9781250000001.pdf")
    );
    // The status comes from the task report the CLI wrote, read as XML.
    assert_eq!(
        step(&remote, "report")["result"],
        json!({"TaskReport": {
            "@config": "profiles/bookmaker_cropmarks.xml",
            "@file": "9781250000001.pdf",
            "ExitCode": "0", "Errors": "0", "Failures": "0", "Fixes": "2",
        }})
    );
    assert_eq!(step(&remote, "fallback")["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pdf_ends_in_the_error_file_and_a_notice() {
    let Some(mail) = Mailbox::start().await else {
        return;
    };
    let (pitstop, bookmaker) = nodes(&mail);
    let pdf = book(&bookmaker);

    // A broken book: the status says what went wrong, get_pitstop_output writes it to the
    // error file, mails it, and fails.
    std::fs::write(bookmaker.octo.path("data/incoming/broken.pdf"), &pdf).unwrap();
    let sent = send(&bookmaker, &pitstop.url, "incoming/broken.pdf", "job-2", "").await;
    assert_eq!(sent["status"], "succeeded", "{sent}");
    let got = collect(&bookmaker, "9781250000002", "job-2", "100ms", 100).await;
    assert_eq!(got["status"], "failed", "{got}");
    assert_eq!(got["error"]["step"], "judge", "{got}");
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
    let error = error_file(&bookmaker);
    assert!(
        error.starts_with("pitstop could not process 9781250000002 (job job-2): error: preflight exited 1 with 1 errors and 0 failures\n"),
        "{error}"
    );
    assert!(
        !bookmaker
            .octo
            .path("data/done/9781250000002_POD.pdf")
            .exists()
    );
    let notices = mail.received(1).await;
    assert_notice(
        &notices[0],
        "pitstop: no POD PDF for 9781250000002 (job job-2)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_profile_falls_back_to_the_default() {
    let Some(mail) = Mailbox::start().await else {
        return;
    };
    let (pitstop, bookmaker) = nodes(&mail);

    // An unknown profile: pitstop says so in the step log and uses the default one.
    let sent = send(
        &bookmaker,
        &pitstop.url,
        "incoming/9781250000001.pdf",
        "job-3",
        "nosuch",
    )
    .await;
    assert_eq!(sent["status"], "succeeded", "{sent}");
    let got = collect(&bookmaker, "9781250000001", "job-3", "100ms", 100).await;
    assert_eq!(got["status"], "succeeded", "{got}");
    let (_, runs) = pitstop.get("/api/v1/runs?flow=to_pitstop").await;
    let remote = detail(&pitstop, &runs["items"][0]).await;
    assert_eq!(remote["params"]["pitstop_setting"], "bookmaker_nosuch");
    assert_eq!(remote["data"]["profile"], "bookmaker_SMP");
    assert_eq!(
        step(&remote, "report")["result"]["TaskReport"]["@config"],
        "profiles/bookmaker_SMP.xml"
    );
    let id = remote["id"].as_str().unwrap();
    let log = pitstop
        .text(&format!("/api/v1/runs/{id}/logs?step=fallback"))
        .await;
    assert!(
        log.contains("no profile `bookmaker_nosuch` (profiles/bookmaker_nosuch.xml); using the default, `bookmaker_SMP`"),
        "{log}"
    );
}

/// A mail server URL where nothing listens.
fn no_mail_server() -> String {
    format!("smtp://127.0.0.1:{}", octoflow_testkit::tools::free_port())
}

/// bookmaker's choice of profile (`imprint_defaults.json`): the imprint's entry wins over the
/// project; else the project when it is one of `available_ps_settings`; else the plain
/// `default` — and pitstop runs the CLI with the profile it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_is_the_imprint_s_then_the_project_s_then_the_default() {
    let pitstop = pitstop();
    let bookmaker = Server::start(&bookmaker(&no_mail_server()), &[]);
    let cases = [
        (
            json!({"imprint": "pine", "project": "torDOTcom"}),
            "bookmaker_cropmarks",
        ),
        (
            json!({"imprint": "oak", "project": "torDOTcom"}),
            "bookmaker_torDOTcom",
        ),
        (json!({"project": "torDOTcom"}), "bookmaker_torDOTcom"),
        (
            json!({"imprint": "oak", "project": "nosuch"}),
            "bookmaker_SMP",
        ),
        (json!({}), "bookmaker_SMP"),
    ];
    for (i, (choice, profile)) in cases.iter().enumerate() {
        let job = format!("job-{i}");
        let sent = send_with(
            &bookmaker,
            &pitstop.url,
            "incoming/9781250000001.pdf",
            &job,
            choice,
        )
        .await;
        assert_eq!(sent["status"], "succeeded", "{choice}: {sent}");
        assert_eq!(sent["data"]["profile"], *profile, "{choice}");
        // What pitstop was asked for is what its CLI ran with: a profile it knows, so no
        // fallback of its own.
        let (_, runs) = pitstop
            .get("/api/v1/runs?flow=to_pitstop&per_page=100")
            .await;
        let remote = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["params"]["job_id"] == job.as_str())
            .unwrap_or_else(|| panic!("pitstop has no run of {job}: {runs}"));
        let remote = pitstop
            .until(remote["id"].as_str().unwrap(), &["succeeded", "failed"])
            .await;
        assert_eq!(remote["status"], "succeeded", "{remote}");
        assert_eq!(remote["params"]["pitstop_setting"], *profile);
        assert_eq!(step(&remote, "fallback")["status"], "skipped", "{choice}");
        assert_eq!(
            step(&remote, "report")["result"]["TaskReport"]["@config"],
            format!("profiles/{profile}.xml")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_run_nothing_and_fail_the_send() {
    let Some(mail) = Mailbox::start().await else {
        return;
    };
    let pitstop = pitstop();
    // bookmaker's password for pitstop is wrong.
    let secrets = std::fs::read_to_string(example("bookmaker/data/secrets.yml"))
        .unwrap()
        .replace(
            "username: bookmaker, password: bookmaker-demo-password",
            "username: bookmaker, password: wrong",
        );
    let bookmaker = Server::start(
        &bookmaker(&mail.url()).file("data/secrets.yml", &secrets),
        &[],
    );
    let pdf = book(&bookmaker);

    // pitstop refuses the upload: send_to_pitstop fails and says why.
    let sent = send(
        &bookmaker,
        &pitstop.url,
        "incoming/9781250000001.pdf",
        "job-4",
        "",
    )
    .await;
    assert_eq!(sent["status"], "failed", "{sent}");
    let error = error_file(&bookmaker);
    assert!(
        error.starts_with(
            "Could not send incoming/9781250000001.pdf (job job-4) to pitstop: step `upload` failed.\n"
        ),
        "{error}"
    );
    assert!(error.contains("status_code: 401"), "{error}");
    let notices = mail.received(1).await;
    assert_notice(
        &notices[0],
        "pitstop: incoming/9781250000001.pdf (job job-4) was not sent",
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
async fn with_pitstop_stopped_the_error_file_says_what_happened() {
    let Some(mail) = Mailbox::start().await else {
        return;
    };
    let pitstop = Server::start(&node("pitstop"), &[]);
    let gone = pitstop.url.clone();
    pitstop.kill();
    let bookmaker = Server::start(&bookmaker(&mail.url()), &[]);

    // The upload finds nobody.
    let sent = send(&bookmaker, &gone, "incoming/9781250000001.pdf", "job-1", "").await;
    assert_eq!(sent["status"], "failed", "{sent}");
    let error = error_file(&bookmaker);
    let expected = format!(
        "Could not send incoming/9781250000001.pdf (job job-1) to pitstop: step `upload` failed.\nrequest `POST {gone}/hooks/to_pitstop` failed"
    );
    assert!(error.starts_with(&expected), "{error}");
    let notices = mail.received(1).await;
    assert_notice(
        &notices[0],
        "pitstop: incoming/9781250000001.pdf (job job-1) was not sent",
    );

    // A book that is not there.
    let sent = send(&bookmaker, &gone, "incoming/missing.pdf", "job-2", "").await;
    assert_eq!(sent["status"], "failed", "{sent}");
    let error = error_file(&bookmaker);
    assert!(
        error.starts_with(
            "Could not send incoming/missing.pdf (job job-2) to pitstop: step `upload` failed.\n"
        ),
        "{error}"
    );
    assert!(error.contains("missing.pdf"), "{error}");

    // Nothing comes back: after its checks (params) get_pitstop_output says it timed out.
    let started = Instant::now();
    let got = collect(&bookmaker, "9781250000001", "job-1", "200ms", 3).await;
    assert_eq!(got["status"], "failed", "{got}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        error_file(&bookmaker),
        "Timed out: no status from pitstop for 9781250000001 (job job-1) after 3 checks, every 200ms.\n\
         waited 400ms (3 checks, every 200ms) for file `from_pitstop/job-1/pitstop_status.json`; it did not happen\n"
    );
    let notices = mail.received(3).await;
    assert_notice(
        &notices[2],
        "pitstop: no POD PDF for 9781250000001 (job job-1)",
    );
    assert!(
        !bookmaker
            .octo
            .path("data/done/9781250000001_POD.pdf")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_that_cannot_run_is_reported_back() {
    let pitstop = Server::start(
        &node("pitstop").env("PITSTOP_CLI", "/nonexistent/preflight"),
        &[],
    );
    let bookmaker = Server::start(&bookmaker(&no_mail_server()), &[]);
    let sent = send(
        &bookmaker,
        &pitstop.url,
        "incoming/9781250000001.pdf",
        "job-1",
        "",
    )
    .await;
    assert_eq!(sent["status"], "succeeded", "{sent}");
    let got = collect(&bookmaker, "9781250000001", "job-1", "100ms", 100).await;
    assert_eq!(got["status"], "failed", "{got}");
    let error = error_file(&bookmaker);
    assert!(
        error.starts_with("pitstop could not process 9781250000001 (job job-1): error: cannot start `/nonexistent/preflight`"),
        "{error}"
    );
    // The notice could not go out: it is recorded `ignored`, the error file is the record.
    let got = detail(&bookmaker, &got).await;
    assert_eq!(step(&got, "notice")["status"], "ignored", "{got}");
    assert_eq!(step(&got, "error_file")["status"], "succeeded", "{got}");
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
