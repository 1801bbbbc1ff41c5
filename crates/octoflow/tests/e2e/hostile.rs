//! Hostile input never stops the node (SPEC §1, principle 6): what a caller sends gets a
//! clear error and the server goes on serving.

use serde_json::Value;

use crate::octo;
use crate::server::Server;

/// A flow whose `jq_expression` nests `depth` parentheses.
fn nested_jq(depth: usize) -> String {
    format!(
        "steps:\n  - name: a\n    set_fact: {{ value: 1 }}\n    jq_expression: '{}.{}'\n",
        "(".repeat(depth),
        ")".repeat(depth)
    )
}

/// Regression (issue 12): a jq program nested 20,000 parentheses deep, posted to
/// `/api/v1/validate` (any viewer may), overflowed the stack and aborted the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_jq_program_is_refused_and_the_server_stays_up() {
    let server = Server::start(&octo(), &[]);
    let yaml = nested_jq(20_000);
    let validate = |path: &'static str, method: reqwest::Method| {
        let request = server
            .http
            .request(method, format!("{}{path}", server.url))
            .header("content-type", "application/yaml")
            .body(yaml.clone());
        async move {
            let answer = request.send().await.unwrap();
            let code = answer.status().as_u16();
            (code, answer.json::<Value>().await.unwrap())
        }
    };
    let (code, answer) = validate("/api/v1/validate", reqwest::Method::POST).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["errors"][0]["path"], "steps[0].jq_expression");
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with("nests more than 64 levels deep"),
        "{message}"
    );

    let (code, answer) = validate("/api/v1/flows/deep", reqwest::Method::PUT).await;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_flow");

    // A template as deep is refused by the template engine's own limit.
    let template = format!(
        "steps:\n  - name: a\n    set_fact: {{ value: '{{{{ {}1{} }}}}' }}\n",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let answer = server
        .http
        .post(format!("{}/api/v1/validate", server.url))
        .header("content-type", "application/yaml")
        .body(template)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["valid"], false, "{answer}");

    // The largest program allowed is accepted, and the server still answers.
    let (code, answer) = server
        .http
        .post(format!("{}/api/v1/validate", server.url))
        .header("content-type", "application/yaml")
        .body(nested_jq(64))
        .send()
        .await
        .map(|a| (a.status().as_u16(), a))
        .unwrap();
    assert_eq!(code, 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["valid"], true, "{answer}");
    let (code, _) = server.get("/healthz").await;
    assert_eq!(code, 200);
}

/// Regression (issue 12): `file` steps could read octoflow's own files (the secrets, the
/// config, the store, flows) and other runs' workspaces; now they are refused unless
/// `files.roots` names them.
#[test]
fn file_steps_cannot_read_octoflows_own_files_or_another_runs_workspace() {
    let o = octo()
        .file("data/secrets.yml", "- { name: s, type: value, value: sekrit-99 }\n")
        .file("data/runs/0190aaaa-0000-7000-8000-000000000000/out.txt", "theirs\n")
        .flow(
            "peek",
            "params:\n  path: { type: string }\nsteps:\n  - name: read\n    file: { path: '{{ params.path }}', mode: read, format: text }\n",
        );
    for (path, refusal) in [
        ("secrets.yml", "is one of octoflow's own files"),
        ("config/../secrets.yml", "is one of octoflow's own files"),
        ("octoflow.db", "is one of octoflow's own files"),
        ("flows/peek.yml", "is one of octoflow's own files"),
        (
            "runs/0190aaaa-0000-7000-8000-000000000000/out.txt",
            "is in another run's workspace",
        ),
    ] {
        let out = o
            .clone()
            .args(["run", "peek", "-p", &format!("path={path}"), "--json"])
            .run();
        out.failure();
        let run = out.json();
        let message = run["error"]["message"].as_str().unwrap();
        assert!(message.contains(refusal), "{path}: {message}");
        assert!(!out.stdout().contains("sekrit-99"));
    }
    // Listed in `files.roots`, the other run's workspace may be read.
    let o = o.file("data/config.yml", "files: { roots: [runs] }\n");
    let out = o
        .args([
            "run",
            "peek",
            "-p",
            "path=runs/0190aaaa-0000-7000-8000-000000000000/out.txt",
            "--json",
        ])
        .run();
    out.success();
    assert_eq!(out.json()["data"]["read"], "theirs\n");
}

