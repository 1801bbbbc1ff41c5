//! The store conformance suite against PostgreSQL, each case in a fresh schema
//! (`oft_test_<random>`) of the database at `OCTOFLOW_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped when the case passes and kept, named,
//! when it fails. Race cases get a second store connected apart to the same schema, as a
//! second node would be. Unreachable, the cases are skipped with one line — or fail when
//! `CI` or `OCTOFLOW_REQUIRE_SERVICES` is set.
//!
//! Beside the suite: what only this store has — migrations raced and refused, wake-ups
//! across nodes and schemas and after a dropped listening connection, and URLs whose
//! password never shows.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use octoflow_core::store::{
    Admission, QueueStore, RunId, RunStatus, RunStore, StoreError, TriggerInfo,
};
use octoflow_store_postgres::{PostgresOptions, PostgresStore};
use octoflow_testkit::services;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const URL_VAR: &str = "OCTOFLOW_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema made for one test: dropped when the test passes, kept (and named) when it fails.
struct Scratch {
    url: String,
    schema: String,
}

impl Scratch {
    /// A new schema name on a reachable server, or `None` (skipped) when it is unreachable.
    async fn new() -> Option<Self> {
        let url = services::url(URL_VAR, DEFAULT_URL);
        if let Err(error) = PgConnection::connect(&url).await {
            return services::unreachable("PostgreSQL", URL_VAR, &error.to_string());
        }
        let schema = format!("oft_test_{}", uuid::Uuid::new_v4().simple());
        Some(Self { url, schema })
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            max_connections: 4,
            schema: Some(self.schema.clone()),
        }
    }

    /// A store on the schema, as one more node.
    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, &self.options())
            .await
            .expect("connect the store")
    }

    /// Runs the test's own statement.
    async fn exec(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            #[allow(clippy::print_stdout)] // the one line a kept schema leaves in the output
            {
                println!("kept schema {} of the failed test", self.schema);
            }
            return;
        }
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime: the statement gets a thread and runtime of its
        // own.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            });
        })
        .join()
        .unwrap();
    }
}

/// Two stores on one fresh schema, as two nodes, and the schema's guard.
async fn fresh() -> Option<(PostgresStore, PostgresStore, Scratch)> {
    let scratch = Scratch::new().await?;
    let store = scratch.store().await;
    let other = scratch.store().await;
    Some((store, other, scratch))
}

octoflow_testkit::store_conformance!(fresh());

/// A queued run of `flow`.
fn queued(flow: &str) -> octoflow_core::store::Run {
    octoflow_core::store::Run {
        id: RunId::new(),
        flow: flow.to_owned(),
        flow_version: "v".to_owned(),
        status: RunStatus::Queued,
        params: serde_json::json!({}),
        trigger: TriggerInfo::new("manual"),
        concurrency_key: None,
        parent_run_id: None,
        created_at: chrono::Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
        data: serde_json::json!({}),
        node: None,
        message: None,
        progress: None,
        generation: 0,
    }
}

/// Whether `wait_for_work` of `waiter` returns well before `long` once `wake` runs.
async fn woken_by(waiter: &PostgresStore, wake: impl Future<Output = ()>) -> bool {
    let long = Duration::from_secs(20);
    let started = Instant::now();
    let (answer, ()) = tokio::join!(waiter.wait_for_work(long), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        wake.await;
    });
    answer.expect("wait");
    started.elapsed() < long / 2
}

/// Waits out a wake-up already kept (an admission's own notification arriving late).
async fn settle(store: &PostgresStore) {
    store
        .wait_for_work(Duration::from_millis(300))
        .await
        .unwrap();
}

/// Several nodes connecting to a new schema at once all succeed: the migrations take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connects() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let connects = (0..4).map(|_| scratch.store());
    let stores = futures::future::join_all(connects).await;
    assert_eq!(stores[0].queue_depth().await.unwrap(), 0);
}

