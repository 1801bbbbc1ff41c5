//! Several nodes on one PostgreSQL database, each with its own data directory (no shared
//! disk): two `serve` and one `worker` take 2,000 runs while one of them is killed — every
//! run ends recorded, none runs twice, and the dead node's runs are handed back within its
//! lease.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use octoflow_testkit::cli::Octo;
use octoflow_testkit::services;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::octo;
use crate::server::{Ready, Server};

/// Each run appends its id to the test's file, then naps a little.
const WORK: &str = r#"
params:
  log: { type: string, required: true }
steps:
  - name: mark
    exec:
      command: [sh, -c, 'echo "$1" >> "$2"; sleep 0.02', sh, "{{ run.id }}", "{{ params.log }}"]
"#;

/// A scratch database on the machine's PostgreSQL, dropped at the end.
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn new() -> Option<Self> {
        let admin = services::url(
            "OCTOFLOW_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        );
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(e) => {
                return services::unreachable(
                    "PostgreSQL",
                    "OCTOFLOW_TEST_POSTGRES_URL",
                    &e.to_string(),
                );
            }
        };
        let name = format!("oft_cluster_{}", uuid::Uuid::new_v4().simple());
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Self { admin, name, url })
    }

    async fn drop_now(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        let name = &self.name;
        conn.execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    }
}

/// A node's own data directory: the flow, a short lease, the shared database.
fn node_dir(db: &Scratch) -> Octo {
    octo()
        .flow("work", WORK)
        .file("data/config.yml", "lease: 2s\n")
        .env("OCTOFLOW_DATABASE_URL", &db.url)
}

/// How many runs of `work` have each status, as `api` lists them.
async fn statuses(api: &Server) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for status in ["queued", "running", "succeeded", "failed"] {
        let (code, page) = api
            .get(&format!(
                "/api/v1/runs?flow=work&status={status}&per_page=1"
            ))
            .await;
        assert_eq!(code, 200, "{page}");
        counts.insert(status.to_owned(), page["total"].as_u64().unwrap());
    }
    counts
}

fn marks(log: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        *seen.entry(line.to_owned()).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_take_2000_runs_and_lose_none_when_one_is_killed() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let a = Server::start(&node_dir(&db), &["--workers", "4"]);
    let b = Server::start(&node_dir(&db), &["--workers", "4", "--no-scheduler"]);
    let worker = Ready::spawn(
        &node_dir(&db).args(["worker", "--workers", "4"]),
        "running queued runs",
    );
    let log: PathBuf = a.octo.root().join("marks.txt");
    let body = json!({"params": {"log": log.display().to_string()}});

    // 2,000 runs through both APIs, 16 at a time; B is killed half-way.
    let b_node = b.node();
    let mut killed_at = None;
    let mut ids: Vec<String> = Vec::new();
    let mut b = Some(b);
    for round in 0..125 {
        let answers = futures::future::join_all((0..16).map(|i| {
            let api = if i % 2 == 0 {
                &a
            } else {
                b.as_ref().unwrap_or(&a)
            };
            api.post("/api/v1/flows/work/runs", &body)
        }))
        .await;
        for (code, run) in answers {
            assert_eq!(code, 201, "{run}");
            ids.push(run["id"].as_str().unwrap().to_owned());
        }
        if round == 60 {
            b.take().unwrap().kill();
            killed_at = Some(chrono::Utc::now());
        }
    }

    // Every run ends recorded: the dead node's within two leases of its death.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let counts = statuses(&a).await;
        if counts["queued"] + counts["running"] == 0 {
            break counts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs still not ended after 120 s: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(counts["succeeded"] + counts["failed"], 2000, "{counts:?}");
    // Only runs B was running when it died failed, `interrupted`, within two leases (2 s).
    let (_, interrupted) = a
        .get("/api/v1/runs?flow=work&status=failed&per_page=500")
        .await;
    let killed_at = killed_at.unwrap();
    for run in interrupted["items"].as_array().unwrap() {
        assert_eq!(run["node"], b_node.as_str(), "{run}");
        let message = run["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("interrupted"), "{run}");
        let ended: chrono::DateTime<chrono::Utc> =
            run["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(
            ended - killed_at < chrono::Duration::seconds(6),
            "handed back {} after the kill: {run}",
            ended - killed_at
        );
    }
    assert!(
        counts["failed"] <= 4,
        "only B's running runs may be interrupted: {counts:?}"
    );
    let mut by_b = 0;
    for page in 1..=4 {
        let (_, all) = a
            .get(&format!("/api/v1/runs?flow=work&per_page=500&page={page}"))
            .await;
        let items = all["items"].as_array().unwrap();
        by_b += items
            .iter()
            .filter(|r| r["node"] == b_node.as_str())
            .count();
    }
    assert!(by_b > 0, "B ran nothing before it died");

    // None ran twice; every run that succeeded ran.
    let seen = marks(&log);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "runs executed twice: {twice:?}");
    assert!(u64::try_from(seen.len()).unwrap() >= counts["succeeded"]);

    let (out, _) = worker.signal_and_wait(Signal::SIGTERM);
    out.success();
    drop(a);
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_accepted_by_one_node_is_run_by_another_at_once() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let api = Server::start(&node_dir(&db), &["--workers", "0"]);
    let worker = Ready::spawn(
        &node_dir(&db).args(["worker", "--workers", "2"]),
        "running queued runs",
    );
    let log = api.octo.root().join("marks.txt");
    let started = std::time::Instant::now();
    let (code, run) = api
        .post(
            "/api/v1/flows/work/runs",
            &json!({"params": {"log": log.display().to_string()}}),
        )
        .await;
    assert_eq!(code, 201, "{run}");
    let done: Value = api.until(run["id"].as_str().unwrap(), &["succeeded"]).await;
    // Woken by the database, not by an idle poll (5 s).
    assert!(started.elapsed() < Duration::from_secs(3), "{done}");
    let (out, _) = worker.signal_and_wait(Signal::SIGTERM);
    out.success();
    drop(api);
    db.drop_now().await;
}
