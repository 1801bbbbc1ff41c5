//! The store conformance suite: one `async fn` per behaviour every [`Store`] backend must
//! show, and [`store_conformance!`](crate::store_conformance), which turns them into tests.
//!
//! Each case expects a fresh, empty store and panics with a message naming the broken
//! behaviour. Timestamps are whole microseconds, the precision stores keep.
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate
//! octoflow_testkit::store_conformance!(async {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let store = MyStore::open(&dir.path().join("store.db")).await.expect("open");
//!     (store, dir) // the second value is kept alive until the case ends
//! });
//! ```

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use octoflow_core::store::{
    LogLine, LogStream, Page, Run, RunError, RunFilter, RunId, RunStatus, RunUpdate, StepFinish,
    StepRun, StepStatus, Store, StoreError, TriggerInfo,
};
use serde_json::json;

/// Expands to one `#[tokio::test]` per conformance case.
///
/// The argument is an expression evaluating to a future that resolves to `(store, guard)`:
/// a fresh, empty store and any value that must live as long as the store does (a temporary
/// directory, a database dropper), or `()`. It is evaluated once per case. The calling crate
/// needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            run_lifecycle,
            duplicate_run_conflicts,
            step_runs_in_start_order,
            logs_in_order_and_by_step,
            list_filters,
            list_pagination,
            running_runs,
            mark_interrupted,
            concurrent_writes,
            unknown_run,
            flow_state,
            claims_are_exclusive,
            leases_renew_expire_and_requeue,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make.await;
                $crate::store::$case(&store).await;
            }
        )+
    };
}

/// Inserting a queued run, moving it to running and then to a final status with data,
/// error and message: each step reads back exactly; `None` fields of an update keep their
/// stored value.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn run_lifecycle(store: &dyn Store) {
    let mut run = new_run("deploy", RunStatus::Queued, at(0, 123_456));
    run.params = json!({"n": 1, "nested": {"list": [1, "two", null]}, "text": "ünïcode"});
    run.trigger = TriggerInfo {
        kind: "webhook".to_owned(),
        detail: json!({"path": "/hooks/x"}),
    };
    run.concurrency_key = Some("deploy-prod".to_owned());
    run.parent_run_id = Some(RunId::new());
    run.data = json!({"input": {"n": 1}});
    store.insert_run(&run).await.expect("insert run");
    assert_eq!(
        read(store, &run.id).await,
        run,
        "queued run reads back as inserted"
    );

    let started = at(1, 7);
    store
        .update_run(&RunUpdate {
            started_at: Some(started),
            node: Some("host-a:42".to_owned()),
            ..RunUpdate::status(run.id, RunStatus::Running)
        })
        .await
        .expect("update to running");
    run.status = RunStatus::Running;
    run.started_at = Some(started);
    run.node = Some("host-a:42".to_owned());
    assert_eq!(read(store, &run.id).await, run, "running run reads back");

    store
        .update_run(&RunUpdate::status(run.id, RunStatus::Running))
        .await
        .expect("status-only update");
    assert_eq!(
        read(store, &run.id).await,
        run,
        "a status-only update keeps the other fields"
    );

    let finished = at(5, 999_999);
    let error = RunError {
        step: Some("build".to_owned()),
        message: "exit code 2".to_owned(),
    };
    let data = json!({"input": {"n": 1}, "build": {"exit": 2}, "empty": {}});
    store
        .update_run(&RunUpdate {
            finished_at: Some(finished),
            error: Some(error.clone()),
            data: Some(data.clone()),
            message: Some("stopped early".to_owned()),
            ..RunUpdate::status(run.id, RunStatus::Failed)
        })
        .await
        .expect("update to failed");
    run.status = RunStatus::Failed;
    run.finished_at = Some(finished);
    run.error = Some(error);
    run.data = data;
    run.message = Some("stopped early".to_owned());
    assert_eq!(read(store, &run.id).await, run, "final run reads back");
}

/// Inserting a run whose id exists is a `Conflict`, and leaves the first run as it was.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn duplicate_run_conflicts(store: &dyn Store) {
    let run = new_run("a", RunStatus::Queued, at(0, 0));
    store.insert_run(&run).await.expect("insert run");
    let mut again = run.clone();
    "b".clone_into(&mut again.flow);
    let err = store
        .insert_run(&again)
        .await
        .expect_err("second insert with the same id");
    assert!(
        matches!(err, StoreError::Conflict { .. }),
        "expected a conflict, got {err:?}"
    );
    assert_eq!(
        read(store, &run.id).await,
        run,
        "the first run is unchanged"
    );
}

