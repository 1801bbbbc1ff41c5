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
pub(crate) struct Scratch {
    admin: String,
    name: String,
    /// The database's URL.
    pub(crate) url: String,
}

impl Scratch {
    /// A new database, or `None` (the test is skipped, or fails under `CI`) when the server
    /// at `OCTOFLOW_TEST_POSTGRES_URL` cannot be reached.
    pub(crate) async fn new() -> Option<Self> {
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

    /// Drops the database.
    pub(crate) async fn drop_now(self) {
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

/// A quick flow behind a `wait: true` hook.
const QUICK: &str = "triggers:\n  - webhook: { path: quick, wait: true }\nsteps:\n  - name: one\n    set_fact: { value: 1 }\n";

/// A waited hook's run runs on the node that took the request, with a slot free there: no
/// claim by whichever node wakes first, no notice between nodes before the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_hook_run_runs_on_the_node_that_took_it() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let dir = || {
        octo()
            .flow("quick", QUICK)
            .env("OCTOFLOW_DATABASE_URL", &db.url)
    };
    let nodes = [
        Server::start(&dir(), &["--workers", "4"]),
        Server::start(&dir(), &["--workers", "4"]),
    ];
    for _ in 0..10 {
        for node in &nodes {
            let answer = node
                .http
                .post(format!("{}/hooks/quick", node.url))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 200);
            let run: Value = answer.json().await.unwrap();
            assert_eq!(run["status"], "succeeded", "{run}");
            assert_eq!(run["node"], node.node(), "{run}");
        }
    }
    drop(nodes);
    db.drop_now().await;
}

/// Says one line, waits 3 s, says another: shorter than the 5 s a view of a run on another
/// node waits before it reads the store again on its own, so only a notice brings line 2
/// and the end in time.
const TALK: &str = r"
triggers:
  - webhook: { path: talk, wait: true }
steps:
  - name: talk
    exec: { command: [sh, -c, 'echo line 1; sleep 3; echo line 2'] }
";

/// How long after `since` the text `wanted` arrived in `stream`; the stream's text so far.
async fn arrival<B: AsRef<[u8]>>(
    body: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    text: &mut String,
    wanted: &str,
    since: std::time::Instant,
) -> Duration {
    use futures::StreamExt;
    while !text.contains(wanted) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("the stream stalled")
            .expect("the stream ended")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(chunk.as_ref()));
    }
    since.elapsed()
}

