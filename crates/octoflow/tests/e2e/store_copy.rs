//! `octoflow store copy` from one machine to many: a SQLite store filled by the real binary
//! (runs of `octoflow run` with steps, logs and flow state, a user, a token, an API schedule)
//! copied to a fresh PostgreSQL database reads back the same record by record, and a
//! `serve` node on that database answers for all of it. A non-empty target is refused, an
//! interrupted copy resumes, a copy run again changes nothing, and the password of a URL is
//! never printed.

use insta::assert_snapshot;
use octoflow_core::flow::{Catchup, Schedule};
use octoflow_core::store::{RunRecord, ScheduleStore, Store, StoreRecords, StoredSchedule};
use octoflow_store_postgres::{PostgresOptions, PostgresStore};
use octoflow_store_sqlite::SqliteStore;
use octoflow_testkit::cli::{Octo, Output};
use serde_json::{Map, Value, json};
use sqlx::{Connection, Executor};

use crate::cluster::Scratch;
use crate::octo;
use crate::server::Server;

/// Says two lines, then keeps the run's id in the flow's state.
const MEMO: &str = r#"
steps:
  - name: say
    exec: { command: [sh, -c, 'echo hello from the source; echo on stderr >&2'] }
  - name: memo
    state: { set: { last: "{{ run.id }}" } }
"#;

/// Fails.
const BROKEN: &str = "steps:\n  - name: boom\n    exec: { command: [sh, -c, 'exit 3'] }\n";

/// A password put into the target's URL; the test server's trust authentication ignores it.
const PASSWORD: &str = "hunter2-Sekret";

/// The source: `data/octoflow.db` of the working directory.
const SOURCE: &str = "sqlite://data/octoflow.db";

/// `url` with [`PASSWORD`] given for its user; `None` when it names no user to give it to.
fn with_password(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => {
            Some(format!("{scheme}://{user}:{PASSWORD}@{host}"))
        }
        _ => None,
    }
}

/// Fills the data directory's store through the binary: two runs of `memo`, one of `broken`,
/// user `ops`, an admin token (whose secret is returned); then an API schedule, paused,
/// through the store.
async fn fill(o: &Octo) -> String {
    o.clone().args(["run", "memo"]).run().success();
    o.clone().args(["run", "broken"]).run().code(1);
    o.clone().args(["run", "memo"]).run().success();
    o.clone()
        .args([
            "user",
            "add",
            "ops",
            "--role",
            "operator",
            "--password-stdin",
        ])
        .stdin("correct horse\n")
        .run()
        .success();
    let token = o
        .clone()
        .args(["token", "create", "--role", "admin", "--name", "ci"])
        .run();
    token.success();
    let store = SqliteStore::open(&o.path("data/octoflow.db"))
        .await
        .unwrap();
    let mut params = Map::new();
    params.insert("env".to_owned(), json!("prd"));
    let nightly = StoredSchedule {
        id: "nightly".to_owned(),
        flow: "memo".to_owned(),
        schedule: Schedule {
            cron: Some("30 2 * * *".to_owned()),
            every_seconds: None,
            timezone: Some("Europe/Brussels".to_owned()),
            catchup: Catchup::Last,
            params,
        },
        paused: true,
        created_at: chrono::Utc::now(),
    };
    store.add_schedule(&nightly).await.unwrap();
    token.stdout().trim().to_owned()
}

/// Every run of a store with what belongs to it, log places left out (each store gives its
/// own), and every record beside the runs.
async fn everything(store: &dyn Store) -> (Vec<RunRecord>, StoreRecords) {
    let mut runs = Vec::new();
    let mut after = None;
    loop {
        let page = store.export_runs(after, 100).await.unwrap();
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.run.id);
        runs.extend(page);
    }
    for run in &mut runs {
        for line in &mut run.logs {
            line.seq = 0;
        }
    }
    (runs, store.export_records().await.unwrap())
}

/// `octoflow store copy` from the source to `to`, with `extra` flags.
fn copy(o: &Octo, to: &str, extra: &[&str]) -> Output {
    let mut args = vec!["store", "copy", "--from", SOURCE, "--to", to];
    args.extend_from_slice(extra);
    o.clone().args(args).run()
}

