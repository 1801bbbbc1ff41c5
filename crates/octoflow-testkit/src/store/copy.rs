//! Conformance cases for copying a store into another ([`CopyStore`](octoflow_core::store::CopyStore)
//! through [`copy_store`]): a store filled through the normal traits reads back the same from
//! its copy — runs of every status with their generations, leases, limits, idempotency keys,
//! cancel requests and freed locks, step runs, logs, state, schedules and marks, users,
//! tokens and the node key — a second copy changes nothing, and an interrupted copy resumes.
//!
//! Each case takes two separate fresh stores of one backend: the source and the target.

use std::time::Duration;

use chrono::Utc;
use octoflow_core::flow::{Catchup, ConcurrencyPolicy, Schedule};
use octoflow_core::store::{
    Admission, ApiToken, CopyCounts, CopyError, CopyMode, CopyOptions, CopyReport, LeaseState,
    LogLine, LogStream, Page, RunFilter, RunId, RunRecord, RunStatus, RunUpdate, StepFinish,
    StepStatus, Store, StoreRecords, StoredSchedule, TokenKind, User, copy_store,
};
use serde_json::{Map, Value, json};

use super::{LEASE, admit, at, keyed, new_run, step};

/// Runs per page in these cases: small, so a copy takes several pages.
const PAGE: u32 = 2;

/// Copies `source` into `target` with `mode`, two runs a page.
async fn copy(
    source: &dyn Store,
    target: &dyn Store,
    mode: CopyMode,
) -> Result<CopyReport, CopyError> {
    let options = CopyOptions { mode, page: PAGE };
    copy_store(source, target, options, |_| {}).await
}

/// Log lines of one step attempt.
fn lines(run: RunId, step: &str, texts: &[&str]) -> Vec<LogLine> {
    texts
        .iter()
        .zip(0..)
        .map(|(text, i)| LogLine {
            run_id: run,
            step: step.to_owned(),
            attempt: 1,
            ts: at(100 + i, 3),
            stream: if i % 2 == 0 {
                LogStream::Stdout
            } else {
                LogStream::Stderr
            },
            line: (*text).to_owned(),
            seq: 0,
        })
        .collect()
}

/// How an attempt ended.
fn finished(status: StepStatus, result: Option<Value>) -> StepFinish {
    StepFinish {
        status,
        finished_at: at(200, 5),
        result,
        error: (status != StepStatus::Succeeded).then(|| "it broke".to_owned()),
    }
}

