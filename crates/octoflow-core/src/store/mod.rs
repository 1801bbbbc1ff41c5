//! What the engine needs from a store, split by aggregate, and the records it keeps.
//!
//! Backends live in their own crates (`octoflow-store-sqlite`, …) and implement these
//! traits; the engine and the binary only ever hold an `Arc<dyn Store>`.

mod memory;
mod records;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use memory::MemoryStore;
pub use records::{
    LogLine, LogStream, Page, Paged, Run, RunError, RunFilter, RunId, RunStatus, RunUpdate,
    StepFinish, StepRun, StepRunId, StepStatus, TriggerInfo,
};

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
}

/// Runs, their step runs and their logs.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run (any status).
    async fn insert_run(&self, run: &Run) -> Result<(), StoreError>;
    /// Changes a run's status and whatever else the update carries.
    async fn update_run(&self, update: &RunUpdate) -> Result<(), StoreError>;
    /// Records the start of one step attempt; returns its id.
    async fn insert_step_run(&self, step: &StepRun) -> Result<StepRunId, StoreError>;
    /// Records the end of one step attempt.
    async fn finish_step_run(&self, id: StepRunId, finish: &StepFinish) -> Result<(), StoreError>;
    /// Appends log lines (already redacted).
    async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError>;
    /// One run.
    async fn run(&self, id: &RunId) -> Result<Option<Run>, StoreError>;
    /// A run's step runs, in the order they started.
    async fn step_runs(&self, id: &RunId) -> Result<Vec<StepRun>, StoreError>;
    /// A run's log lines, in order, optionally of one step.
    async fn logs(&self, id: &RunId, step: Option<&str>) -> Result<Vec<LogLine>, StoreError>;
    /// Runs matching a filter, newest first.
    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<Paged<Run>, StoreError>;
    /// Runs whose status is `running`.
    async fn running_runs(&self) -> Result<Vec<Run>, StoreError>;
    /// Ends a run that its process left `running`: the run and its running step runs become
    /// `failed` with error `interrupted`. Returns false when the run was no longer running.
    async fn mark_interrupted(&self, id: &RunId) -> Result<bool, StoreError>;
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
    /// Leases up to `limit` queued runs, oldest first, to `node` for `lease`; they become
    /// `running`. Two concurrent callers never get the same run.
    async fn claim(&self, node: &str, limit: u32, lease: Duration) -> Result<Vec<Run>, StoreError>;
    /// Extends the lease of a run that `node` holds; false when it no longer holds it.
    async fn renew(&self, id: &RunId, node: &str, lease: Duration) -> Result<bool, StoreError>;
    /// Runs still `running` whose lease ended before `now`.
    async fn expired_leases(&self, now: DateTime<Utc>) -> Result<Vec<Run>, StoreError>;
    /// Puts a `running` run back in the queue, without node or lease; false when it was not
    /// running.
    async fn requeue(&self, id: &RunId) -> Result<bool, StoreError>;
}

/// Everything a node needs from its store.
pub trait Store: RunStore + StateStore + QueueStore {}
impl<T: RunStore + StateStore + QueueStore> Store for T {}