/// A schema brought up to date by a newer build is refused, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_a_newer_build_is_refused() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    drop(scratch.store().await);
    scratch
        .exec(&format!(
            "UPDATE {}.schema_version SET version = 99",
            scratch.schema
        ))
        .await;
    let err = PostgresStore::connect(&scratch.url, &scratch.options())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let message = octoflow_core::error::chain(&err);
    assert!(
        message.contains(&format!(
            "schema `{}` was made by a newer octoflow (schema 99; this build knows up to 13)",
            scratch.schema
        )),
        "{message}"
    );
}

/// Without a schema option, the tables live in the first schema of the URL's
/// `search_path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_schema_the_urls_search_path_is_used() {
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    scratch
        .exec(&format!("CREATE SCHEMA {}", scratch.schema))
        .await;
    let sep = if scratch.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}options=-csearch_path%3D{}",
        scratch.url, scratch.schema
    );
    let store = PostgresStore::connect(&url, &PostgresOptions::default())
        .await
        .expect("connect");
    store
        .admit(&queued("plain"), &Admission::allow())
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&scratch.url).await.unwrap();
    let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.runs",
        scratch.schema
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(count, 1);
}

/// Work admitted through one node wakes a worker waiting on another; a store in another
/// schema of the same database is not woken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_cross_nodes_not_schemas() {
    let Some((store, other, _scratch)) = fresh().await else {
        return;
    };
    let Some((elsewhere, _, _elsewhere_scratch)) = fresh().await else {
        return;
    };
    assert!(
        woken_by(&store, async {
            other
                .admit(&queued("remote"), &Admission::allow())
                .await
                .unwrap();
        })
        .await,
        "an admission through another node did not wake the waiter"
    );
    let started = Instant::now();
    let short = Duration::from_millis(500);
    let (waited, ()) = tokio::join!(elsewhere.wait_for_work(short), async {
        other
            .admit(&queued("remote"), &Admission::allow())
            .await
            .unwrap();
    });
    waited.unwrap();
    assert!(
        started.elapsed() >= short,
        "a store of another schema was woken"
    );
}

/// When the listening connection drops, waits are short until it is back; once back, the
/// store is woken again by work from any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_survive_a_dropped_listening_connection() {
    let Some((store, other, scratch)) = fresh().await else {
        return;
    };
    let mut admin = PgConnection::connect(&scratch.url).await.unwrap();
    let listening = format!("LISTEN \"octoflow_{}\"", scratch.schema);
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
    )
    .bind(&listening)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true, true], "each store's listening connection");

    // Down or just back: a waiter is not left waiting for a wake-up that was lost.
    let started = Instant::now();
    store.wait_for_work(Duration::from_secs(20)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));

    // Back within a few tries, listening on the same channel.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listeners: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE query = $1")
                .bind(&listening)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if listeners == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the listeners did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle(&store).await;
    assert!(
        woken_by(&store, async {
            other
                .admit(&queued("after"), &Admission::allow())
                .await
                .unwrap();
        })
        .await,
        "not woken after listening again"
    );
}

/// A URL's password shows in no error and no `Debug` output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_password_is_never_shown() {
    const SECRET: &str = "hunter2-Sekret";
    let shown =
        |err: &StoreError| format!("{err} | {err:?} | {}", octoflow_core::error::chain(err));
    // Nothing listens on port 1.
    let refused = PostgresStore::connect(
        &format!("postgres://octo:{SECRET}@127.0.0.1:1/test"),
        &PostgresOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    let text = shown(&refused);
    assert!(!text.contains(SECRET), "{text}");
    assert!(
        text.contains("127.0.0.1:1/test"),
        "the target is named: {text}"
    );
    let invalid = PostgresStore::connect(
        &format!("postgres://octo:{SECRET}@127.0.0.1:port/test"),
        &PostgresOptions::default(),
    )
    .await
    .unwrap_err();
    let text = shown(&invalid);
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("invalid PostgreSQL URL"), "{text}");

    // Connected with a password in its URL (trust authentication ignores it).
    let Some(scratch) = Scratch::new().await else {
        return;
    };
    let Some((scheme, rest)) = scratch.url.split_once("://") else {
        panic!("{URL_VAR} is not a URL");
    };
    let url = match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => format!("{scheme}://{user}:{SECRET}@{host}"),
        _ => scratch.url.clone(),
    };
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password.to_owned());
    let store = PostgresStore::connect(&url, &scratch.options())
        .await
        .expect("connect");
    let debug = format!("{store:?}");
    assert!(debug.contains(&scratch.schema), "{debug}");
    if let Some(password) = password {
        assert!(!debug.contains(&password), "{debug}");
    }
}

