//! Secrets never leak: a flow uses every secret type — in commands, results, templates,
//! HTTP authentication (echoed back by the peer), errors, logs, the tracker file and files
//! written from `data` — and no secret value appears in any output, stored row or file.

use std::path::Path;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::Json;
use axum::routing::get;

use crate::octo;
use crate::peer::serve;

const SECRETS: &[&str] = &[
    "cred-pass-91x",   // credential password
    "tok-ab12cd34",    // token
    "apikey-zz-777",   // api-key
    "salty-value-42",  // value
    "env-secret-5150", // env
];

const SECRETS_YML: &str = "
- { name: jira, type: credential, username: bot, password: cred-pass-91x }
- { name: api, type: token, token: tok-ab12cd34 }
- { name: key, type: api-key, key: apikey-zz-777 }
- { name: salt, type: value, value: salty-value-42 }
- { name: db, type: env, env: OCTO_REDACTION_DB }
";

const FLOW: &str = r#"
params:
  url: { type: string }
steps:
  - name: echo_all
    exec:
      command: [sh, -c, 'echo "$A $B $C $D $E"; echo "err $A" >&2']
      env:
        A: "{{ secrets.jira.password }}"
        B: "{{ secrets.api.token }}"
        C: "{{ secrets.key.key }}"
        D: "{{ secrets.salt.value }}"
        E: "{{ secrets.db.value }}"
  - name: fact
    set_fact: { value: { dsn: "postgres://app:{{ secrets.db.value }}@db:5432/x", salt: "{{ secrets.salt.value }}" } }
  - name: text
    jinja: { template: "user={{ secrets.jira.username }} pass={{ secrets.jira.password }}" }
  - name: basic
    rest: { uri: "{{ params.url }}/echo", authentication: { type: basic, secret: jira } }
  - name: token
    rest: { uri: "{{ params.url }}/echo", authentication: { type: token, secret: api } }
  - name: api_key
    rest: { uri: "{{ params.url }}/echo", authentication: { type: api_key, secret: key } }
  - name: show
    debug: { msg: "{{ secrets.api.token }} and {{ secrets.salt.value }}" }
  - name: failing
    exec: { command: [sh, -c, 'echo "refused $T" >&2; exit 3'], env: { T: "{{ secrets.api.token }}" } }
    ignore_errors: ["refused"]
  - name: save
    file: { path: out/everything.json, mode: write }
    data_key: "."
"#;

/// Every file under `dir`, except the secrets file itself.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.file_name().is_some_and(|n| n != "secrets.yml") {
            out.push(path);
        }
    }
}

#[test]
fn no_secret_value_appears_in_any_output_row_or_file() {
    let peer = serve(Router::new().route(
        "/echo",
        get(|headers: HeaderMap| async move {
            let all: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().into()))
                .collect();
            Json(all)
        }),
    ));
    let o = octo()
        .file("data/secrets.yml", SECRETS_YML)
        .file("data/config.yml", "tracker_dir: trackers\n")
        .flow("leaky", FLOW)
        .env("OCTO_REDACTION_DB", "env-secret-5150");
    let url = format!("url={}", peer.url);
    let run = o.clone().args(["run", "leaky", "-p", &url, "--json"]).run();
    run.success();
    // The secrets file was written with the default mode, readable by others: a warning.
    assert!(
        run.stderr().contains("can be read by others"),
        "{}",
        run.stderr()
    );
    let record = run.json();
    assert_eq!(
        record["data"]["token"]["authorization"], "Bearer ***",
        "{record:#}"
    );
    assert_eq!(record["data"]["api_key"]["x-api-key"], "***");
    assert_eq!(record["data"]["fact"]["dsn"], "postgres://***@db:5432/x");
    assert_eq!(record["data"]["text"], "user=bot pass=***");
    let dry = o
        .clone()
        .args(["run", "leaky", "-p", &url, "--dry-run"])
        .run();
    dry.success();

    let mut texts = vec![
        ("run stdout".to_owned(), run.stdout().as_bytes().to_vec()),
        ("run stderr".to_owned(), run.stderr().as_bytes().to_vec()),
        (
            "dry-run stdout".to_owned(),
            dry.stdout().as_bytes().to_vec(),
        ),
        (
            "dry-run stderr".to_owned(),
            dry.stderr().as_bytes().to_vec(),
        ),
    ];
    let mut written = Vec::new();
    files(&o.data_dir(), &mut written);
    assert!(written.iter().any(|p| p.ends_with("out/everything.json")));
    assert!(
        written
            .iter()
            .any(|p| p.starts_with(o.data_dir().join("trackers")))
    );
    assert!(written.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("octoflow.db"))
    }));
    for path in written {
        texts.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    for (place, bytes) in &texts {
        for secret in SECRETS {
            let hit = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!hit, "secret `{secret}` found in {place}");
        }
    }
}

