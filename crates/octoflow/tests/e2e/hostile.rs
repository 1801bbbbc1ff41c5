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