/// Four workers on two nodes claiming and ending runs of one key with limit 2 as fast as they
/// can: no claim ever lets a third run of the key start, and every run ends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_claims_raced_never_overshoot_a_limit() {
    let Some((store, other, scratch)) = fresh().await else {
        return;
    };
    let rule = Admission {
        policy: octoflow_core::flow::ConcurrencyPolicy::Queue,
        limit: 2,
        idempotency_key: None,
    };
    for i in 0..80 {
        let mut run = queued("raced");
        run.concurrency_key = (i % 2 == 0).then(|| "k".to_owned());
        store.admit(&run, &rule).await.unwrap();
    }
    let worker = |handle: &PostgresStore, node: &'static str| {
        let (handle, url) = (handle.clone(), scratch.url.clone());
        let running = format!(
            "SELECT count(*) FROM {}.runs WHERE concurrency_key = 'k' AND status = 'running'",
            scratch.schema
        );
        async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let mut ended = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let claimed = handle
                    .claim(node, 3, Duration::from_secs(60))
                    .await
                    .unwrap();
                let holders: i64 = sqlx::query_scalar(AssertSqlSafe(running.clone()))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert!(holders <= 2, "{holders} runs of the key running at once");
                if claimed.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                for run in claimed {
                    let end = octoflow_core::store::RunUpdate::status(run.id, RunStatus::Succeeded);
                    handle.end_run(&run.fence(), &[], &end).await.unwrap();
                    ended.push(run.id);
                }
            }
            ended
        }
    };
    let (a, b, c, d) = tokio::join!(
        worker(&store, "a"),
        worker(&other, "b"),
        worker(&store, "c"),
        worker(&other, "d"),
    );
    let mut all: Vec<RunId> = [a, b, c, d].concat();
    all.sort();
    assert_eq!(all.len(), 80, "every run claimed and ended");
    all.dedup();
    assert_eq!(all.len(), 80, "no run claimed twice");
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

/// A run's end records the step attempts that ended with it, in order, after the ones
/// recorded before, with their results' keys in the order written; a fenced end records
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_records_its_steps_in_order() {
    let Some((store, _other, _scratch)) = fresh().await else {
        return;
    };
    let mut run = queued("ends");
    run.node = Some("n".to_owned());
    let owned = store
        .insert_owned(&run, Duration::from_secs(60))
        .await
        .unwrap();
    let step = |name: &str, result| octoflow_core::store::StepRun {
        run_id: run.id,
        step: name.to_owned(),
        attempt: 1,
        status: octoflow_core::store::StepStatus::Succeeded,
        started_at: owned.started_at.unwrap(),
        finished_at: owned.started_at,
        result,
        error: None,
    };
    let first = step("first", None);
    store.insert_step_run(&owned.fence(), &first).await.unwrap();
    let ended = [
        step("b", Some(serde_json::json!({"z": 1, "a": [true]}))),
        step("a", None),
    ];
    let done = octoflow_core::store::RunUpdate::status(run.id, RunStatus::Succeeded);
    store.end_run(&owned.fence(), &ended, &done).await.unwrap();
    let recorded = store.step_runs(&run.id).await.unwrap();
    assert_eq!(recorded, [first, ended[0].clone(), ended[1].clone()]);
    assert_eq!(
        serde_json::to_string(&recorded[1].result).unwrap(),
        r#"{"z":1,"a":[true]}"#,
        "objects keep their keys in the order written"
    );
    assert!(matches!(
        store.end_run(&owned.fence(), &ended, &done).await,
        Err(StoreError::Fenced { .. })
    ));
    assert_eq!(store.step_runs(&run.id).await.unwrap().len(), 3);
}