/// Step runs come back in the order they started, each attempt its own row, with what
/// their finish recorded; another run's step runs are not mixed in.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn step_runs_in_start_order(store: &dyn Store) {
    let run = insert(store, "steps", RunStatus::Running, at(0, 0)).await;
    let other = insert(store, "steps", RunStatus::Running, at(0, 1)).await;

    let mut expected = Vec::new();
    let mut ids = BTreeSet::new();
    let mut a1 = step(run.id, "a", 1, at(1, 100));
    ids.insert(store.insert_step_run(&a1).await.expect("insert a#1"));
    store
        .insert_step_run(&step(other.id, "a", 1, at(1, 150)))
        .await
        .expect("other run's step");
    let a1_id = *ids.last().expect("id");
    let a1_end = StepFinish {
        status: StepStatus::Failed,
        finished_at: at(2, 200),
        result: None,
        error: Some("connection refused".to_owned()),
    };
    store
        .finish_step_run(a1_id, &a1_end)
        .await
        .expect("finish a#1");
    finish(&mut a1, &a1_end);
    expected.push(a1);

    let mut a2 = step(run.id, "a", 2, at(3, 300));
    let a2_id = store.insert_step_run(&a2).await.expect("insert a#2");
    assert!(ids.insert(a2_id), "step run ids are distinct");
    let a2_end = StepFinish {
        status: StepStatus::Succeeded,
        finished_at: at(4, 400),
        result: Some(json!({"status": 200, "body": ["x", 1.5, true]})),
        error: None,
    };
    store
        .finish_step_run(a2_id, &a2_end)
        .await
        .expect("finish a#2");
    finish(&mut a2, &a2_end);
    expected.push(a2);

    let b1 = step(run.id, "b", 1, at(5, 500));
    assert!(ids.insert(store.insert_step_run(&b1).await.expect("insert b#1")));
    expected.push(b1);

    let got = store.step_runs(&run.id).await.expect("step runs");
    assert_eq!(
        got, expected,
        "step runs in start order with their finishes"
    );
}

/// Log lines come back in append order across batches, all of a run or of one step; a
/// large batch keeps its order; an empty batch is accepted.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn logs_in_order_and_by_step(store: &dyn Store) {
    let run = insert(store, "logs", RunStatus::Running, at(0, 0)).await;
    let other = insert(store, "logs", RunStatus::Running, at(0, 1)).await;
    let line = |id: RunId, step: &str, n: i64, stream: LogStream| LogLine {
        run_id: id,
        step: step.to_owned(),
        attempt: 1,
        ts: at(1, n),
        stream,
        line: format!("{step} line {n}"),
    };

    let first = vec![
        line(run.id, "a", 1, LogStream::Stdout),
        line(run.id, "a", 2, LogStream::Stderr),
        line(other.id, "a", 3, LogStream::Stdout),
        line(run.id, "a", 4, LogStream::Engine),
    ];
    let second: Vec<LogLine> = (5..130)
        .map(|n| {
            line(
                run.id,
                if n % 3 == 0 { "b" } else { "a" },
                n,
                LogStream::Stdout,
            )
        })
        .collect();
    store.append_logs(&first).await.expect("append first batch");
    store.append_logs(&[]).await.expect("append an empty batch");
    store
        .append_logs(&second)
        .await
        .expect("append second batch");

    let all: Vec<LogLine> = first
        .iter()
        .chain(&second)
        .filter(|l| l.run_id == run.id)
        .cloned()
        .collect();
    assert_eq!(
        store.logs(&run.id, None).await.expect("logs"),
        all,
        "all lines in order"
    );
    let only_b: Vec<LogLine> = all.iter().filter(|l| l.step == "b").cloned().collect();
    assert_eq!(
        store.logs(&run.id, Some("b")).await.expect("logs of b"),
        only_b,
        "one step's lines"
    );
    assert!(
        store
            .logs(&run.id, Some("zzz"))
            .await
            .expect("logs of zzz")
            .is_empty()
    );
    assert_eq!(
        store.logs(&other.id, None).await.expect("other logs").len(),
        1
    );
}