/// A run that node B runs, seen from node A live: its log followed, its end awaited by a
/// `wait: true` hook, its cancel — each told by B through the database at once, not found
/// by reading the store later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_one_node_is_followed_awaited_and_cancelled_from_another() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let dir = || {
        octo()
            .flow("talk", TALK)
            .env("OCTOFLOW_DATABASE_URL", &db.url)
    };
    let a = Server::start(&dir(), &["--workers", "0"]);
    let b = Ready::spawn(
        &dir().args(["worker", "--workers", "2"]),
        "running queued runs",
    );

    // The log, followed on A.
    let (code, run) = a.post("/api/v1/flows/talk/runs", &json!({})).await;
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let answer = a
        .http
        .get(format!("{}/api/v1/runs/{id}/logs?follow=true", a.url))
        .send()
        .await
        .unwrap();
    let mut body = answer.bytes_stream();
    let mut text = String::new();
    arrival(&mut body, &mut text, "line 1", started).await;
    let second = arrival(&mut body, &mut text, "line 2", started).await;
    let ended = arrival(&mut body, &mut text, "event: end", started).await;
    assert!(second >= Duration::from_secs(3), "{text}");
    assert!(
        second < Duration::from_millis(3900) && ended < Duration::from_millis(3900),
        "line 2 at {second:?}, end at {ended:?}: not told at once\n{text}"
    );

    // A hook on A waiting for a run B runs answers at its end.
    let asked = std::time::Instant::now();
    let answer = a
        .http
        .post(format!("{}/hooks/talk", a.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(answer.status().as_u16(), 200);
    let run: Value = answer.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        took < Duration::from_millis(3900),
        "the hook answered after {took:?}"
    );

    // A cancel on A stops the run on B at once (its lease renewal would take 10 s).
    let (_, run) = a.post("/api/v1/flows/talk/runs", &json!({})).await;
    let id = run["id"].as_str().unwrap().to_owned();
    a.until(&id, &["running"]).await;
    let asked = std::time::Instant::now();
    let (code, _) = a
        .post(&format!("/api/v1/runs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(code, 200);
    a.until(&id, &["cancelled"]).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "cancelled after {:?}",
        asked.elapsed()
    );

    let (out, _) = b.signal_and_wait(Signal::SIGTERM);
    out.success();
    drop(a);
    db.drop_now().await;
}

/// Whether `server` says it fires the schedules (`octoflow_scheduler_leading 1`).
async fn leads(server: &Server) -> bool {
    server
        .text("/metrics")
        .await
        .lines()
        .any(|l| l.starts_with("octoflow_scheduler_leading") && l.trim_end().ends_with(" 1"))
}

/// How many ticks of `schedules` schedules in `[started, until]` no run was made for, and how
/// many ticks have two runs.
async fn fire_counts(
    server: &Server,
    started: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    schedules: usize,
) -> (usize, usize, String) {
    // By run id: runs that keep coming shift the pages, so a run may be listed twice.
    let mut fires: HashMap<String, (String, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    let mut page = 1;
    loop {
        let (code, runs) = server
            .get(&format!("/api/v1/runs?flow=tick&per_page=500&page={page}"))
            .await;
        assert_eq!(code, 200, "{runs}");
        let items = runs["items"].as_array().unwrap();
        for run in items {
            let detail = &run["trigger"]["detail"];
            let at: chrono::DateTime<chrono::Utc> =
                detail["tick"].as_str().unwrap().parse().unwrap();
            let schedule = detail["schedule"].as_str().unwrap().to_owned();
            fires.insert(run["id"].as_str().unwrap().to_owned(), (schedule, at));
        }
        if items.len() < 500 {
            break;
        }
        page += 1;
    }
    let mut ticks: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>> = HashMap::new();
    for (schedule, at) in fires.into_values() {
        ticks.entry(schedule).or_default().push(at);
    }
    let span = usize::try_from((until - started).num_seconds()).unwrap();
    // A schedule with no run yet missed every tick.
    let (mut missed, mut doubled) = (schedules.saturating_sub(ticks.len()) * span, 0);
    let mut example = String::new();
    for (schedule, fired) in &mut ticks {
        fired.sort();
        fired.dedup_by(|a, b| {
            let same = a == b;
            doubled += usize::from(same);
            same
        });
        // Its grid: every second from its first tick, which is later than `started` for a
        // schedule the leader took up only then (a schedule never fired starts its grid when
        // taken up).
        let first = fired[0];
        let expected = (0..=(until - first).num_seconds().max(0))
            .map(|k| first + chrono::Duration::seconds(k))
            .filter(|t| *t >= started && *t <= until)
            .count();
        let inside = fired
            .iter()
            .filter(|t| **t >= started && **t <= until)
            .count();
        if inside < expected && example.is_empty() {
            let times: Vec<String> = fired
                .iter()
                .map(|t| t.format("%T%.3f").to_string())
                .collect();
            example = format!("schedule {schedule} fired at {}", times.join(" "));
        }
        missed += expected.saturating_sub(inside);
    }
    (missed, doubled, example)
}

/// Three nodes, one database, 1,000 schedules of every second: one node fires them; killed,
/// another takes over; no tick is missed (`catchup: all`) and none fires twice. 1,000 fires a
/// second take most of this machine's two cores, so the test runs alone (`.config/nextest.toml`
/// gives it every test thread): beside the whole suite the firing falls behind the ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_fires_the_schedules_and_another_takes_over_when_it_dies() {
    const SCHEDULES: usize = 1_000;
    let Some(db) = Scratch::new().await else {
        return;
    };
    let tick = "steps:\n  - name: note\n    set_fact: { value: 1 }\n";
    let dir = || {
        octo()
            .flow("tick", tick)
            .env("OCTOFLOW_DATABASE_URL", &db.url)
    };
    let mut nodes: Vec<Option<Server>> = (0..3)
        .map(|_| Some(Server::start(&dir(), &["--workers", "0"])))
        .collect();
    let api =
        |nodes: &[Option<Server>]| -> usize { nodes.iter().position(Option::is_some).unwrap() };
    for i in 0..SCHEDULES {
        let first = nodes[api(&nodes)].as_ref().unwrap();
        let (code, added) = first
            .post(
                "/api/v1/schedules",
                &json!({"flow": "tick", "every_seconds": 1, "catchup": "all", "params": {}}),
            )
            .await;
        assert_eq!(code, 201, "schedule {i}: {added}");
    }

    // The leader, once it is known, fires for a while, then dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let mut leading = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if leads(node.as_ref().unwrap()).await {
                leading.push(i);
            }
        }
        assert!(leading.len() <= 1, "two nodes lead: {leading:?}");
        if let Some(&i) = leading.first() {
            break i;
        }
        assert!(tokio::time::Instant::now() < deadline, "no node leads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let started = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    nodes[leader].take().unwrap().kill();
    let killed = chrono::Utc::now();

    // Another takes over within its check (5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut leading = 0;
        for node in nodes.iter().flatten() {
            leading += usize::from(leads(node).await);
        }
        if leading == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no node took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let until = chrono::Utc::now() - chrono::Duration::seconds(2);

    // Every tick of every schedule in [started, until] fired exactly once — the ones missed
    // while no node led caught up by the new leader, which may take it a moment.
    let survivor = nodes[api(&nodes)].as_ref().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (missed, doubled, example) = loop {
        let (missed, doubled, example) = fire_counts(survivor, started, until, SCHEDULES).await;
        if missed == 0 || doubled > 0 || tokio::time::Instant::now() > deadline {
            break (missed, doubled, example);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(
        (missed, doubled),
        (0, 0),
        "window {started} to {until}, killed at {killed}; {example}"
    );
    drop(nodes);
    db.drop_now().await;
}

/// The machine's PostgreSQL restarted while two nodes take runs: the nodes reconnect, and
/// every run the API accepted ends with a recorded status. It restarts the database server
/// that other tests use, so it runs alone (`.config/nextest.toml` gives it every test thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_loses_no_accepted_run() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let api = Server::start(&node_dir(&db), &["--workers", "2"]);
    let worker = Ready::spawn(
        &node_dir(&db).args(["worker", "--workers", "4"]),
        "running queued runs",
    );
    let log = api.octo.root().join("marks.txt");
    let body = json!({"params": {"log": log.display().to_string()}});

    let restart = tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        #[allow(clippy::disallowed_methods)] // the test restarts the database server
        let status = tokio::process::Command::new("pg_ctlcluster")
            .args(["15", "main", "restart"])
            .status()
            .await
            .expect("pg_ctlcluster runs");
        assert!(status.success(), "pg_ctlcluster restart: {status}");
    });
    let (mut accepted, mut refused) = (Vec::new(), 0);
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < until {
        let answer = api
            .http
            .post(format!("{}/api/v1/flows/work/runs", api.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        match answer.status().as_u16() {
            201 => accepted.push(
                answer.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            503 => refused += 1,
            other => {
                let text = answer.text().await.unwrap();
                let (_, stderr) = api.signal_and_wait(Signal::SIGTERM);
                panic!("answered {other}: {text}\n{stderr}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restart.await.unwrap();
    assert!(
        refused > 0 || accepted.len() > 100,
        "the load never met the restart"
    );
    for id in &accepted {
        let run = api
            .until(id, &["succeeded", "failed", "cancelled", "timed_out"])
            .await;
        assert!(run["finished_at"].is_string(), "{run}");
    }
    let seen = marks(&log);
    assert!(seen.values().all(|n| *n == 1), "a run executed twice");
    let (out, _) = worker.signal_and_wait(Signal::SIGTERM);
    out.success();
    drop(api);
    db.drop_now().await;
}
