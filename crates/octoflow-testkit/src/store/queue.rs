//! Conformance cases for the queue: exclusive claims, leases, depth, wake-ups, cancel
//! requests and held concurrency keys.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use octoflow_core::flow::ConcurrencyPolicy;
use octoflow_core::store::{
    Admission, Fence, LeaseState, LockInfo, RunError, RunId, RunStatus, RunUpdate, StepFinish,
    StepStatus, Store, StoreError,
};

use super::{LEASE, admit, at, claim_ids, insert, keyed, new_run, read};

/// Forty ends written at once through two handles, ten of them under a fence the run no
/// longer has: each keeps its own fence — the thirty end with their step records, the ten
/// are refused as `Fenced` and leave nothing behind, whatever else was written beside them.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn concurrent_ends_keep_each_fence(store: &dyn Store, other: &dyn Store) {
    for i in 0..40 {
        insert(store, "job", RunStatus::Queued, at(i, 0)).await;
    }
    let claimed = store.claim("node-a", 40, LEASE).await.expect("claim");
    assert_eq!(claimed.len(), 40);
    let ends = claimed.iter().enumerate().map(|(i, run)| {
        let mut fence = run.fence();
        let stale = i % 4 == 0;
        if stale {
            fence.generation -= 1;
        }
        let mut record = super::step(run.id, "only", 1, at(100, 0));
        record.status = StepStatus::Succeeded;
        record.finished_at = Some(at(101, 0));
        let handle = if i % 2 == 0 { store } else { other };
        async move {
            let update = RunUpdate {
                finished_at: Some(at(101, 0)),
                ..RunUpdate::status(fence.run, RunStatus::Succeeded)
            };
            let ended = handle
                .end_run(&fence, std::slice::from_ref(&record), &update)
                .await;
            (fence.run, stale, ended)
        }
    });
    for (run, stale, ended) in futures::future::join_all(ends).await {
        let steps = store.step_runs(&run).await.expect("steps");
        let status = read(store, &run).await.status;
        if stale {
            assert!(
                matches!(ended, Err(StoreError::Fenced { run: r }) if r == run),
                "a stale end is refused: {ended:?}"
            );
            assert_eq!(status, RunStatus::Running, "a stale end changes nothing");
            assert!(steps.is_empty(), "a stale end records no step");
        } else {
            ended.expect("an end under its fence");
            assert_eq!(status, RunStatus::Succeeded);
            assert_eq!(steps.len(), 1, "its step record, once");
        }
    }
}

/// Four workers claiming at once share 20 queued runs: each run to exactly one, oldest first,
/// all `running` on their node; finished and running runs are never claimed.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn claims_are_exclusive(store: &dyn Store, other: &dyn Store) {
    let lease = std::time::Duration::from_secs(30);
    for i in 0..20 {
        insert(store, "queued", RunStatus::Queued, at(i, 0)).await;
    }
    insert(store, "done", RunStatus::Succeeded, at(-10, 0)).await;
    insert(store, "busy", RunStatus::Running, at(-5, 0)).await;
    // Two nodes' handles, two claims through each.
    let (a, b, c, d) = tokio::join!(
        store.claim("node-a", 5, lease),
        other.claim("node-b", 5, lease),
        store.claim("node-c", 5, lease),
        other.claim("node-d", 5, lease),
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
    let fence = claimed[0].fence();
    assert_eq!(fence.generation, 1, "a first claim is generation 1");
    let renew = |fence| async move {
        store
            .renew(&fence, std::time::Duration::from_secs(60))
            .await
    };
    assert_eq!(renew(fence).await.expect("renew"), LeaseState::Held);
    assert_eq!(
        renew(Fence {
            generation: 2,
            ..fence
        })
        .await
        .expect("renew"),
        LeaseState::Lost,
        "only the holder's generation renews"
    );
    assert_eq!(
        renew(second.fence()).await.expect("renew"),
        LeaseState::Lost,
        "a queued run has no lease"
    );

    let now = Utc::now();
    assert!(store.expired_leases(now).await.expect("expired").is_empty());
    let later = now + Duration::seconds(120);
    let expired = store.expired_leases(later).await.expect("expired");
    assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), [first.id]);

    assert!(store.requeue(&fence).await.expect("requeue"));
    assert!(
        !store.requeue(&fence).await.expect("requeue"),
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
    assert_eq!(again[0].generation, 2, "each claim is a new generation");
    assert!(store.expired_leases(now).await.expect("expired").is_empty());
}

