//! Conformance cases for admission (SPEC §8): each concurrency policy, racing admissions,
//! and idempotency keys.

use octoflow_core::flow::ConcurrencyPolicy;
use octoflow_core::store::{
    Admission, Admitted, LeaseState, Page, RunError, RunFilter, RunStatus, RunUpdate, Store,
};

use super::{LEASE, admit, claim_ids, keyed, read};

fn rule(policy: ConcurrencyPolicy, limit: u32) -> Admission {
    Admission {
        policy,
        limit,
        idempotency_key: None,
    }
}

/// How many runs the store holds.
async fn count(store: &dyn Store) -> u64 {
    store
        .list_runs(
            &RunFilter::default(),
            Page {
                page: 1,
                per_page: 1,
            },
        )
        .await
        .expect("list runs")
        .total
}

/// Ends a running run with `status`, under the fence it holds now.
async fn end(store: &dyn Store, id: octoflow_core::store::RunId, status: RunStatus) {
    let fence = read(store, &id).await.fence();
    store
        .end_run(&fence, &[], &RunUpdate::status(id, status))
        .await
        .expect("end run");
}

/// A run without a concurrency key is always created `queued`, whatever the policy.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_without_key(store: &dyn Store) {
    for policy in [
        ConcurrencyPolicy::Skip,
        ConcurrencyPolicy::Dedupe,
        ConcurrencyPolicy::Queue,
    ] {
        for _ in 0..2 {
            let mut run = keyed("free", None);
            run.status = RunStatus::Running;
            let admitted = store.admit(&run, &rule(policy, 1)).await.expect("admit");
            run.status = RunStatus::Queued;
            assert_eq!(admitted, Admitted::Created(run.clone()), "{policy:?}");
            assert_eq!(read(store, &run.id).await, run, "recorded queued");
        }
    }
    assert_eq!(
        claim_ids(store, "node-a", 10).await.len(),
        6,
        "no limit applies"
    );
}

/// `allow`: every run is created and claimed, however many hold the key.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_allow(store: &dyn Store) {
    let allow = rule(ConcurrencyPolicy::Allow, 1);
    let runs = [
        admit(store, &keyed("a", Some("k")), &allow).await,
        admit(store, &keyed("a", Some("k")), &allow).await,
        admit(store, &keyed("a", Some("k")), &allow).await,
    ];
    assert_eq!(
        claim_ids(store, "node-a", 10).await,
        runs.iter().map(|r| r.id).collect::<Vec<_>>()
    );
}

/// `queue`: runs are created at once; a claim leaves the second run queued while the first
/// runs, and takes it once the first has ended.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_queue_waits_for_slot(store: &dyn Store) {
    let queue = rule(ConcurrencyPolicy::Queue, 1);
    let first = admit(store, &keyed("a", Some("k")), &queue).await;
    let second = admit(store, &keyed("b", Some("k")), &queue).await;
    let other = admit(store, &keyed("a", Some("other")), &queue).await;
    assert_eq!(claim_ids(store, "node-a", 10).await, [first.id, other.id]);
    assert!(
        claim_ids(store, "node-a", 10).await.is_empty(),
        "the key is held"
    );
    assert_eq!(read(store, &second.id).await.status, RunStatus::Queued);
    end(store, first.id, RunStatus::Succeeded).await;
    assert_eq!(claim_ids(store, "node-b", 10).await, [second.id]);
}

/// `queue` with limit 2: one batch claim takes two runs of the key (and a run without a
/// key), never three; each run that ends lets one more start.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_queue_batch_respects_limit(store: &dyn Store) {
    let queue = rule(ConcurrencyPolicy::Queue, 2);
    let mut keyed_runs = Vec::new();
    for _ in 0..5 {
        keyed_runs.push(admit(store, &keyed("a", Some("k")), &queue).await.id);
    }
    let free = admit(store, &keyed("b", None), &queue).await;
    assert_eq!(
        claim_ids(store, "node-a", 10).await,
        [keyed_runs[0], keyed_runs[1], free.id]
    );
    assert!(
        claim_ids(store, "node-a", 10).await.is_empty(),
        "limit reached"
    );
    end(store, keyed_runs[1], RunStatus::Failed).await;
    assert_eq!(claim_ids(store, "node-a", 10).await, [keyed_runs[2]]);
    end(store, keyed_runs[0], RunStatus::Succeeded).await;
    end(store, keyed_runs[2], RunStatus::Cancelled).await;
    assert_eq!(
        claim_ids(store, "node-a", 10).await,
        [keyed_runs[3], keyed_runs[4]]
    );
    assert_eq!(store.queue_depth().await.expect("depth"), 0);
}

/// `skip` and `dedupe`: while `limit` runs with the key are queued or running, no run is
/// recorded and the oldest holder is returned; once one ends, runs are created again.
async fn refused_while_held(store: &dyn Store, policy: ConcurrencyPolicy) {
    let refuse = rule(policy, 2);
    let first = admit(store, &keyed("a", Some("k")), &refuse).await;
    let second = admit(store, &keyed("a", Some("k")), &refuse).await;
    let expected = |run| match policy {
        ConcurrencyPolicy::Skip => Admitted::Skipped(run),
        _ => Admitted::Deduplicated(run),
    };
    let third = keyed("a", Some("k"));
    let answer = store.admit(&third, &refuse).await.expect("admit");
    assert_eq!(answer, expected(first.clone()), "queued holders count");
    assert_eq!(count(store).await, 2, "nothing recorded");

    assert_eq!(claim_ids(store, "node-a", 10).await, [first.id, second.id]);
    let answer = store.admit(&third, &refuse).await.expect("admit");
    assert_eq!(
        answer,
        expected(read(store, &first.id).await),
        "running holders count"
    );
    assert_eq!(count(store).await, 2, "nothing recorded");

    end(store, first.id, RunStatus::Succeeded).await;
    admit(store, &third, &refuse).await;
    assert_eq!(
        claim_ids(store, "node-a", 10).await,
        [third.id],
        "within the limit"
    );
}

