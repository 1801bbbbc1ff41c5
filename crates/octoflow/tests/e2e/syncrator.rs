//! The syncrator example (`examples/syncrator`, SCENARIOS §2) against a real `octoflow
//! serve`, with the example's stand-in `oc` first on `PATH`: the seed's root-mounted routes
//! answer its dry-run JSON from the parameter files, start jobs that report through the
//! run's callback URL, deduplicate a second start, page through the jobs' history, and a
//! cancel kills the job and its cleanup says why it ran. The cluster token shows as `***` in
//! every answer and never reaches a log or the store.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use octoflow_testkit::cli::Octo;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::octo;
use crate::server::Server;

/// The cluster token of the example's `secrets.yml`.
const TOKEN: &str = "sha256~demo-cluster-token-4f1c9e";

/// A path in `examples/syncrator`.
fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/syncrator")
        .join(rel)
}

/// A working directory holding a copy of the example's `data/`, with its `bin/` first on
/// `PATH`, a user `ops` (operator) and an admin API token (returned).
fn node() -> (Octo, String) {
    let mut path = OsString::from(example("bin"));
    #[allow(
        clippy::disallowed_methods,
        reason = "the stand-in `oc` goes before the runner's PATH, which finds sh and python3"
    )]
    let runner_path = std::env::var_os("PATH");
    if let Some(rest) = runner_path {
        path.push(":");
        path.push(rest);
    }
    let mut octo = octo().env("PATH", path);
    let root = example("data");
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
    let added = octo
        .clone()
        .args([
            "user",
            "add",
            "ops",
            "--role",
            "operator",
            "--password-stdin",
        ])
        .stdin("syncrator ops\n")
        .run();
    added.success();
    let token = octo
        .clone()
        .args(["token", "create", "--role", "admin", "--name", "reader"])
        .run();
    token.success();
    let admin = token.stdout().trim().to_owned();
    (octo, admin)
}

/// Starts the server; its client sends the admin token (for the API's reads and cancels).
fn start(octo: &Octo, admin: &str) -> Server {
    let mut server = Server::start(octo, &[]);
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {admin}")).unwrap(),
    );
    server.http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap();
    server
}