/// Fills `store` through the normal traits with something of everything it keeps; returns
/// the running run, whose cancel was asked for.
#[allow(clippy::too_many_lines)] // one scene, told in order
async fn fill(store: &dyn Store) -> RunId {
    // Succeeded, with a step, logs, progress, data and a message, claimed twice.
    let done = admit(store, &keyed("sync", None), &Admission::allow()).await;
    let claimed = store.claim("node-a", 1, LEASE).await.expect("claim");
    assert!(store.requeue(&claimed[0].fence()).await.expect("requeue"));
    let claimed = store.claim("node-b", 1, LEASE).await.expect("claim");
    let fence = claimed[0].fence();
    assert_eq!((fence.run, fence.generation), (done.id, 2));
    let attempt = store
        .insert_step_run(&fence, &step(done.id, "fetch", 1, at(100, 1)))
        .await
        .expect("step");
    let result = json!({"zeta": 1, "alpha": [true, null]});
    store
        .finish_step_run(
            &fence,
            attempt,
            &finished(StepStatus::Succeeded, Some(result)),
        )
        .await
        .expect("finish");
    store
        .append_logs(&lines(done.id, "fetch", &["one", "two", "three"]))
        .await
        .expect("logs");
    let progress = octoflow_core::store::Progress {
        current: Some(3.0),
        total: Some(4.0),
        message: Some("almost".to_owned()),
    };
    store
        .set_progress(&done.id, &progress)
        .await
        .expect("progress");
    let end = RunUpdate {
        finished_at: Some(at(300, 9)),
        data: Some(json!({"fetch": {"zeta": 1}})),
        message: Some("all done".to_owned()),
        ..RunUpdate::status(done.id, RunStatus::Succeeded)
    };
    store.end_run(&fence, &[], &end).await.expect("end");

    // Timed out, with an attempt recorded at its end.
    admit(store, &keyed("sync", None), &Admission::allow()).await;
    let slow = store.claim("node-a", 1, LEASE).await.expect("claim");
    let mut attempt = step(slow[0].id, "wait", 1, at(110, 0));
    attempt.status = StepStatus::TimedOut;
    attempt.finished_at = Some(at(111, 0));
    let end = RunUpdate {
        error: Some(octoflow_core::store::RunError {
            step: Some("wait".to_owned()),
            message: "timed out after 1s".to_owned(),
        }),
        ..RunUpdate::status(slow[0].id, RunStatus::TimedOut)
    };
    store
        .end_run(&slow[0].fence(), &[attempt], &end)
        .await
        .expect("end");

    // Failed as interrupted, a step left running.
    let mut lost = new_run("sync", RunStatus::Queued, at(5, 0));
    lost.node = Some("node-gone".to_owned());
    let lost = store.insert_owned(&lost, LEASE).await.expect("owned");
    store
        .insert_step_run(&lost.fence(), &step(lost.id, "copy", 1, at(120, 0)))
        .await
        .expect("step");
    assert!(
        store
            .mark_interrupted(&lost.fence())
            .await
            .expect("interrupt")
    );

    // Cancelled while queued.
    let dropped = admit(store, &keyed("sync", None), &Admission::allow()).await;
    store.request_cancel(&dropped.id).await.expect("cancel");

    // A child run recorded as given, with params, a trigger's detail and a parent.
    let mut child = new_run("child", RunStatus::Succeeded, at(7, 0));
    child.parent_run_id = Some(done.id);
    child.params = json!({"n": 2, "name": "b"});
    child.trigger = octoflow_core::store::TriggerInfo {
        kind: "flow".to_owned(),
        detail: json!({"run": done.id}),
    };
    store.insert_run(&child).await.expect("insert");

    // Running, holding a key that was freed by hand, its cancel asked for, with logs.
    let mut busy = new_run("busy", RunStatus::Queued, at(8, 0));
    busy.node = Some("node-c".to_owned());
    busy.concurrency_key = Some("held".to_owned());
    let busy = store.insert_owned(&busy, LEASE).await.expect("owned");
    store
        .insert_step_run(&busy.fence(), &step(busy.id, "work", 1, at(130, 0)))
        .await
        .expect("step");
    store
        .append_logs(&lines(busy.id, "work", &["started"]))
        .await
        .expect("logs");
    store.request_cancel(&busy.id).await.expect("cancel");
    assert_eq!(store.release_lock("held").await.expect("release"), 1);

    // Queued under a limit, with an idempotency key.
    let rule = Admission {
        policy: ConcurrencyPolicy::Queue,
        limit: 2,
        idempotency_key: Some("order-17".to_owned()),
    };
    admit(store, &keyed("limited", Some("k")), &rule).await;
    // And one queued as plainly as can be.
    admit(store, &keyed("sync", None), &Admission::allow()).await;

    // State, schedules and marks.
    let mut values = Map::new();
    values.insert("cursor".to_owned(), json!(42));
    values.insert("seen".to_owned(), json!({"z": 1, "a": [2]}));
    store.set_state("sync", &values).await.expect("state");
    let mut other = Map::new();
    other.insert("last".to_owned(), json!("2026-03-01"));
    store.set_state("busy", &other).await.expect("state");
    for (id, paused, secs) in [("nightly", true, 0), ("often", false, 1)] {
        let schedule = StoredSchedule {
            id: id.to_owned(),
            flow: "sync".to_owned(),
            schedule: Schedule {
                cron: paused.then(|| "30 2 * * *".to_owned()),
                every_seconds: (!paused).then_some(90),
                timezone: paused.then(|| "Europe/Brussels".to_owned()),
                catchup: if paused { Catchup::All } else { Catchup::Last },
                params: values.clone(),
            },
            paused,
            created_at: at(secs, 0),
        };
        store.add_schedule(&schedule).await.expect("add schedule");
    }
    store
        .set_schedule_paused("flow:sync:0", true, Some(at(60, 0)))
        .await
        .expect("pause");
    store
        .remove_file_schedule("flow:old:0", "every:60")
        .await
        .expect("remove");

    // Users, tokens and the node key.
    for (name, role) in [
        ("ada", octoflow_core::store::Role::Admin),
        ("bob", octoflow_core::store::Role::Viewer),
    ] {
        let user = User {
            name: name.to_owned(),
            role,
            password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
            created_at: at(1, 2),
        };
        store.put_user(&user).await.expect("user");
    }
    let token = |id: &str, kind| ApiToken {
        id: id.to_owned(),
        name: format!("{id} token"),
        role: octoflow_core::store::Role::Operator,
        kind,
        user: (kind == TokenKind::Session).then(|| "ada".to_owned()),
        created_at: at(2, 3),
        expires_at: (kind == TokenKind::Session).then(|| at(900, 0)),
        revoked: false,
    };
    store
        .insert_token(&token("t-api", TokenKind::Api), "digest-api")
        .await
        .expect("token");
    store
        .insert_token(&token("t-session", TokenKind::Session), "digest-session")
        .await
        .expect("token");
    assert!(store.revoke_token("t-api").await.expect("revoke"));
    store.node_key().await.expect("node key");
    busy.id
}

