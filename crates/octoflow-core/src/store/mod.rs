//! What the engine needs from a store, split by aggregate, and the records it keeps.
//!
//! Backends live in their own crates (`octoflow-store-sqlite`, …) and implement these
//! traits; the engine and the binary only ever hold an `Arc<dyn Store>`.

#[macro_use]
mod records;
mod access;
mod admission;
mod auth_seen;
mod copier;
mod copy;
mod memory;
mod notice;
mod schedules;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use access::{ApiToken, Role, TokenKind, User};
pub use admission::{Admission, Admitted, Decision, LeaseState, LockInfo};
pub use auth_seen::{AUTH_SEEN_FOR, AuthSeen, Reading};
pub use copier::{COPY_PAGE, CopyError, CopyMode, CopyOptions, CopyReport, Holdings, copy_store};
pub use copy::{
    CopyCounts, CopyStore, MarkRecord, RunRecord, StateRecord, StoreRecords, TokenRecord,
};
pub use memory::MemoryStore;
pub use notice::{Notice, NoticeStore};
pub use records::{
    Fence, LogLine, LogStream, Page, Paged, Progress, Run, RunError, RunFilter, RunId, RunStatus,
    RunUpdate, StepFinish, StepRun, StepRunId, StepStatus, TriggerInfo, now,
};
pub use schedules::{FILE_KEY_PREFIX, Fire, ScheduleMark, ScheduleSource, StoredSchedule};

use crate::error::BoxError;

/// Why a store call failed. Never carries SQL text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (`what` names the rule).
    #[error("conflict: {what}")]
    Conflict {
        /// The rule, such as `run id`.
        what: String,
    },
    /// The store cannot be reached (file locked, server down).
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend failed.
    #[error("store error")]
    Backend(#[source] BoxError),
    /// A write named a fence the run no longer has: its lease was taken over, it was handed
    /// back, or it already ended. The writer no longer owns the run and must stop.
    #[error("run {run} is no longer held by this executor")]
    Fenced {
        /// The run.
        run: RunId,
    },
}

/// Runs, their step runs and their logs.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run as given (a test's fixture, an imported record). The engine
    /// records its runs through [`QueueStore::admit`] and [`QueueStore::insert_owned`].
    async fn insert_run(&self, run: &Run) -> Result<(), StoreError>;
    /// Ends the run `fence` holds: records step attempts that ended (in order), then applies
    /// `update` (a final status) — all or nothing, and only while the run is `running` under
    /// that fence; [`StoreError::Fenced`] otherwise, and nothing changes. A final status
    /// never changes again.
    async fn end_run(
        &self,
        fence: &Fence,
        steps: &[StepRun],
        update: &RunUpdate,
    ) -> Result<(), StoreError>;
    /// Records a run that ran to its end on this node before it was recorded (see
    /// `engine/recording.rs`): `run` as it ended (generation 1, on its node, no lease) with
    /// the records of its step attempts, in order — all or nothing. A run with this id
    /// recorded already is a conflict, and nothing changes.
    async fn insert_ended(&self, run: &Run, steps: &[StepRun]) -> Result<(), StoreError>;
    /// Records the start of one step attempt of the run `fence` holds; returns its id.
    async fn insert_step_run(&self, fence: &Fence, step: &StepRun)
    -> Result<StepRunId, StoreError>;
    /// Records the end of one step attempt of the run `fence` holds.
    async fn finish_step_run(
        &self,
        fence: &Fence,
        id: StepRunId,
        finish: &StepFinish,
    ) -> Result<(), StoreError>;
    /// Appends log lines (already redacted).
    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError>;
    /// One run.
    async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// A run's step runs, in the order they started.
    async fn step_runs(&self, id: &RunId) -> Result<Vec<StepRun>, StoreError>;
    /// A run's log lines, in order, optionally of one step, those whose
    /// [`seq`](LogLine::seq) is above `after` (0 for all): a follower reads only what it has
    /// not seen, by a range of the log, never by skipping what it has.
    async fn logs(
        &self,
        id: &RunId,
        step: Option<&str>,
        after: u64,
    ) -> Result<Vec<LogLine>, StoreError>;
    /// Runs matching a filter, newest first.
    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError>;
    /// Runs whose status is `running`.
    async fn running_runs(&self) -> Result<Vec<Run>, StoreError>;
    /// Ends a run that its process left `running` under `fence`: the run and its running
    /// step runs become `failed` with error `interrupted`. Returns false when the run was no
    /// longer running under that fence.
    async fn mark_interrupted(&self, fence: &Fence) -> Result<bool, StoreError>;
    /// Records what an external job last reported about its progress.
    async fn set_progress(&self, id: &RunId, progress: &Progress) -> Result<(), StoreError>;
    /// Removes up to `limit` runs that ended before `before`, oldest first, with their step
    /// runs and log lines (`limits.run_retention`); returns their ids. A run that has not
    /// ended is never removed.
    async fn prune_runs(&self, before: DateTime<Utc>, limit: u32)
    -> Result<Vec<RunId>, StoreError>;
}