/// An executor that lost its run — the lease ran out, the run was re-queued and claimed by
/// another node — can write nothing more: its renewal says `Lost`, and its step records, its
/// run's end, a hand-back and a re-queue under the old fence are refused and change nothing,
/// while the new holder writes freely. Then a final status never changes again.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn stale_executor_is_fenced(stale: &dyn Store, store: &dyn Store) {
    insert(store, "job", RunStatus::Queued, at(0, 0)).await;
    let old = stale.claim("node-a", 1, LEASE).await.expect("claim")[0].fence();
    // Node B finds the lease over and takes the run over, through its own handle.
    assert!(store.requeue(&old).await.expect("requeue"));
    let new = store.claim("node-b", 1, LEASE).await.expect("claim")[0].fence();
    let store = stale;
    assert_eq!(new.generation, old.generation + 1);

    assert_eq!(
        store.renew(&old, LEASE).await.expect("renew"),
        LeaseState::Lost
    );
    let refused = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::Fenced { run }) => assert_eq!(run, old.run, "{what}"),
        other => panic!("{what}: expected `Fenced`, got {other:?}"),
    };
    let record = super::step(old.run, "a", 1, at(1, 0));
    refused(
        store.insert_step_run(&old, &record).await.map(|_| ()),
        "a stale step record",
    );
    let ended = RunUpdate::status(old.run, RunStatus::Succeeded);
    refused(
        store
            .end_run(&old, std::slice::from_ref(&record), &ended)
            .await,
        "a stale end",
    );
    assert!(!store.mark_interrupted(&old).await.expect("mark"));
    assert!(!store.requeue(&old).await.expect("requeue"));
    let run = read(store, &old.run).await;
    assert_eq!(
        run.status,
        RunStatus::Running,
        "the new holder still runs it"
    );
    assert_eq!(run.node.as_deref(), Some("node-b"));
    assert!(
        store.step_runs(&old.run).await.expect("steps").is_empty(),
        "no stale record was kept"
    );

    let id = store
        .insert_step_run(&new, &record)
        .await
        .expect("the holder records a step");
    let done = StepFinish {
        status: StepStatus::Succeeded,
        finished_at: at(2, 0),
        result: None,
        error: None,
    };
    store
        .finish_step_run(&new, id, &done)
        .await
        .expect("the holder finishes it");
    refused(
        store.finish_step_run(&old, id, &done).await,
        "a stale step finish",
    );
    store
        .end_run(&new, &[], &RunUpdate::status(new.run, RunStatus::Succeeded))
        .await
        .expect("the holder ends the run");

    // A final status never changes again, whoever asks.
    let again = RunUpdate::status(new.run, RunStatus::Failed);
    assert!(matches!(
        store.end_run(&new, &[], &again).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(!store.mark_interrupted(&new).await.expect("mark"));
    assert!(!store.requeue(&new).await.expect("requeue"));
    assert_eq!(
        store.renew(&new, LEASE).await.expect("renew"),
        LeaseState::Lost
    );
    let cancelled = store.request_cancel(&new.run).await.expect("cancel");
    assert_eq!(
        cancelled.map(|r| r.status),
        Some(RunStatus::Succeeded),
        "a cancel does not change an ended run"
    );
    assert_eq!(
        store.claim("node-c", 1, LEASE).await.expect("claim"),
        [],
        "an ended run is never claimed"
    );
    assert_eq!(read(store, &new.run).await.status, RunStatus::Succeeded);
}

/// A run recorded owned by its executor (a child run, a run of `octoflow run`) is
/// `running` under generation 1 with a lease, is never claimed by a worker, and is written
/// under its fence like a claimed run.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn owned_runs_are_never_claimed(store: &dyn Store) {
    let mut run = new_run("child", RunStatus::Queued, at(0, 0));
    run.node = Some("host-a:42:n1".to_owned());
    let owned = store.insert_owned(&run, LEASE).await.expect("insert owned");
    assert_eq!(owned.status, RunStatus::Running);
    assert_eq!(owned.generation, 1);
    assert!(owned.started_at.is_some());
    assert_eq!(
        read(store, &run.id).await,
        owned,
        "it reads back as returned"
    );
    assert_eq!(store.queue_depth().await.expect("depth"), 0);
    assert!(
        store
            .claim("node-b", 10, LEASE)
            .await
            .expect("claim")
            .is_empty(),
        "a worker never claims an owned run"
    );
    assert_eq!(
        store.renew(&owned.fence(), LEASE).await.expect("renew"),
        LeaseState::Held
    );
    let later = Utc::now() + Duration::seconds(120);
    let expired = store.expired_leases(later).await.expect("expired");
    assert_eq!(
        expired.iter().map(|r| r.id).collect::<Vec<_>>(),
        [run.id],
        "an owned run's lease ends like a claimed one's"
    );
    assert!(matches!(
        store.insert_owned(&run, LEASE).await,
        Err(StoreError::Conflict { .. })
    ));
}

/// `queue_depth` counts the queued runs only.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn queue_depth_counts_queued(store: &dyn Store) {
    assert_eq!(store.queue_depth().await.expect("depth"), 0);
    for (n, status) in RunStatus::ALL.iter().enumerate() {
        let n = i64::try_from(n).expect("small");
        insert(store, "mixed", *status, at(n, 0)).await;
    }
    insert(store, "mixed", RunStatus::Queued, at(10, 0)).await;
    assert_eq!(store.queue_depth().await.expect("depth"), 2);
    claim_ids(store, "node-a", 1).await;
    assert_eq!(store.queue_depth().await.expect("depth"), 1);
}