/// Each filter of `list_runs` alone and combined, newest first, with the matching total.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn list_filters(store: &dyn Store) {
    let mut r1 = new_run("alpha", RunStatus::Succeeded, at(10, 0));
    r1.trigger = TriggerInfo::new("manual");
    let mut r2 = new_run("alpha", RunStatus::Failed, at(20, 0));
    r2.trigger = TriggerInfo {
        kind: "schedule".to_owned(),
        detail: json!("*/5 * * * *"),
    };
    let mut r3 = new_run("beta", RunStatus::Running, at(30, 0));
    r3.trigger = TriggerInfo {
        kind: "schedule".to_owned(),
        detail: json!("@hourly"),
    };
    let mut r4 = new_run("beta", RunStatus::Queued, at(40, 0));
    r4.trigger = TriggerInfo::new("manual");
    for run in [&r1, &r2, &r3, &r4] {
        store.insert_run(run).await.expect("insert run");
    }
    let ids = |runs: &[&Run]| runs.iter().map(|r| r.id).collect::<Vec<_>>();

    let case = |filter: RunFilter| async move {
        let page = store
            .list_runs(&filter, Page::default())
            .await
            .expect("list runs");
        let got: Vec<RunId> = page.items.iter().map(|r| r.id).collect();
        assert_eq!(page.total, got.len() as u64, "total of {filter:?}");
        got
    };
    let all = case(RunFilter::default()).await;
    assert_eq!(
        all,
        ids(&[&r4, &r3, &r2, &r1]),
        "no filter: all, newest first"
    );
    let flow = case(RunFilter {
        flow: Some("alpha".to_owned()),
        ..RunFilter::default()
    })
    .await;
    assert_eq!(flow, ids(&[&r2, &r1]), "by flow");
    let status = RunFilter {
        status: vec![RunStatus::Failed, RunStatus::Running],
        ..RunFilter::default()
    };
    assert_eq!(case(status).await, ids(&[&r3, &r2]), "by statuses");
    let trigger = RunFilter {
        trigger: Some("schedule".to_owned()),
        ..RunFilter::default()
    };
    assert_eq!(case(trigger).await, ids(&[&r3, &r2]), "by trigger kind");
    let since = RunFilter {
        since: Some(at(20, 0)),
        ..RunFilter::default()
    };
    assert_eq!(
        case(since).await,
        ids(&[&r4, &r3, &r2]),
        "since is inclusive"
    );
    let until = RunFilter {
        until: Some(at(30, 0)),
        ..RunFilter::default()
    };
    assert_eq!(case(until).await, ids(&[&r2, &r1]), "until is exclusive");
    let combined = RunFilter {
        flow: Some("beta".to_owned()),
        status: vec![RunStatus::Running, RunStatus::Queued],
        trigger: Some("schedule".to_owned()),
        since: Some(at(30, 0)),
        until: Some(at(30, 1)),
    };
    assert_eq!(
        case(combined).await,
        ids(&[&r3]),
        "filters combine with and"
    );
    let none = RunFilter {
        flow: Some("gamma".to_owned()),
        ..RunFilter::default()
    };
    assert!(case(none).await.is_empty(), "no match");

    let page = store
        .list_runs(&RunFilter::default(), Page::default())
        .await
        .expect("list runs");
    assert_eq!(
        page.items,
        vec![r4, r3, r2, r1],
        "listed runs are whole records"
    );
}

/// Pages of `list_runs`: each holds its slice, newest first, all report the full total, and
/// a page past the end is empty.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn list_pagination(store: &dyn Store) {
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(
            insert(store, "paged", RunStatus::Succeeded, at(n, 0))
                .await
                .id,
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    for page in 1..=4 {
        let got = store
            .list_runs(&RunFilter::default(), Page { page, per_page: 3 })
            .await
            .expect("list page");
        assert_eq!(
            (got.page, got.per_page, got.total),
            (page, 3, 7),
            "page {page} header"
        );
        assert!(
            got.items.len() <= 3,
            "page {page} holds at most per_page runs"
        );
        if page == 4 {
            assert!(got.items.is_empty(), "a page past the end is empty");
        }
        seen.extend(got.items.iter().map(|r| r.id));
    }
    assert_eq!(
        seen, ids,
        "pages together hold every run once, newest first"
    );
}