/// `skip` (see `refused_while_held`).
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_skip(store: &dyn Store) {
    refused_while_held(store, ConcurrencyPolicy::Skip).await;
}

/// `dedupe` (see `refused_while_held`).
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_dedupe(store: &dyn Store) {
    refused_while_held(store, ConcurrencyPolicy::Dedupe).await;
}

/// Fifty admissions with one key and policy `skip` raced at once: exactly one run is
/// created, and every other answer names it.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_skip_concurrent(store: &dyn Store, other: &dyn Store) {
    let skip = rule(ConcurrencyPolicy::Skip, 1);
    let runs: Vec<_> = (0..50).map(|_| keyed("race", Some("k"))).collect();
    // Half through each of two handles, as two nodes would.
    let answers = futures::future::join_all(runs.iter().enumerate().map(|(i, run)| {
        let handle = if i % 2 == 0 { store } else { other };
        handle.admit(run, &skip)
    }))
    .await;
    let mut created = Vec::new();
    let mut skipped = Vec::new();
    for answer in answers {
        match answer.expect("admit") {
            Admitted::Created(run) => created.push(run.id),
            Admitted::Skipped(run) => skipped.push(run.id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one run created");
    assert!(
        skipped.iter().all(|id| *id == created[0]),
        "skips name the created run"
    );
    assert_eq!(count(store).await, 1);
}

/// `replace`: the new run is recorded; queued holders of the key end `cancelled` at once
/// (naming the new run), running ones are asked to cancel and keep the key until they end.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_replace(store: &dyn Store) {
    let replace = rule(ConcurrencyPolicy::Replace, 1);
    let a = keyed("a", Some("k"));
    let answer = store.admit(&a, &replace).await.expect("admit");
    assert_eq!(
        answer,
        Admitted::Replaced {
            run: a.clone(),
            cancelled: Vec::new(),
        }
    );
    assert_eq!(claim_ids(store, "node-a", 10).await, [a.id]);

    let b = keyed("a", Some("k"));
    let answer = store.admit(&b, &replace).await.expect("admit");
    assert_eq!(
        answer,
        Admitted::Replaced {
            run: b.clone(),
            cancelled: vec![a.id],
        }
    );
    assert_eq!(read(store, &a.id).await.status, RunStatus::Running);
    assert_eq!(
        store
            .renew(&read(store, &a.id).await.fence(), LEASE)
            .await
            .expect("renew"),
        LeaseState::CancelRequested
    );

    let c = keyed("a", Some("k"));
    let answer = store.admit(&c, &replace).await.expect("admit");
    assert_eq!(
        answer,
        Admitted::Replaced {
            run: c.clone(),
            cancelled: vec![a.id, b.id],
        }
    );
    let b_now = read(store, &b.id).await;
    assert_eq!(b_now.status, RunStatus::Cancelled);
    assert!(b_now.finished_at.is_some());
    assert_eq!(
        b_now.error,
        Some(RunError {
            step: None,
            message: format!("replaced by run {}", c.id),
        })
    );
    assert!(
        claim_ids(store, "node-b", 10).await.is_empty(),
        "the old run holds the key"
    );
    end(store, a.id, RunStatus::Cancelled).await;
    assert_eq!(claim_ids(store, "node-b", 10).await, [c.id]);
}

/// An idempotency key answers the run first made with it for the same flow, whatever its
/// status; another flow's run with the same key is a different run.
///
/// # Panics
/// When the store breaks the behaviour.
pub async fn admit_idempotency_key(store: &dyn Store) {
    let once = Admission {
        idempotency_key: Some("order-42".to_owned()),
        ..rule(ConcurrencyPolicy::Allow, 1)
    };
    let first = admit(store, &keyed("bill", None), &once).await;
    let again = store
        .admit(&keyed("bill", None), &once)
        .await
        .expect("admit");
    assert_eq!(again, Admitted::Existing(first.clone()));
    let skip_once = Admission {
        idempotency_key: Some("order-42".to_owned()),
        ..rule(ConcurrencyPolicy::Skip, 1)
    };
    let answer = store
        .admit(&keyed("bill", Some("k")), &skip_once)
        .await
        .expect("admit");
    assert_eq!(
        answer,
        Admitted::Existing(first.clone()),
        "the key comes first"
    );

    admit(store, &keyed("ship", None), &once).await;
    admit(
        store,
        &keyed("bill", None),
        &rule(ConcurrencyPolicy::Allow, 1),
    )
    .await;
    assert_eq!(claim_ids(store, "node-a", 10).await.len(), 3);
    end(store, first.id, RunStatus::Failed).await;
    let answer = store
        .admit(&keyed("bill", None), &once)
        .await
        .expect("admit");
    assert_eq!(answer, Admitted::Existing(read(store, &first.id).await));
    assert_eq!(count(store).await, 3);
}