/// Regression (issue 12): the admin token was printed, unmasked, by a step running `env`,
/// because steps got the server's whole environment. Steps now see an allow-list (plus
/// `steps.env_pass`), never `OCTOFLOW_*`; the admin token and URL passwords from config are
/// redacted like secrets wherever they show up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_see_no_server_settings_and_config_credentials_are_redacted() {
    const TOKEN: &str = "admin-tok-8c1f2e";
    const PASSWORD: &str = "conn-pw-4417";
    let flow = format!(
        "steps:\n  - name: dump\n    exec: {{ command: [sh, -c, 'env; echo leaked {TOKEN} {PASSWORD}'] }}\n  - name: tpl\n    set_fact: {{ value: \"{{{{ env.PASSED }}}}\" }}\n"
    );
    let o = octo()
        .file(
            "data/config.yml",
            &format!(
                "connections:\n  warehouse: {{ url: 'postgres://reader:{PASSWORD}@127.0.0.1/db' }}\nsteps: {{ env_pass: [PASSED] }}\n"
            ),
        )
        .flow("envs", &flow)
        .env("OCTOFLOW_API_TOKEN", TOKEN)
        .env("PASSED", "visible-value")
        .env("NOT_PASSED", "hidden-value");
    let server = crate::server::Server::start(&o, &[]).bearer(TOKEN);
    let (code, run) = server
        .post("/api/v1/flows/envs/runs", &serde_json::json!({}))
        .await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let run = server.until(&id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["data"]["tpl"], "visible-value");
    let logs = server.text(&format!("/api/v1/runs/{id}/logs")).await;
    assert!(logs.contains("PASSED=visible-value"), "{logs}");
    assert!(logs.contains("leaked *** ***"), "{logs}");
    for hidden in [TOKEN, PASSWORD, "OCTOFLOW_", "NOT_PASSED", "hidden-value"] {
        assert!(
            !logs.contains(hidden),
            "`{hidden}` in the step log:\n{logs}"
        );
        assert!(!run.to_string().contains(hidden), "`{hidden}` in the run");
    }
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAwBcq1b7Qh3Lr9d2f
Qm8sT4pZ0yXcKvN6uH2jE1aRbW9oL3iYtG7kF5dS2qP8nM4vC0xZ6wB1eU9hA7gJ
-----END PRIVATE KEY-----";

/// Issue 17: a secret passed on in another form — a PEM key printed line by line, a token
/// base64- and URL-encoded, a token cut by the 64 KiB split of a long line — is masked in
/// the log of a run under `serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_another_form_or_across_a_cut_is_masked_in_the_log() {
    const TOKEN: &str = "tok-4f9a-77c2-secret";
    let indented: String = PEM.lines().flat_map(|l| ["      ", l, "\n"]).collect();
    let secrets = format!(
        "- name: key\n  type: value\n  value: |\n{indented}- {{ name: api, type: token, token: {TOKEN} }}\n"
    );
    let flow = r#"
steps:
  - name: pem
    exec: { command: [sh, -c, 'printf "%s\n" "$K"'], env: { K: "{{ secrets.key.value }}" } }
  - name: encoded
    exec:
      command: [sh, -c, 'printf "%s" "$T" | base64; printf "ops:%s" "$T" | base64; echo "q=$U"']
      env: { T: "{{ secrets.api.token }}", U: "{{ secrets.api.token | urlencode }}" }
  - name: long
    exec:
      command: [sh, -c, 'head -c 65530 /dev/zero | tr "\0" a; printf "%s" "$T"; head -c 2000 /dev/zero | tr "\0" b; echo']
      env: { T: "{{ secrets.api.token }}" }
"#;
    let o = octo()
        .file("data/secrets.yml", &secrets)
        .flow("forms", flow);
    let server = crate::server::Server::start(&o, &[]);
    let (code, run) = server
        .post("/api/v1/flows/forms/runs", &serde_json::json!({}))
        .await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let run = server.until(&id, &["succeeded", "failed"]).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let logs = server.text(&format!("/api/v1/runs/{id}/logs")).await;
    assert!(logs.contains("q=***"), "{logs:.2000}");
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    let mut leaks: Vec<String> = PEM.lines().map(str::to_owned).collect();
    leaks.extend([
        TOKEN.to_owned(),
        b64(TOKEN),
        b64(&format!("ops:{TOKEN}"))
            .chars()
            .skip(8)
            .take(16)
            .collect(),
    ]);
    // The log's lines joined without their breaks: a token cut in two would join again.
    let joined: String = logs
        .lines()
        .map(|line| line.rsplit_once(" | ").map_or(line, |(_, text)| text))
        .collect();
    for leak in &leaks {
        assert!(!logs.contains(leak.as_str()), "`{leak}` in the log");
        assert!(!joined.contains(leak.as_str()), "`{leak}` across a cut");
    }
    assert!(
        logs.lines()
            .filter(|l| l.contains("aaaa") || l.contains("bbbb"))
            .count()
            >= 2,
        "the long line was cut"
    );
}