/// Every run of `store` with what belongs to it, in id order; log places left out (each
/// store gives its own).
async fn all_runs(store: &dyn Store) -> Vec<RunRecord> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.export_runs(after, PAGE).await.expect("export runs");
        let Some(last) = page.last() else {
            return all;
        };
        after = Some(last.run.id);
        for mut record in page {
            let places: Vec<u64> = record.logs.iter().map(|l| l.seq).collect();
            assert!(
                places.windows(2).all(|w| w[0] < w[1]),
                "log places of run {} out of order: {places:?}",
                record.run.id
            );
            for line in &mut record.logs {
                line.seq = 0;
            }
            all.push(record);
        }
    }
}

/// Asserts that `target` holds what `source` holds, read through the copy trait and the
/// normal ones.
async fn assert_same(source: &dyn Store, target: &dyn Store) {
    let runs = all_runs(source).await;
    assert_eq!(runs.len(), 8, "the source holds every run made");
    assert_eq!(all_runs(target).await, runs, "runs as exported");
    let records: StoreRecords = source.export_records().await.expect("export");
    assert_eq!(target.export_records().await.expect("export"), records);

    for record in &runs {
        let id = &record.run.id;
        assert_eq!(target.run(id).await.expect("run"), Some(record.run.clone()));
        assert_eq!(
            target.step_runs(id).await.expect("steps"),
            source.step_runs(id).await.expect("steps")
        );
        let text = |lines: Vec<LogLine>| -> Vec<LogLine> {
            lines.into_iter().map(|l| LogLine { seq: 0, ..l }).collect()
        };
        assert_eq!(
            text(target.logs(id, None, 0).await.expect("logs")),
            text(source.logs(id, None, 0).await.expect("logs"))
        );
    }
    let page = Page {
        page: 1,
        per_page: 100,
    };
    let filter = RunFilter::default();
    assert_eq!(
        target.list_runs(&filter, page).await.expect("list"),
        source.list_runs(&filter, page).await.expect("list")
    );
    assert_eq!(
        target.running_runs().await.expect("running"),
        source.running_runs().await.expect("running")
    );
    let later = Utc::now() + chrono::Duration::days(1);
    assert_eq!(
        target.expired_leases(later).await.expect("leases"),
        source.expired_leases(later).await.expect("leases")
    );
    assert_eq!(target.queue_depth().await.expect("depth"), 2);
    assert_eq!(
        target.locks().await.expect("locks"),
        source.locks().await.expect("locks")
    );
    assert_eq!(
        target.users().await.expect("users"),
        source.users().await.expect("users")
    );
    assert_eq!(
        target.tokens().await.expect("tokens"),
        source.tokens().await.expect("tokens")
    );
    assert_eq!(
        target
            .token_by_digest("digest-session")
            .await
            .expect("token"),
        source
            .token_by_digest("digest-session")
            .await
            .expect("token")
    );
    assert_eq!(
        target.schedules().await.expect("schedules"),
        source.schedules().await.expect("schedules")
    );
    assert_eq!(
        target.schedule_marks().await.expect("marks"),
        source.schedule_marks().await.expect("marks")
    );
    for flow in ["sync", "busy"] {
        assert_eq!(
            target.state(flow).await.expect("state"),
            source.state(flow).await.expect("state")
        );
    }
    assert!(target.auth_configured().await.expect("auth"));
    assert_eq!(
        target.node_key().await.expect("key"),
        source.node_key().await.expect("key")
    );
}