/// `running_runs` returns exactly the runs whose status is `running`, whole.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn running_runs(store: &dyn Store) {
    let mut running = Vec::new();
    for (n, status) in RunStatus::ALL.iter().enumerate() {
        let n = i64::try_from(n).expect("small");
        let run = insert(store, "mixed", *status, at(n, 0)).await;
        let second = insert(store, "mixed", *status, at(n, 1)).await;
        if *status == RunStatus::Running {
            running.extend([run, second]);
        }
    }
    let mut got = store.running_runs().await.expect("running runs");
    got.sort_by_key(|r| r.id);
    running.sort_by_key(|r| r.id);
    assert_eq!(got, running, "only running runs");
}

/// `mark_interrupted` fails a running run and its running step runs once, naming a running
/// step; it leaves finished step runs, other runs and non-running runs alone.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn mark_interrupted(store: &dyn Store) {
    let run = insert(store, "crash", RunStatus::Running, at(0, 0)).await;
    let mut done = step(run.id, "a", 1, at(1, 0));
    let done_id = store.insert_step_run(&done).await.expect("insert a");
    let done_end = StepFinish {
        status: StepStatus::Succeeded,
        finished_at: at(2, 0),
        result: Some(json!(1)),
        error: None,
    };
    store
        .finish_step_run(done_id, &done_end)
        .await
        .expect("finish a");
    finish(&mut done, &done_end);
    for name in ["b", "c"] {
        store
            .insert_step_run(&step(run.id, name, 1, at(3, 0)))
            .await
            .expect("insert running");
    }
    let bystander = insert(store, "crash", RunStatus::Running, at(0, 1)).await;
    let queued = insert(store, "crash", RunStatus::Queued, at(0, 2)).await;
    let idle = insert(store, "crash", RunStatus::Running, at(0, 3)).await;

    assert!(
        store.mark_interrupted(&run.id).await.expect("mark"),
        "first mark changes the run"
    );
    assert!(
        !store.mark_interrupted(&run.id).await.expect("mark again"),
        "second mark is a no-op"
    );

    let got = read(store, &run.id).await;
    assert_eq!(got.status, RunStatus::Failed);
    assert!(got.finished_at.is_some(), "finished_at is set");
    let error = got.error.expect("error is set");
    assert_eq!(error.message, "interrupted");
    let step_name = error.step.expect("the error names a running step");
    assert!(
        ["b", "c"].contains(&step_name.as_str()),
        "named step `{step_name}` was running"
    );

    let steps = store.step_runs(&run.id).await.expect("step runs");
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0], done, "a finished step run is left alone");
    for s in &steps[1..] {
        assert_eq!(s.status, StepStatus::Failed, "step `{}` failed", s.step);
        assert_eq!(s.error.as_deref(), Some("interrupted"));
        assert!(s.finished_at.is_some(), "step `{}` has finished_at", s.step);
    }

    assert_eq!(
        read(store, &bystander.id).await,
        bystander,
        "another running run is untouched"
    );
    assert!(
        !store
            .mark_interrupted(&queued.id)
            .await
            .expect("mark queued")
    );
    assert_eq!(
        read(store, &queued.id).await,
        queued,
        "a queued run is untouched"
    );
    assert!(store.mark_interrupted(&idle.id).await.expect("mark idle"));
    let idle_error = read(store, &idle.id).await.error.expect("error is set");
    assert_eq!(
        idle_error,
        RunError {
            step: None,
            message: "interrupted".to_owned()
        }
    );
}

/// Six writers raced with `tokio::join!` insert, update and log runs at once; nothing is
/// lost or mixed up.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn concurrent_writes(store: &dyn Store) {
    let batches = tokio::join!(
        concurrent_worker(store, 0),
        concurrent_worker(store, 1),
        concurrent_worker(store, 2),
        concurrent_worker(store, 3),
        concurrent_worker(store, 4),
        concurrent_worker(store, 5),
    );
    let ids: Vec<RunId> = [
        batches.0, batches.1, batches.2, batches.3, batches.4, batches.5,
    ]
    .into_iter()
    .flatten()
    .collect();
    let expected = 6 * RUNS_PER_WORKER;
    let listed = store
        .list_runs(
            &RunFilter::default(),
            Page {
                page: 1,
                per_page: 1000,
            },
        )
        .await
        .expect("list runs");
    assert_eq!(
        listed.total,
        u64::try_from(expected).expect("positive"),
        "no run lost"
    );
    let unique: BTreeSet<RunId> = listed.items.iter().map(|r| r.id).collect();
    assert_eq!(
        unique,
        ids.iter().copied().collect(),
        "every inserted run is listed once"
    );
    assert!(
        listed
            .items
            .iter()
            .all(|r| r.status == RunStatus::Succeeded),
        "no update lost"
    );
    for id in &ids {
        let steps = store.step_runs(id).await.expect("step runs");
        assert_eq!(steps.len(), 1, "one step run per run");
        assert_eq!(
            steps[0].status,
            StepStatus::Succeeded,
            "step finish not lost"
        );
        assert_eq!(
            store.logs(id, None).await.expect("logs").len(),
            2,
            "log lines not lost"
        );
    }
}

