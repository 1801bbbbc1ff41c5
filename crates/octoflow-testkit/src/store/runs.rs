//! Conformance cases for run records: their lifecycle, step runs, logs, filters and pages.

use std::collections::BTreeSet;

use octoflow_core::store::{
    LogLine, LogStream, Page, Run, RunError, RunFilter, RunId, RunStatus, RunUpdate, StepFinish,
    StepStatus, Store, StoreError, TriggerInfo,
};
use serde_json::json;

use super::{at, finish, insert, new_run, read, step};

/// A run that ran before it was recorded is recorded at its end in one call, with its step
/// attempts in order: it reads back exactly, no claim, hand-back or lease sweep ever sees
/// it, and recording it again is a conflict that changes nothing.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn insert_ended_records_run_and_steps(store: &dyn Store) {
    let mut run = new_run("hook", RunStatus::Succeeded, at(0, 250_001));
    run.node = Some("host-a:42".to_owned());
    run.generation = 1;
    run.concurrency_key = Some("hook".to_owned());
    run.started_at = Some(at(0, 250_002));
    run.finished_at = Some(at(0, 750_003));
    run.data = json!({"__input__": {"n": 1}, "shaped": {"n": 2}});
    run.message = Some("done".to_owned());
    let steps: Vec<_> = ["shape", "answer"]
        .iter()
        .zip(0..)
        .map(|(name, i)| {
            let mut record = step(run.id, name, 1, at(0, 300_000 + i));
            record.status = StepStatus::Succeeded;
            record.finished_at = Some(at(0, 400_000 + i));
            record.result = Some(json!({"step": name}));
            record
        })
        .collect();
    store
        .insert_ended(&run, &steps)
        .await
        .expect("insert ended");
    assert_eq!(read(store, &run.id).await, run);
    assert_eq!(store.step_runs(&run.id).await.expect("steps"), steps);
    assert!(
        store
            .claim("host-b:1", 10, super::LEASE)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(store.running_runs().await.expect("running").is_empty());
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    assert!(
        store
            .expired_leases(later)
            .await
            .expect("expired")
            .is_empty()
    );

    let again = store.insert_ended(&run, &steps).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "a second record of one run: {again:?}"
    );
    assert_eq!(store.step_runs(&run.id).await.expect("steps").len(), 2);
}

/// Inserting a queued run, claiming it and ending it with data, error and message: each
/// step reads back exactly; `None` fields of the end keep their stored value.
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

    let claimed = store
        .claim("host-a:42", 1, super::LEASE)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "the queued run is claimed");
    let started = claimed[0].started_at.expect("a claimed run has started");
    run.status = RunStatus::Running;
    run.started_at = Some(started);
    run.node = Some("host-a:42".to_owned());
    run.generation = 1;
    assert_eq!(claimed[0], run, "the claim returns the run as stored");
    assert_eq!(read(store, &run.id).await, run, "running run reads back");

    let finished = at(5, 999_999);
    let error = RunError {
        step: Some("build".to_owned()),
        message: "exit code 2".to_owned(),
    };
    let data = json!({"input": {"n": 1}, "build": {"exit": 2}, "empty": {}});
    store
        .end_run(
            &run.fence(),
            &[],
            &RunUpdate {
                finished_at: Some(finished),
                error: Some(error.clone()),
                data: Some(data.clone()),
                message: Some("stopped early".to_owned()),
                ..RunUpdate::status(run.id, RunStatus::Failed)
            },
        )
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
    let fence = run.fence();
    let mut a1 = step(run.id, "a", 1, at(1, 100));
    ids.insert(
        store
            .insert_step_run(&fence, &a1)
            .await
            .expect("insert a#1"),
    );
    store
        .insert_step_run(&other.fence(), &step(other.id, "a", 1, at(1, 150)))
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
        .finish_step_run(&fence, a1_id, &a1_end)
        .await
        .expect("finish a#1");
    finish(&mut a1, &a1_end);
    expected.push(a1);

    let mut a2 = step(run.id, "a", 2, at(3, 300));
    let a2_id = store
        .insert_step_run(&fence, &a2)
        .await
        .expect("insert a#2");
    assert!(ids.insert(a2_id), "step run ids are distinct");
    let a2_end = StepFinish {
        status: StepStatus::Succeeded,
        finished_at: at(4, 400),
        result: Some(json!({"status": 200, "body": ["x", 1.5, true]})),
        error: None,
    };
    store
        .finish_step_run(&fence, a2_id, &a2_end)
        .await
        .expect("finish a#2");
    finish(&mut a2, &a2_end);
    expected.push(a2);

    let b1 = step(run.id, "b", 1, at(5, 500));
    assert!(
        ids.insert(
            store
                .insert_step_run(&fence, &b1)
                .await
                .expect("insert b#1")
        )
    );
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
        seq: 0,
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
    // Lines come back as appended, each with its place in the log, increasing.
    let unplaced = |lines: Vec<LogLine>| -> Vec<LogLine> {
        lines.into_iter().map(|l| LogLine { seq: 0, ..l }).collect()
    };
    let stored = store.logs(&run.id, None, 0).await.expect("logs");
    assert!(
        stored.windows(2).all(|w| w[0].seq < w[1].seq) && stored[0].seq > 0,
        "increasing places"
    );
    assert_eq!(unplaced(stored.clone()), all, "all lines in order");
    // A follower that has seen some lines reads only the rest.
    assert_eq!(
        unplaced(
            store
                .logs(&run.id, None, stored[1].seq)
                .await
                .expect("logs after 2")
        ),
        all[2..],
        "the lines after the first two"
    );
    let last = stored.last().expect("lines").seq;
    assert!(
        store
            .logs(&run.id, None, last)
            .await
            .expect("logs past the end")
            .is_empty()
    );
    let only_b: Vec<LogLine> = all.iter().filter(|l| l.step == "b").cloned().collect();
    let stored_b = store.logs(&run.id, Some("b"), 0).await.expect("logs of b");
    assert_eq!(unplaced(stored_b.clone()), only_b, "one step's lines");
    assert_eq!(
        unplaced(
            store
                .logs(&run.id, Some("b"), stored_b[0].seq)
                .await
                .expect("logs of b after its first")
        ),
        only_b[1..],
        "one step's lines after its first"
    );
    assert!(
        store
            .logs(&run.id, Some("zzz"), 0)
            .await
            .expect("logs of zzz")
            .is_empty()
    );
    assert_eq!(
        store
            .logs(&other.id, None, 0)
            .await
            .expect("other logs")
            .len(),
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
    r4.parent_run_id = Some(r1.id);
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
        ..RunFilter::default()
    };
    assert_eq!(
        case(combined).await,
        ids(&[&r3]),
        "filters combine with and"
    );
    let children = RunFilter {
        parent: Some(r1.id),
        ..RunFilter::default()
    };
    assert_eq!(case(children).await, ids(&[&r4]), "by parent run");
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