/// A copy into a fresh store reads back as the source, and the copied running run is still
/// its executor's: its fence, lease and cancel request came along.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn copy_is_exact(source: &dyn Store, target: &dyn Store) {
    let busy = fill(source).await;
    let report = copy(source, target, CopyMode::Empty).await.expect("copy");
    assert_eq!(
        (report.runs_read, report.runs_present, report.copied.runs),
        (8, 0, 8)
    );
    assert_eq!(
        (report.copied.step_runs, report.copied.log_lines),
        (4, 4),
        "{report:?}"
    );
    let records = &report.copied;
    assert_eq!(
        (records.users, records.tokens, records.schedules),
        (2, 2, 2)
    );
    assert_eq!(
        (
            records.schedule_marks,
            records.state_keys,
            records.node_keys
        ),
        (3, 3, 1)
    );
    assert_eq!(report.resumed_after, None);
    assert_same(source, target).await;

    let held = target.run(&busy).await.expect("run").expect("copied");
    assert_eq!(
        target.renew(&held.fence(), LEASE).await.expect("renew"),
        LeaseState::CancelRequested,
        "the executor's fence still holds the copy, with its cancel request"
    );
    assert_eq!(
        target
            .claim("node-d", 10, Duration::from_secs(5))
            .await
            .expect("claim")
            .len(),
        2,
        "the queued runs are claimable, the one under its limit too"
    );
}

/// Copying again changes nothing: a resume finds every run there, a forced copy skips them
/// all; a copy that wants an empty target is refused, naming what it holds.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn copy_twice_changes_nothing(source: &dyn Store, target: &dyn Store) {
    fill(source).await;
    copy(source, target, CopyMode::Empty).await.expect("copy");
    let runs = all_runs(target).await;
    let records = target.export_records().await.expect("export");

    let refused = copy(source, target, CopyMode::Empty)
        .await
        .expect_err("a target holding a copy is not empty");
    assert_eq!(
        refused.to_string(),
        "the target is not empty: it holds 8 runs, 2 users, 2 tokens, 2 schedules and 3 state keys"
    );
    let again = copy(source, target, CopyMode::Resume)
        .await
        .expect("resume");
    assert_eq!(again.copied, CopyCounts::default(), "{again:?}");
    assert_eq!((again.runs_read, again.runs_present), (0, 0));
    assert_eq!(again.resumed_after, runs.last().map(|r| r.run.id));
    let forced = copy(source, target, CopyMode::Force).await.expect("force");
    assert_eq!(forced.copied, CopyCounts::default(), "{forced:?}");
    assert_eq!((forced.runs_read, forced.runs_present), (8, 8));

    assert_eq!(all_runs(target).await, runs);
    assert_eq!(target.export_records().await.expect("export"), records);
    assert_same(source, target).await;
}

/// A target holding what an interrupted copy wrote (the records, the first page of runs) is
/// resumed after its last run and ends as a whole copy; one holding a run of its own is not
/// taken for a copy.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn copy_resumes_after_an_interruption(source: &dyn Store, target: &dyn Store) {
    fill(source).await;
    let records = source.export_records().await.expect("export");
    target.import_records(&records).await.expect("import");
    let first = source.export_runs(None, 3).await.expect("export");
    target.import_runs(&first).await.expect("import");

    assert!(matches!(
        copy(source, target, CopyMode::Empty).await,
        Err(CopyError::NotEmpty(held)) if held.runs == 3
    ));
    let resumed = copy(source, target, CopyMode::Resume)
        .await
        .expect("resume");
    assert_eq!(resumed.resumed_after, first.last().map(|r| r.run.id));
    assert_eq!(
        (resumed.runs_read, resumed.copied.runs, resumed.copied.users),
        (5, 5, 0)
    );
    assert_same(source, target).await;

    let stray = new_run("stray", RunStatus::Succeeded, at(-1, 0));
    target.insert_run(&stray).await.expect("insert");
    let refused = copy(source, target, CopyMode::Resume)
        .await
        .expect_err("a target with a run of its own is not a copy");
    assert!(
        matches!(&refused, CopyError::NotACopy { what } if what.contains(&stray.id.to_string())),
        "{refused}"
    );
}