/// Each flow's small key/value state, kept between runs (cursors, last seen ids).
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Every key of a flow's state (empty when it has none).
    async fn state(&self, flow: &str) -> Result<Map<String, Value>, StoreError>;
    /// Sets several keys of a flow's state at once: all or none.
    async fn set_state(&self, flow: &str, values: &Map<String, Value>) -> Result<(), StoreError>;
}

/// The queue of accepted runs: workers claim queued runs with a lease they renew while they
/// run them (SPEC §9). A lease that ends means its node died.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Records a new `queued` run under its flow's concurrency rule and idempotency key
    /// (SPEC §8), in one transaction: concurrent calls with one key never make two runs where
    /// the rule allows one. See [`Admitted`] for the outcomes.
    async fn admit(&self, run: &Run, admission: &Admission) -> Result<Admitted, StoreError>;
    /// Leases up to `limit` queued runs, oldest first, to `node` for `lease`; they become
    /// `running` under a new generation ([`Run::generation`], one more than before). Two
    /// concurrent callers never get the same run. A queued run whose concurrency key already
    /// has its limit of running runs is left queued.
    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError>;
    /// Records a new run already owned by its executor: `running` on `run.node`, generation
    /// 1, leased for `lease`. No claim ever takes it; its executor renews its lease like a
    /// claimed run's. How a child run (`flow`, `flow_loop`) and a run of `octoflow run`
    /// start. Returns the run as recorded.
    async fn insert_owned(&self, run: &Run, lease: Duration) -> Result<Run, StoreError>;
    /// Extends the lease of the run `fence` holds, and says whether someone asked to cancel
    /// it; [`LeaseState::Lost`] when the run is no longer running under that fence.
    async fn renew(&self, fence: &Fence, lease: Duration) -> Result<LeaseState, StoreError>;
    /// Runs still `running` whose lease ended before `now`.
    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError>;
    /// Puts a run `running` under `fence` back in the queue, without node or lease; false
    /// when it was no longer running under that fence.
    async fn requeue(&self, fence: &Fence) -> Result<bool, StoreError>;
    /// Asks for a run to end: a `queued` run becomes `cancelled` at once (error `cancelled`);
    /// a `running` one is marked so that its node cancels it (see [`LeaseState`]). Returns
    /// the run as it is afterwards; `None` when there is no such run.
    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// How many runs are `queued`.
    async fn queue_depth(&self) -> Result<u64, StoreError>;
    /// Resolves when work may have arrived (a run queued or re-queued, or a run ended and
    /// freed a concurrency slot), or after `timeout`. A wake-up that happens while nobody
    /// waits is kept for the next call. An error means the store cannot tell (its
    /// notification channel is down); the caller polls meanwhile.
    async fn wait_for_work(&self, timeout: Duration) -> Result<(), StoreError>;
}

/// Concurrency keys held by running runs (SPEC §8).
#[async_trait]
pub trait LockStore: Send + Sync {
    /// Every held key with the run holding it, oldest first.
    async fn locks(&self) -> Result<Vec<LockInfo>, StoreError>;
    /// Frees a key: the runs holding it no longer count against its limit (they go on
    /// running). Returns how many holds were released.
    async fn release_lock(&self, key: &str) -> Result<u64, StoreError>;
    /// Frees every key; returns how many holds were released.
    async fn release_all_locks(&self) -> Result<u64, StoreError>;
}