/// Runs per task in [`concurrent_writes`].
const RUNS_PER_WORKER: i64 = 20;

/// One writer of [`concurrent_writes`]: the whole life of `RUNS_PER_WORKER` runs.
async fn concurrent_worker(store: &dyn Store, worker: i64) -> Vec<RunId> {
    let mut ids = Vec::new();
    for n in 0..RUNS_PER_WORKER {
        let run = insert(
            store,
            &format!("w{worker}"),
            RunStatus::Queued,
            at(n, worker),
        )
        .await;
        store
            .update_run(&RunUpdate {
                started_at: Some(at(n, 10 + worker)),
                ..RunUpdate::status(run.id, RunStatus::Running)
            })
            .await
            .expect("update to running");
        let id = store
            .insert_step_run(&step(run.id, "only", 1, at(n, 20)))
            .await
            .expect("step");
        let line = LogLine {
            run_id: run.id,
            step: "only".to_owned(),
            attempt: 1,
            ts: at(n, 30),
            stream: LogStream::Stdout,
            line: format!("worker {worker} run {n}"),
        };
        store
            .append_logs(&[line.clone(), line])
            .await
            .expect("append logs");
        let end = StepFinish {
            status: StepStatus::Succeeded,
            finished_at: at(n, 40),
            result: Some(json!({"worker": worker, "n": n})),
            error: None,
        };
        store.finish_step_run(id, &end).await.expect("finish step");
        store
            .update_run(&RunUpdate {
                finished_at: Some(at(n, 50)),
                data: Some(json!({"only": {"worker": worker, "n": n}})),
                ..RunUpdate::status(run.id, RunStatus::Succeeded)
            })
            .await
            .expect("update to succeeded");
        ids.push(run.id);
    }
    ids
}

/// Reads of a run that was never inserted: no run, no step runs, no lines, nothing to mark.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn unknown_run(store: &dyn Store) {
    insert(store, "known", RunStatus::Running, at(0, 0)).await;
    let id = RunId::new();
    assert_eq!(store.run(&id).await.expect("run"), None);
    assert!(store.step_runs(&id).await.expect("step runs").is_empty());
    assert!(store.logs(&id, None).await.expect("logs").is_empty());
    assert!(!store.mark_interrupted(&id).await.expect("mark interrupted"));
}

/// A fixed instant plus `secs` seconds and `micros` microseconds.
fn at(secs: i64, micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
        .single()
        .expect("valid date")
        + Duration::seconds(secs)
        + Duration::microseconds(micros)
}

/// A run with every optional field empty.
fn new_run(flow: &str, status: RunStatus, created_at: DateTime<Utc>) -> Run {
    Run {
        id: RunId::new(),
        flow: flow.to_owned(),
        flow_version: "sha256:0f1e2d".to_owned(),
        status,
        params: json!({}),
        trigger: TriggerInfo::new("manual"),
        concurrency_key: None,
        parent_run_id: None,
        created_at,
        started_at: None,
        finished_at: None,
        error: None,
        data: json!({}),
        node: None,
        message: None,
    }
}

/// Inserts a new run and returns it.
async fn insert(
    store: &dyn Store,
    flow: &str,
    status: RunStatus,
    created_at: DateTime<Utc>,
) -> Run {
    let run = new_run(flow, status, created_at);
    store.insert_run(&run).await.expect("insert run");
    run
}

/// Reads a run that must exist.
async fn read(store: &dyn Store, id: &RunId) -> Run {
    store.run(id).await.expect("read run").expect("run exists")
}

/// A running attempt.
fn step(run_id: RunId, name: &str, attempt: u32, started_at: DateTime<Utc>) -> StepRun {
    StepRun {
        run_id,
        step: name.to_owned(),
        attempt,
        status: StepStatus::Running,
        started_at,
        finished_at: None,
        result: None,
        error: None,
    }
}

