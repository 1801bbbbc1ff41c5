//! The store conformance suite: one `async fn` per behaviour every [`Store`] backend must
//! show, and [`store_conformance!`](crate::store_conformance), which turns them into tests.
//!
//! Each case expects a fresh, empty store and panics with a message naming the broken
//! behaviour. Timestamps are whole microseconds, the precision stores keep.
//!
//! Race cases take two handles to one store, as two nodes hold: what one writes, the other
//! must see and respect. Copy cases take two separate fresh stores, a source and a target:
//! the macro makes a store twice for them.
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate
//! octoflow_testkit::store_conformance!(async {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let path = dir.path().join("store.db");
//!     let store = MyStore::open(&path).await.expect("open");
//!     let other = MyStore::open(&path).await.expect("open again");
//!     Some((store, other, dir)) // the third value is kept alive until the case ends
//! });
//! ```
//!
//! A backend that needs a service returns `None` when it is unreachable, through
//! [`services::unreachable`](crate::services::unreachable): the case is skipped with a
//! one-line reason, or fails under `CI`.

mod admission;
mod auth;
mod copy;
mod queue;
mod runs;
mod schedules;
mod writes;

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use octoflow_core::store::{
    Admission, Admitted, Run, RunId, RunStatus, StepFinish, StepRun, StepStatus, Store, TriggerInfo,
};
use serde_json::json;

pub use admission::*;
pub use auth::*;
pub use copy::*;
pub use queue::*;
pub use runs::*;
pub use schedules::*;
pub use writes::*;

/// Expands to one `#[tokio::test]` per conformance case.
///
/// The argument is an expression evaluating to a future that resolves to
/// `Some((store, other, guard))`: a fresh, empty store, a second handle to the same store
/// (opened apart, as another node would), and any value that must live as long as the store
/// does (a temporary directory, a database dropper), or `()` — or `None` to skip the case
/// (a service that cannot be reached, see [`services`](crate::services)). It is evaluated
/// once per case, and twice for a copy case (a source and a target, each fresh). The
/// calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            run_lifecycle,
            insert_ended_records_run_and_steps,
            duplicate_run_conflicts,
            step_runs_in_start_order,
            logs_in_order_and_by_step,
            list_filters,
            list_pagination,
            prune_removes_old_ended_runs,
            running_runs,
            mark_interrupted,
            concurrent_writes,
            unknown_run,
            flow_state,
            set_progress,
            leases_renew_expire_and_requeue,
            owned_runs_are_never_claimed,
            queue_depth_counts_queued,
            wait_for_work_wakes_on_admit,
            request_cancel_by_status,
            locks_list_and_release,
            admit_without_key,
            admit_allow,
            admit_queue_waits_for_slot,
            admit_queue_batch_respects_limit,
            admit_skip,
            admit_dedupe,
            admit_replace,
            admit_idempotency_key,
            auth_users,
            auth_tokens,
            auth_configured,
            auth_configured_by_a_token,
            node_key_is_stable,
            schedules_add_list_remove,
            schedules_pause_and_resume,
            schedules_file_removal_is_kept,
            schedules_fire_once_per_tick,
            schedules_fire_is_atomic,
            schedules_fire_batch,
            schedules_fire_wakes_workers,
        );
        $crate::store_conformance!(@races $make;
            claims_are_exclusive,
            stale_executor_is_fenced,
            concurrent_ends_keep_each_fence,
            admit_skip_concurrent,
            schedules_fire_raced,
            schedule_changes_are_counted,
        );
        $crate::store_conformance!(@copies $make;
            copy_is_exact,
            copy_twice_changes_nothing,
            copy_resumes_after_an_interruption,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((store, _other, _guard)) = $make.await else {
                    return;
                };
                $crate::store::$case(&store).await;
            }
        )+
    };
    (@races $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((store, other, _guard)) = $make.await else {
                    return;
                };
                $crate::store::$case(&store, &other).await;
            }
        )+
    };
    (@copies $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((source, _source_other, _source_guard)) = $make.await else {
                    return;
                };
                let Some((target, _target_other, _target_guard)) = $make.await else {
                    return;
                };
                $crate::store::$case(&source, &target).await;
            }
        )+
    };
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
        progress: None,
        generation: 0,
    }
}

/// Inserts a new run and returns it as recorded; a `running` one is owned by `host-a:42`
/// ([`QueueStore::insert_owned`](octoflow_core::store::QueueStore::insert_owned)), so its
/// fence lets the case write it.
async fn insert(
    store: &dyn Store,
    flow: &str,
    status: RunStatus,
    created_at: DateTime<Utc>,
) -> Run {
    let mut run = new_run(flow, status, created_at);
    if status == RunStatus::Running {
        run.node = Some("host-a:42".to_owned());
        run.started_at = Some(created_at);
        let owned = store.insert_owned(&run, LEASE).await.expect("insert run");
        assert_eq!(owned.generation, 1, "an owned run starts at generation 1");
        return owned;
    }
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

/// The lease of claims in the queue cases.
const LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// A queued run of `flow` with concurrency key `key`, created after every earlier one.
fn keyed(flow: &str, key: Option<&str>) -> Run {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let mut run = new_run(
        flow,
        RunStatus::Queued,
        at(NEXT.fetch_add(1, Ordering::Relaxed), 0),
    );
    run.concurrency_key = key.map(str::to_owned);
    run
}

/// Admits a run that must be created, and returns it as stored.
async fn admit(store: &dyn Store, run: &Run, admission: &Admission) -> Run {
    match store.admit(run, admission).await.expect("admit") {
        Admitted::Created(created) => {
            assert_eq!(created, *run, "the created run is the one given");
            created
        }
        other => panic!("expected a created run, got {other:?}"),
    }
}

/// Claims up to `limit` runs for `node`; their ids, in the order returned.
async fn claim_ids(store: &dyn Store, node: &str, limit: u32) -> Vec<RunId> {
    store
        .claim(node, limit, LEASE)
        .await
        .expect("claim")
        .iter()
        .map(|r| r.id)
        .collect()
}