/// A client without the admin token.
fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The answers a test saw, to check that none holds the token.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    /// Sends a request without the admin token; the status and the JSON body.
    async fn send(
        &mut self,
        server: &Server,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = anonymous().request(method, format!("{}{path}", server.url));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        assert!(!text.contains(TOKEN), "{path} answered the token: {text}");
        self.0.push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A `GET` of the API with the admin token.
    async fn api(&mut self, server: &Server, path: &str) -> Value {
        let text = server.text(path).await;
        assert!(!text.contains(TOKEN), "{path} answered the token: {text}");
        self.0.push(text.clone());
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Logs in as `ops`; the bearer token.
async fn login(server: &Server) -> String {
    let answer: Value = anonymous()
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&json!({"username": "ops", "password": "syncrator ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["expires_in"].as_u64().unwrap() > 0, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

/// The seed's dry-run answer for a job.
fn dry_answer(env: &str, target: &str, action: &str, tag: &str, options: &str) -> Value {
    let options = format!("{options} --api_job_id dryrun");
    let result = format!(
        "oc login https://api.okd.example.org:6443 --token=*** --insecure-skip-tls-verify > /dev/null ; \
         oc project shared-components ; oc delete jobs syncrator-{env}-{target}-{action} ; \
         oc process -f job_template.yaml -p TARGET=\"{target}\" -p ENV=\"{env}\" \
         -p ACTION_NAME=\"{action}\" -p ACTION=\"{action}\" -p IS_TAG=\"{tag}\" \
         -p OPTIONS=\"{options}\" | oc create -f -"
    );
    json!({
        "ENV": env, "TARGET": target, "ACTION_NAME": action, "ACTION": action,
        "IS_TAG": tag, "OPTIONS": options, "job_id": "dryrun", "result": result,
    })
}

/// Whether process `pid` runs: it exists and is not a zombie (an orphan whose parent, the
/// killed launcher, can no longer reap it).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// The stand-in `oc`'s log of its calls.
fn oc_log(server: &Server) -> String {
    std::fs::read_to_string(server.octo.path("data/oc.log")).unwrap_or_default()
}

/// Waits (at most 20 s) until the stand-in's log holds `needle`; returns the log.
async fn logged(server: &Server, needle: &str) -> String {
    for _ in 0..400 {
        let log = oc_log(server);
        if log.contains(needle) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the oc log never said {needle:?}:\n{}", oc_log(server));
}

/// Stops the server and checks that neither its log nor its store holds the token.
fn no_token_left(server: Server) {
    let db = server.octo.path("data/octoflow.db");
    let wal = server.octo.path("data/octoflow.db-wal");
    let (_, stderr) = server.signal_and_wait(Signal::SIGTERM);
    assert!(!stderr.contains(TOKEN), "the server logged the token");
    for file in [db, wal] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "{} holds the token",
                file.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_routes_answer_its_dry_run_json_from_the_parameter_files() {
    let (o, admin) = node();
    let server = start(&o, &admin);
    let mut seen = Seen::default();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // GET /delta/avo: no auth, the seed's JSON from job_params/qas/avo-delta.public_params.
    let (code, answer) = seen
        .send(&server, get.clone(), "/delta/avo", None, None)
        .await;
    assert_eq!(code, 200, "{answer}");
    let expected = dry_answer("qas", "avo", "delta", "latest", "-n 1000 -c 1");
    assert_eq!(answer, expected);
    // The seed's form with the environment in the path, and another action.
    let (code, answer) = seen
        .send(&server, get.clone(), "/sync/cataloguspro/prd", None, None)
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer,
        dry_answer("prd", "cataloguspro", "sync", "stable", "-n 1000")
    );

    // A missing parameter file: 400 naming it.
    let (code, answer) = seen
        .send(&server, get.clone(), "/delete/nope", None, None)
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("job_params/qas/nope-delete.public_params"),
        "{answer}"
    );

    // POST /dryrun with the six fields: the same answer; it needs a bearer token.
    let fields = json!({
        "target": "avo", "env": "qas", "action_name": "delta", "action": "delta",
        "is_tag": "latest", "options": "-n 1000 -c 1",
    });
    let (code, _) = seen
        .send(&server, post.clone(), "/dryrun", None, Some(&fields))
        .await;
    assert_eq!(code, 401);
    let bearer = login(&server).await;
    let (code, answer) = seen
        .send(&server, post, "/dryrun", Some(&bearer), Some(&fields))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer, expected);

    // Nothing was launched.
    assert!(
        !oc_log(&server).contains("oc create"),
        "{}",
        oc_log(&server)
    );
    assert!(seen.0.iter().any(|a| a.contains("--token=***")));
    no_token_left(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_job_reports_through_its_callback_and_a_cancel_kills_it() {
    let (o, admin) = node();
    let server = start(&o, &admin);
    let mut seen = Seen::default();
    let post = reqwest::Method::POST;

    // Starting needs a bearer token.
    let (code, _) = seen
        .send(&server, post.clone(), "/delta/avo", None, None)
        .await;
    assert_eq!(code, 401);
    let bearer = login(&server).await;

    // POST /delta/avo starts the job; posting again while it runs answers the same job.
    let (code, first) = seen
        .send(&server, post.clone(), "/delta/avo", Some(&bearer), None)
        .await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["result"], "starting", "{first}");
    let id = first["job_id"].as_str().unwrap().to_owned();
    let (code, second) = seen
        .send(&server, post.clone(), "/delta/avo", Some(&bearer), None)
        .await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(second["job_id"], id.as_str(), "{second}");
    assert_eq!(second["result"], "running");

    // The stand-in pod reports progress, then success, to the run's callback URL.
    let run = server
        .until(&id, &["succeeded", "failed", "cancelled"])
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run = seen.api(&server, &format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["progress"]["current"], 3.0, "{run}");
    assert_eq!(run["progress"]["total"], 3.0);
    assert_eq!(run["progress"]["message"], "30 records of 30");
    let report = &run["data"]["report"];
    assert_eq!(report["message"], "synchronised 30 records", "{run}");
    assert_eq!(report["data"]["total_records"], 30);
    assert_eq!(
        report["data"]["target_datastore_url"],
        "postgres://***@postgresql-qas.sc-avo.svc:5432/avo_qas"
    );
    let logs = server.text(&format!("/api/v1/runs/{id}/logs")).await;
    assert!(logs.contains("callback: 10 records of 30"), "{logs}");
    assert!(!logs.contains(TOKEN));
    let log = oc_log(&server);
    assert!(
        log.contains(&format!("-p OPTIONS=-n 1000 -c 1 --api_job_id {id} ")),
        "{log}"
    );
    assert!(
        log.contains("pod syncrator-qas-avo-delta completed"),
        "{log}"
    );
    // The launcher logged in with the real token; the log shows it masked.
    let session = std::fs::read_to_string(server.octo.path("data/oc.log.session")).unwrap();
    assert_eq!(session, TOKEN);
    assert!(log.contains("--token=***"));

    // The job's history is octoflow's own run list, newest first: after eleven more deltas
    // (four jobs at a time, one per project and environment), the second page of ten holds
    // the two oldest, this one last.
    let jobs = [
        "/delta/avo/prd",
        "/delta/cataloguspro",
        "/delta/cataloguspro/prd",
        "/delta/avo",
    ];
    let more: Vec<&str> = jobs.iter().copied().cycle().take(11).collect();
    for round in more.chunks(jobs.len()) {
        let mut started = Vec::new();
        for path in round {
            let (code, answer) = seen
                .send(&server, post.clone(), path, Some(&bearer), None)
                .await;
            assert_eq!(
                (code, &answer["result"]),
                (200, &json!("starting")),
                "{answer}"
            );
            started.push(answer["job_id"].as_str().unwrap().to_owned());
        }
        for job in &started {
            let run = server
                .until(job, &["succeeded", "failed", "cancelled"])
                .await;
            assert_eq!(run["status"], "succeeded", "{run}");
        }
    }
    let list = seen
        .api(&server, "/api/v1/runs?flow=delta&page=2&per_page=10")
        .await;
    assert_eq!(
        (&list["total"], &list["page"]),
        (&json!(12), &json!(2)),
        "{list}"
    );
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[1]["id"], id.as_str(), "{list}");

    let custom = a_cancel_kills_the_pod(&server, &mut seen, &bearer).await;

    for id in [&id, &custom] {
        seen.api(&server, &format!("/api/v1/runs/{id}/logs")).await;
    }
    assert!(seen.0.iter().all(|a| !a.contains(TOKEN)));
    no_token_left(server);
}

/// A custom job (`POST /run`) that would run for minutes: a cancel kills its pod, the
/// flow's `on_cancel` step removes the cluster job, and the run ends `cancelled`; its id.
async fn a_cancel_kills_the_pod(server: &Server, seen: &mut Seen, bearer: &str) -> String {
    // A custom job (POST /run): a cancel kills the pod and `on_cancel` removes the job.
    let fields = json!({
        "target": "cataloguspro", "env": "qas", "action_name": "sync", "action": "sync",
        "options": "-n 5 --fake-delay 60",
    });
    let (code, started) = seen
        .send(
            server,
            reqwest::Method::POST,
            "/run",
            Some(bearer),
            Some(&fields),
        )
        .await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["result"], "starting");
    let custom = started["job_id"].as_str().unwrap().to_owned();
    let log = logged(server, "pod syncrator-qas-cataloguspro-sync started, pid ").await;
    let pid: u32 = log
        .split("pod syncrator-qas-cataloguspro-sync started, pid ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cancel = server
        .http
        .post(format!("{}/api/v1/runs/{custom}/cancel", server.url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "{}", cancel.status());
    let run = server
        .until(&custom, &["succeeded", "failed", "cancelled"])
        .await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert!(!running(pid), "the pod {pid} outlived the cancel");
    let log = logged(server, "oc delete jobs syncrator-qas-cataloguspro-sync\n").await;
    let (_, after) = log
        .split_once("pod syncrator-qas-cataloguspro-sync started")
        .unwrap();
    assert!(
        after.contains("oc delete jobs syncrator-qas-cataloguspro-sync"),
        "{log}"
    );
    let (_, steps) = server.get(&format!("/api/v1/runs/{custom}")).await;
    let cleanup = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "cleanup")
        .unwrap_or_else(|| panic!("no cleanup step: {steps}"));
    assert_eq!(cleanup["status"], "succeeded", "{cleanup}");
    // The cleanup saw why it ran: `error.kind` is `cancelled`.
    assert_eq!(
        cleanup["result"]["stdout"],
        "the run ended cancelled: removing the cluster job syncrator-qas-cataloguspro-sync\n\
         job.batch \"syncrator-qas-cataloguspro-sync\" deleted\n",
        "{cleanup}"
    );
    custom
}

/// The single sign-on key of the example's `secrets.yml`.
const SSO_KEY: &str = "sso-demo-hs256-key-2f9a";

/// A token of the single sign-on: audience `syncrator`, this role, expiring in `expires_in`
/// seconds, signed with `key`.
fn sso_token(key: &str, role: &str, expires_in: i64) -> String {
    let claims = json!({"aud": "syncrator", "sub": "jenkins", "role": role,
                        "exp": chrono::Utc::now().timestamp() + expires_in});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// `POST /diff/avo` with a token of the single sign-on: a delta, then a delete, each a child
/// run of its own flow; the jobs' history pages through the run list. An expired or
/// foreign-signed token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_runs_a_delta_then_a_delete_and_the_history_pages() {
    let (o, admin) = node();
    let server = start(&o, &admin);
    let mut seen = Seen::default();
    let post = reqwest::Method::POST;
    for refused in [
        sso_token(SSO_KEY, "operator", -120),
        sso_token("not-the-sso-key", "operator", 300),
    ] {
        let (code, _) = seen
            .send(&server, post.clone(), "/diff/avo", Some(&refused), None)
            .await;
        assert_eq!(code, 401);
    }
    let bearer = sso_token(SSO_KEY, "operator", 300);
    let (code, started) = seen
        .send(
            &server,
            reqwest::Method::POST,
            "/diff/avo",
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started["action"], "diff");
    let diff = started["job_id"].as_str().unwrap().to_owned();
    let run = server
        .until(&diff, &["succeeded", "failed", "cancelled"])
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // Each step ran its flow as a linked child run, the delta first.
    let mut children = Vec::new();
    for flow in ["delta", "delete"] {
        let list = seen
            .api(&server, &format!("/api/v1/runs?flow={flow}"))
            .await;
        let child = &list["items"][0];
        assert_eq!(child["parent_run_id"], diff.as_str(), "{list}");
        assert_eq!(child["status"], "succeeded", "{list}");
        children.push(child["id"].as_str().unwrap().to_owned());
    }
    let log = oc_log(&server);
    let delta_done = log.find("pod syncrator-qas-avo-delta completed").unwrap();
    let delete_started = log.find("pod syncrator-qas-avo-delete started").unwrap();
    assert!(delta_done < delete_started, "{log}");

    // A second delta: the history has two, newest first, one per page.
    let (code, again) = seen
        .send(
            &server,
            reqwest::Method::POST,
            "/delta/avo",
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(code, 200, "{again}");
    let second = again["job_id"].as_str().unwrap().to_owned();
    server
        .until(&second, &["succeeded", "failed", "cancelled"])
        .await;
    let page = seen
        .api(&server, "/api/v1/runs?flow=delta&page=2&per_page=1")
        .await;
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(page["page"], 2);
    assert_eq!(page["items"][0]["id"], children[0].as_str(), "{page}");
    no_token_left(server);
}