/// Users, API tokens and the node-shared signing key (SPEC §11.1).
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Adds a user, or replaces the one with the same name.
    async fn put_user(&self, user: &User) -> Result<(), StoreError>;
    /// One user by name.
    async fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    /// Every user, by name.
    async fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Removes a user; false when there is no such user. Its tokens stay (revoke them).
    async fn delete_user(&self, name: &str) -> Result<bool, StoreError>;
    /// Records a token by the SHA-256 hex digest of its secret (the secret is never stored).
    async fn insert_token(&self, token: &ApiToken, digest: &str) -> Result<(), StoreError>;
    /// The token whose secret has this digest, revoked or not.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>, StoreError>;
    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// Revokes a token; false when there is no such token.
    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;
    /// Whether any user or API token exists or ever existed — a revoked token counts — (then
    /// the API requires a token, and stays closed when the last token is revoked). A store may
    /// answer from a recent read: its own writes of users and tokens show at once, another
    /// process's within a second.
    async fn auth_configured(&self) -> Result<bool, StoreError>;
    /// The 32-byte key shared by every node (signs callback tokens); made on first use.
    async fn node_key(&self) -> Result<Vec<u8>, StoreError>;
}

/// Schedules (SPEC §7): the ones added through the API, and per schedule key the tick it last
/// fired and its pause flag. [`fire`](ScheduleStore::fire) records ticks and admits their
/// runs in one transaction, so a tick fires at most once, across restarts and nodes.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Records a schedule added through the API (with its pause flag); a schedule with the
    /// same id is a conflict.
    async fn add_schedule(&self, schedule: &StoredSchedule) -> Result<(), StoreError>;
    /// Every schedule added through the API, oldest first.
    async fn schedules(&self) -> Result<Vec<StoredSchedule>, StoreError>;
    /// How many times the schedules were added, removed, paused or resumed, through any
    /// handle of the store: a scheduler that sees it change reads them again.
    async fn schedule_changes(&self) -> Result<u64, StoreError>;
    /// Removes an API schedule and its mark; false when there is no such schedule.
    async fn remove_schedule(&self, id: &str) -> Result<bool, StoreError>;
    /// The mark of every key the store remembers, by key.
    async fn schedule_marks(&self) -> Result<Vec<ScheduleMark>, StoreError>;
    /// Pauses or resumes the schedule `key`. `caught_up`, when given, becomes its last fire
    /// time if later than the one kept: the ticks missed while paused are not caught up.
    async fn set_schedule_paused(
        &self,
        key: &str,
        paused: bool,
        caught_up: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    /// Keeps the file schedule `key` removed: its mark remembers `definition`, the removed
    /// schedule's cadence as [`Schedule::cadence_key`](crate::flow::Schedule::cadence_key)
    /// gives it, so that the file declaring another cadence under the key is a new schedule.
    async fn remove_file_schedule(&self, key: &str, definition: &str) -> Result<(), StoreError>;
    /// Fires ticks, in order, in one transaction: all are recorded or none. Each tick fires
    /// unless its schedule is paused, removed (an API schedule that no longer exists) or
    /// already fired at that tick or later; firing records the tick as the key's last fire
    /// time and admits the run as [`admit`](QueueStore::admit) would. One answer per tick:
    /// `None` when it did not fire; a tick whose run the concurrency rule refused (`skip`)
    /// still counts as fired.
    async fn fire(&self, fires: &[Fire]) -> Result<Vec<Option<Admitted>>, StoreError>;
    /// Whether this node may fire schedules now. Nodes that share a store elect one of them
    /// (the leader) and the others only keep their view of the schedules; a store that one
    /// process uses always may. The scheduler asks every few seconds; an answer holds until
    /// the next. (A tick fires at most once whatever the answers: see
    /// [`fire`](Self::fire).)
    async fn lead_schedules(&self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// Everything a node needs from its store.
pub trait Store:
    RunStore + StateStore + QueueStore + LockStore + AuthStore + ScheduleStore + NoticeStore + CopyStore
{
}
impl<T> Store for T where
    T: RunStore
        + StateStore
        + QueueStore
        + LockStore
        + AuthStore
        + ScheduleStore
        + NoticeStore
        + CopyStore
{
}