/// Retention: `prune_runs` removes runs that ended before the cutoff, oldest first and at
/// most `limit`, with their step runs and log lines; running runs and newer ones stay.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn prune_removes_old_ended_runs(store: &dyn Store) {
    let ended_at = |secs| async move {
        let run = insert(store, "old", RunStatus::Running, at(0, 0)).await;
        store
            .insert_step_run(&run.fence(), &step(run.id, "a", 1, at(0, 1)))
            .await
            .expect("step run");
        let line = LogLine {
            run_id: run.id,
            step: "a".to_owned(),
            attempt: 1,
            ts: at(0, 2),
            stream: LogStream::Stdout,
            line: "hello".to_owned(),
            seq: 0,
        };
        store.append_logs(&[line]).await.expect("log line");
        let mut update = RunUpdate::status(run.id, RunStatus::Succeeded);
        update.finished_at = Some(at(secs, 0));
        store
            .end_run(&run.fence(), &[], &update)
            .await
            .expect("end run");
        run.id
    };
    let oldest = ended_at(10).await;
    let older = ended_at(20).await;
    let recent = ended_at(100).await;
    let running = insert(store, "old", RunStatus::Running, at(0, 0)).await;

    let cutoff = at(50, 0);
    let first = store.prune_runs(cutoff, 1).await.expect("prune");
    assert_eq!(first, vec![oldest], "the oldest first, at most `limit`");
    let second = store.prune_runs(cutoff, 10).await.expect("prune");
    assert_eq!(second, vec![older], "then the next");
    assert!(
        store
            .prune_runs(cutoff, 10)
            .await
            .expect("prune")
            .is_empty()
    );
    for gone in [oldest, older] {
        assert!(
            store.run(&gone).await.expect("read").is_none(),
            "run removed"
        );
        assert!(
            store.step_runs(&gone).await.expect("steps").is_empty(),
            "steps removed"
        );
        assert!(
            store.logs(&gone, None, 0).await.expect("logs").is_empty(),
            "logs removed"
        );
    }
    assert_eq!(
        read(store, &recent).await.status,
        RunStatus::Succeeded,
        "newer stays"
    );
    assert_eq!(
        read(store, &running.id).await.status,
        RunStatus::Running,
        "running stays"
    );
    assert_eq!(store.step_runs(&recent).await.expect("steps").len(), 1);
}