/// Asserts the password shows nowhere in what the command printed.
#[track_caller]
fn no_password(out: &Output) {
    for text in [out.stdout(), out.stderr()] {
        assert!(
            !text.contains(PASSWORD),
            "the password was printed:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_copied_to_postgres_serves_everything() {
    let Some(db) = Scratch::new().await else {
        return;
    };
    let o = octo().flow("memo", MEMO).flow("broken", BROKEN);
    let token = fill(&o).await;
    let runs = copy_refuse_resume(&o, &db.url).await;
    a_node_answers_for_all(&db.url, &runs, &token).await;
    db.drop_now().await;
}

/// Copies the source to the database at `url`, checks the copy record by record, that a
/// second copy is refused without a flag and changes nothing with one, and that a copy
/// missing its last run resumes; returns the source's runs.
async fn copy_refuse_resume(o: &Octo, url: &str) -> Vec<RunRecord> {
    let to = with_password(url).unwrap_or_else(|| url.to_owned());
    let shown = octoflow_core::secrets::Redactor::default()
        .text(&to)
        .into_owned();
    let out = copy(o, &to, &[]);
    out.success();
    no_password(&out);
    out.stderr_contains(&format!(
        "copied `{SOURCE}` to `{shown}`: 3 runs (5 step runs, 4 log lines), 1 user, 1 token, \
         1 schedule, 1 schedule mark and 1 state key\n"
    ));

    // Record by record, as the source keeps them.
    let source = SqliteStore::open(&o.path("data/octoflow.db"))
        .await
        .unwrap();
    let target = PostgresStore::connect(url, &PostgresOptions::default())
        .await
        .unwrap();
    let kept = everything(&source).await;
    assert_eq!(kept.0.len(), 3);
    assert_eq!(
        everything(&target).await,
        kept,
        "the copy differs from the source"
    );

    // A non-empty target is refused; run again, a copy changes nothing.
    let refused = copy(o, &to, &[]);
    refused.code(2).stderr_contains(
        "the target is not empty: it holds 3 runs, 1 user, 1 token, 1 schedule and 1 state key; \
         pass --resume",
    );
    no_password(&refused);
    for flag in ["--resume", "--force"] {
        let again = copy(o, &to, &[flag]);
        again
            .success()
            .stderr_contains(": 0 runs (0 step runs, 0 log lines)");
        no_password(&again);
        assert_eq!(everything(&target).await, kept, "{flag} changed the copy");
    }

    // A copy that stopped before its last run goes on after the runs it wrote.
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    conn.execute("DELETE FROM runs WHERE id IN (SELECT id FROM runs ORDER BY id DESC LIMIT 1)")
        .await
        .unwrap();
    drop(conn);
    let resumed = copy(o, &to, &["--resume"]);
    resumed
        .success()
        .stderr_contains(": 1 run (")
        .stderr_contains(&format!("resumed after run {}", kept.0[1].run.id));
    no_password(&resumed);
    assert_eq!(everything(&target).await, kept);
    kept.0
}

/// A `serve` node on the database at `url` answers for the copied runs (with their steps
/// and logs), the flow state, the schedule, the token and the user's login.
async fn a_node_answers_for_all(url: &str, runs: &[RunRecord], token: &str) {
    let node = Server::start(
        &octo().flow("memo", MEMO).flow("broken", BROKEN),
        &["--database", url, "--no-scheduler"],
    );
    let (code, _) = node.get("/api/v1/runs").await;
    assert_eq!(code, 401, "the copied user and token require a token");
    let node = node.bearer(token);
    let (code, listed) = node.get("/api/v1/runs?per_page=100").await;
    assert_eq!(code, 200, "{listed}");
    let mut ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let source_ids: Vec<String> = runs.iter().map(|r| r.run.id.to_string()).collect();
    assert_eq!(ids, source_ids);
    for record in runs {
        let id = record.run.id;
        let (code, mut shown) = node.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(code, 200, "{shown}");
        let steps = shown.as_object_mut().unwrap().remove("steps").unwrap();
        assert_eq!(shown, serde_json::to_value(&record.run).unwrap());
        assert_eq!(steps, serde_json::to_value(&record.steps).unwrap());
        let log = node.text(&format!("/api/v1/runs/{id}/logs")).await;
        assert_eq!(log.lines().count(), record.logs.len(), "{log}");
        if record.run.flow == "memo" {
            assert!(log.contains("say: hello from the source"), "{log}");
            assert!(log.contains("on stderr"), "{log}");
        }
    }
    let (_, state) = node.get("/api/v1/state/memo").await;
    let last_memo = runs.iter().rev().find(|r| r.run.flow == "memo").unwrap();
    assert_eq!(state, json!({"last": last_memo.run.id.to_string()}));
    let (_, schedules) = node.get("/api/v1/schedules").await;
    let nightly = schedules["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "nightly")
        .unwrap_or_else(|| panic!("no schedule `nightly`: {schedules}"));
    assert_eq!(
        (&nightly["flow"], &nightly["paused"], &nightly["cron"]),
        (&json!("memo"), &json!(true), &json!("30 2 * * *"))
    );
    let login: Value = node
        .http
        .post(format!("{}/api/v1/auth/login", node.url))
        .json(&json!({"username": "ops", "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(login["token_type"], "bearer", "{login}");
}

#[test]
fn store_copy_help() {
    let out = octo().args(["store", "copy", "--help"]).run();
    out.success();
    assert_snapshot!("store_copy_help", out.stdout());
}