/// `wait_for_work` returns after its timeout when nothing happens, at once when a run was
/// admitted before the call (the wake-up is kept), and as soon as a run is admitted while it
/// waits.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn wait_for_work_wakes_on_admit(store: &dyn Store) {
    let short = std::time::Duration::from_millis(100);
    let long = std::time::Duration::from_secs(20);

    let started = std::time::Instant::now();
    store.wait_for_work(short).await.expect("wait");
    assert!(started.elapsed() >= short, "returned before its timeout");

    admit(store, &keyed("early", None), &Admission::allow()).await;
    let started = std::time::Instant::now();
    store.wait_for_work(long).await.expect("wait");
    assert!(
        started.elapsed() < long / 2,
        "a wake-up nobody waited for was lost"
    );

    let started = std::time::Instant::now();
    let (woken, ()) = tokio::join!(store.wait_for_work(long), async {
        tokio::time::sleep(short).await;
        admit(store, &keyed("late", None), &Admission::allow()).await;
    });
    woken.expect("wait");
    assert!(
        started.elapsed() < long / 2,
        "an admission did not wake the waiter"
    );
}

/// `request_cancel` ends a queued run at once (error `cancelled`), marks a running one for
/// its node (its renewal says so, its status stays `running`), leaves a finished one alone,
/// and knows no unknown run.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn request_cancel_by_status(store: &dyn Store) {
    let running = insert(store, "job", RunStatus::Queued, at(0, 0)).await;
    assert_eq!(claim_ids(store, "node-a", 1).await, [running.id]);
    let queued = insert(store, "job", RunStatus::Queued, at(1, 0)).await;
    let done = insert(store, "job", RunStatus::Succeeded, at(2, 0)).await;

    let cancelled = store
        .request_cancel(&queued.id)
        .await
        .expect("cancel")
        .expect("known run");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some(), "a cancelled run has ended");
    assert_eq!(
        cancelled.error,
        Some(RunError {
            step: None,
            message: "cancelled".to_owned(),
        })
    );
    assert_eq!(read(store, &queued.id).await, cancelled);

    assert_eq!(
        store
            .renew(&read(store, &running.id).await.fence(), LEASE)
            .await
            .expect("renew"),
        LeaseState::Held
    );
    let marked = store
        .request_cancel(&running.id)
        .await
        .expect("cancel")
        .expect("known run");
    assert_eq!(marked.status, RunStatus::Running, "its node ends it");
    assert_eq!(
        store
            .renew(&read(store, &running.id).await.fence(), LEASE)
            .await
            .expect("renew"),
        LeaseState::CancelRequested
    );

    let unchanged = store
        .request_cancel(&done.id)
        .await
        .expect("cancel")
        .expect("known run");
    assert_eq!(unchanged, done, "a finished run is left alone");
    assert_eq!(
        store.request_cancel(&RunId::new()).await.expect("cancel"),
        None
    );
}

/// `locks` lists the keys running runs hold, with their run; `release_lock` frees one (the
/// next queued run of the key can then be claimed), `release_all_locks` every one.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn locks_list_and_release(store: &dyn Store) {
    let rule = Admission {
        policy: ConcurrencyPolicy::Queue,
        limit: 1,
        idempotency_key: None,
    };
    let first = admit(store, &keyed("deploy", Some("prod")), &rule).await;
    let second = admit(store, &keyed("deploy", Some("prod")), &rule).await;
    let free = admit(store, &keyed("other", None), &rule).await;
    let mut claimed = claim_ids(store, "node-a", 10).await;
    claimed.sort();
    let mut expected = vec![first.id, free.id];
    expected.sort();
    assert_eq!(claimed, expected, "the second run waits for the key");

    let locks = store.locks().await.expect("locks");
    let started = read(store, &first.id).await.started_at;
    assert_eq!(
        locks,
        [LockInfo {
            key: "prod".to_owned(),
            run_id: first.id,
            flow: "deploy".to_owned(),
            status: RunStatus::Running,
            since: started,
            node: Some("node-a".to_owned()),
        }],
        "a run without a key holds nothing"
    );
    assert_eq!(store.release_lock("staging").await.expect("release"), 0);
    assert_eq!(store.release_lock("prod").await.expect("release"), 1);
    assert!(store.locks().await.expect("locks").is_empty());
    assert_eq!(
        read(store, &first.id).await.status,
        RunStatus::Running,
        "it goes on"
    );
    assert_eq!(claim_ids(store, "node-a", 10).await, [second.id]);
    assert_eq!(
        store.locks().await.expect("locks").len(),
        1,
        "the next run holds it"
    );

    assert_eq!(store.release_all_locks().await.expect("release"), 1);
    assert!(store.locks().await.expect("locks").is_empty());
    let fence = read(store, &second.id).await.fence();
    store
        .end_run(
            &fence,
            &[],
            &RunUpdate::status(second.id, RunStatus::Succeeded),
        )
        .await
        .expect("finish");
    assert_eq!(store.release_all_locks().await.expect("release"), 0);
}
