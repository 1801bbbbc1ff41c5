//! Conformance cases for running runs, interrupted-run recovery, concurrent writers,
//! unknown runs, progress and flow state.

use std::collections::BTreeSet;

use octoflow_core::store::{
    Fence, LogLine, LogStream, Page, Progress, RunError, RunFilter, RunId, RunStatus, RunUpdate,
    StepFinish, StepStatus, Store,
};
use serde_json::json;

use super::{at, finish, insert, read, step};

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
    let fence = run.fence();
    let done_id = store
        .insert_step_run(&fence, &done)
        .await
        .expect("insert a");
    let done_end = StepFinish {
        status: StepStatus::Succeeded,
        finished_at: at(2, 0),
        result: Some(json!(1)),
        error: None,
    };
    store
        .finish_step_run(&fence, done_id, &done_end)
        .await
        .expect("finish a");
    finish(&mut done, &done_end);
    for name in ["b", "c"] {
        store
            .insert_step_run(&fence, &step(run.id, name, 1, at(3, 0)))
            .await
            .expect("insert running");
    }
    let bystander = insert(store, "crash", RunStatus::Running, at(0, 1)).await;
    let queued = insert(store, "crash", RunStatus::Queued, at(0, 2)).await;
    let idle = insert(store, "crash", RunStatus::Running, at(0, 3)).await;

    assert!(
        store.mark_interrupted(&fence).await.expect("mark"),
        "first mark changes the run"
    );
    assert!(
        !store.mark_interrupted(&fence).await.expect("mark again"),
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
            .mark_interrupted(&queued.fence())
            .await
            .expect("mark queued")
    );
    assert_eq!(
        read(store, &queued.id).await,
        queued,
        "a queued run is untouched"
    );
    assert!(
        store
            .mark_interrupted(&idle.fence())
            .await
            .expect("mark idle")
    );
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
            store.logs(id, None, 0).await.expect("logs").len(),
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
            RunStatus::Running,
            at(n, worker),
        )
        .await;
        let fence = run.fence();
        let id = store
            .insert_step_run(&fence, &step(run.id, "only", 1, at(n, 20)))
            .await
            .expect("step");
        let line = LogLine {
            run_id: run.id,
            step: "only".to_owned(),
            attempt: 1,
            ts: at(n, 30),
            stream: LogStream::Stdout,
            line: format!("worker {worker} run {n}"),
            seq: 0,
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
        store
            .finish_step_run(&fence, id, &end)
            .await
            .expect("finish step");
        store
            .end_run(
                &fence,
                &[],
                &RunUpdate {
                    finished_at: Some(at(n, 50)),
                    data: Some(json!({"only": {"worker": worker, "n": n}})),
                    ..RunUpdate::status(run.id, RunStatus::Succeeded)
                },
            )
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
    assert!(store.logs(&id, None, 0).await.expect("logs").is_empty());
    let fence = Fence {
        run: id,
        generation: 1,
    };
    assert!(
        !store
            .mark_interrupted(&fence)
            .await
            .expect("mark interrupted")
    );
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

/// `set_progress` records what a run last reported, replacing what it reported before; a run
/// without a report has none, and an unknown run is ignored.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn set_progress(store: &dyn Store) {
    let run = insert(store, "import", RunStatus::Running, at(0, 0)).await;
    assert_eq!(read(store, &run.id).await.progress, None);
    let halfway = Progress {
        current: Some(50.0),
        total: Some(100.0),
        message: Some("copying ünïcode".to_owned()),
    };
    store.set_progress(&run.id, &halfway).await.expect("set");
    assert_eq!(read(store, &run.id).await.progress, Some(halfway));
    let fraction = Progress {
        current: Some(0.25),
        total: None,
        message: None,
    };
    store.set_progress(&run.id, &fraction).await.expect("set");
    let stored = read(store, &run.id).await;
    assert_eq!(stored.progress, Some(fraction), "replaced, not merged");
    assert_eq!(stored.status, RunStatus::Running, "nothing else changes");
    store
        .set_progress(&RunId::new(), &Progress::default())
        .await
        .expect("unknown run");
}