const OPEN_HOOK: &str = "name: intake\ntriggers:\n  - webhook: { path: open }\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Issue 17: any open hook took JSON bodies up to the upload limit (512 MiB) into memory. A
/// 100 MiB JSON body, streamed without a length, is refused once past `max_body_bytes` and the
/// server's memory stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_json_body_is_refused_and_memory_stays_flat() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start(&octo().flow("intake", OPEN_HOOK), &[]);
    // Warm up: the first request grows the server's buffers once.
    let (code, _) = server
        .post("/hooks/open", &serde_json::json!({"warm": true}))
        .await;
    assert_eq!(code, 202);
    let before = rss_kib(server.pid());
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /hooks/open HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let chunk = format!("100000\r\n{}\r\n", " ".repeat(0x10_0000));
    let mut sent = 0;
    for _ in 0..100 {
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server answered and closed: it reads no more
        }
        sent += 1;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "after {sent} MiB: {answer}"
    );
    assert!(answer.contains("limits.max_body_bytes"), "{answer}");
    let after = rss_kib(server.pid());
    assert!(
        after < before + 8 * 1024,
        "RSS went from {before} KiB to {after} KiB"
    );
    let (code, runs) = server.get("/api/v1/runs").await;
    assert_eq!((code, runs["total"].as_u64()), (200, Some(1)), "{runs}");
}

/// Issue 17: 1,000 requests at once to one hook — each is answered, accepted (`202`) or
/// refused (`429`, with `Retry-After`), and every accepted one is one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_at_once_are_each_answered_and_each_accepted_one_runs() {
    let server = Server::start(&octo().flow("intake", OPEN_HOOK), &["--workers", "2"]);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let sends = (0..1000).map(|n| {
        let http = http.clone();
        let url = format!("{}/hooks/open", server.url);
        async move {
            let answer = http
                .post(url)
                .json(&serde_json::json!({ "n": n }))
                .send()
                .await
                .expect("every request is answered");
            let status = answer.status().as_u16();
            let retry = answer.headers().contains_key("retry-after");
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        }
    });
    let answers = futures::future::join_all(sends).await;
    let mut accepted = std::collections::BTreeSet::new();
    for (status, retry, body) in &answers {
        match status {
            202 => {
                assert!(accepted.insert(body["run_id"].as_str().unwrap().to_owned()));
            }
            429 => assert!(retry, "a 429 says when to retry"),
            other => panic!("answered {other}: {body}"),
        }
    }
    assert!(!accepted.is_empty());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, runs) = server
            .get("/api/v1/runs?per_page=500&status=succeeded")
            .await;
        if runs["total"].as_u64() == Some(accepted.len() as u64) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} accepted, {} succeeded",
            accepted.len(),
            runs["total"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, all) = server.get("/api/v1/runs?per_page=1").await;
    assert_eq!(
        all["total"].as_u64(),
        Some(accepted.len() as u64),
        "one run per accepted request"
    );
}

/// Regression (CI, issue 17): a hook refused a wrong credential from the headers alone and
/// closed the connection while the upload was still being sent, so the sender saw a broken
/// pipe instead of the `401`. The rest of the body is now read first: the sender gets the
/// answer, and its connection stays open for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_still_being_sent_gets_its_answer_and_keeps_the_connection() {
    use tokio::io::AsyncWriteExt;

    const GUARDED: &str = "name: guarded\ntriggers:\n  - webhook: { path: guarded, auth: { token: { secret: hook } } }\nsteps:\n  - name: a\n    set_fact: { value: 1 }\n";
    let server = Server::start(
        &octo().flow("guarded", GUARDED).file(
            "data/secrets.yml",
            "- { name: hook, type: value, value: the-right-token }\n",
        ),
        &[],
    );
    let address = server.url.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (reader, mut writer) = socket.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    let body = vec![b'%'; 256 * 1024];
    writer
        .write_all(
            format!(
                "POST /hooks/guarded HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer wrong\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The server has the headers and has made up its mind before the body comes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    writer.write_all(&body).await.expect("the body is read");

    let (status, answer) = read_answer(&mut reader).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("unauthenticated"), "{answer}");

    // The same connection takes the next request.
    writer
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, answer) = read_answer(&mut reader).await;
    assert_eq!(status, 200, "{answer}");
    let (_, runs) = server.get("/api/v1/runs").await;
    assert_eq!(runs["total"], 0, "{runs}");
}

/// One HTTP/1.1 answer with a `Content-Length`: its status and its body.
async fn read_answer(
    reader: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> (u16, String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};

    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    let code = code
        .parse()
        .unwrap_or_else(|_| panic!("no status line: {status:?}"));
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}