/// What a step run looks like after `end`.
fn finish(step: &mut StepRun, end: &StepFinish) {
    step.status = end.status;
    step.finished_at = Some(end.finished_at);
    step.result.clone_from(&end.result);
    step.error.clone_from(&end.error);
}

/// A flow's state: empty at first, several keys set at once, later sets merge, flows apart.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn flow_state(store: &dyn Store) {
    assert!(store.state("poll").await.expect("state").is_empty());
    let first = serde_json::json!({"cursor": {"dt": "2026-01-01 00:00:00", "key": 7}, "seen": 1});
    store
        .set_state("poll", first.as_object().expect("object"))
        .await
        .expect("set state");
    let second = serde_json::json!({"seen": 2});
    store
        .set_state("poll", second.as_object().expect("object"))
        .await
        .expect("set state");
    let state = store.state("poll").await.expect("state");
    assert_eq!(
        serde_json::Value::Object(state),
        serde_json::json!({"cursor": {"dt": "2026-01-01 00:00:00", "key": 7}, "seen": 2})
    );
    assert!(store.state("other").await.expect("state").is_empty());
}

/// Four workers claiming at once share 20 queued runs: each run to exactly one, oldest first,
/// all `running` on their node; finished and running runs are never claimed.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn claims_are_exclusive(store: &dyn Store) {
    let lease = std::time::Duration::from_secs(30);
    for i in 0..20 {
        insert(store, "queued", RunStatus::Queued, at(i, 0)).await;
    }
    insert(store, "done", RunStatus::Succeeded, at(-10, 0)).await;
    insert(store, "busy", RunStatus::Running, at(-5, 0)).await;
    let (a, b, c, d) = tokio::join!(
        store.claim("node-a", 5, lease),
        store.claim("node-b", 5, lease),
        store.claim("node-c", 5, lease),
        store.claim("node-d", 5, lease),
    );
    let mut seen = BTreeSet::new();
    for (node, claimed) in [("node-a", a), ("node-b", b), ("node-c", c), ("node-d", d)] {
        let claimed = claimed.expect("claim");
        assert_eq!(claimed.len(), 5, "{node} got {} runs", claimed.len());
        for run in claimed {
            assert_eq!(run.flow, "queued");
            assert_eq!(run.status, RunStatus::Running);
            assert_eq!(run.node.as_deref(), Some(node));
            assert!(run.started_at.is_some());
            assert!(seen.insert(run.id), "run {} claimed twice", run.id);
        }
    }
    assert!(
        store
            .claim("node-e", 5, lease)
            .await
            .expect("claim")
            .is_empty()
    );
}

/// A lease is renewed only by its holder; an ended lease is reported; a re-queued run can be
/// claimed again, by another node.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn leases_renew_expire_and_requeue(store: &dyn Store) {
    let first = insert(store, "job", RunStatus::Queued, at(0, 0)).await;
    let second = insert(store, "job", RunStatus::Queued, at(1, 0)).await;
    let claimed = store
        .claim("node-a", 1, std::time::Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        [first.id],
        "oldest first"
    );
    assert!(
        store
            .renew(&first.id, "node-a", std::time::Duration::from_secs(60))
            .await
            .expect("renew")
    );
    assert!(
        !store
            .renew(&first.id, "node-b", std::time::Duration::from_secs(60))
            .await
            .expect("renew")
    );
    assert!(
        !store
            .renew(&second.id, "node-a", std::time::Duration::from_secs(60))
            .await
            .expect("renew")
    );

    let now = Utc::now();
    assert!(store.expired_leases(now).await.expect("expired").is_empty());
    let later = now + Duration::seconds(120);
    let expired = store.expired_leases(later).await.expect("expired");
    assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), [first.id]);

    assert!(store.requeue(&first.id).await.expect("requeue"));
    assert!(
        !store.requeue(&first.id).await.expect("requeue"),
        "only a running run is re-queued"
    );
    let again = store
        .claim("node-b", 2, std::time::Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|r| r.id).collect::<Vec<_>>(),
        [first.id, second.id]
    );
    assert!(again.iter().all(|r| r.node.as_deref() == Some("node-b")));
    assert!(store.expired_leases(now).await.expect("expired").is_empty());
}
