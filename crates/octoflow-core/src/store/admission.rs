//! Records of the queue's admission rules (SPEC §8): how a new run meets the runs that
//! already hold its concurrency key, what came of it, and the held keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Run, RunId, RunStatus};
use crate::flow::ConcurrencyPolicy;

/// The rule a new run is admitted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// What to do when `limit` runs already hold the run's concurrency key. A run without a
    /// key is always created.
    pub policy: ConcurrencyPolicy,
    /// How many runs may hold the key (`queue`: running ones; `skip`/`dedupe`: queued or
    /// running ones; `replace`: the older holders are cancelled).
    pub limit: u32,
    /// A run made earlier with this key (for the same flow) is returned instead of a new one.
    pub idempotency_key: Option<String>,
}

impl Admission {
    /// No concurrency rule and no idempotency key: the run is always created.
    pub fn allow() -> Self {
        Self {
            policy: ConcurrencyPolicy::Allow,
            limit: 1,
            idempotency_key: None,
        }
    }
}

/// What [`QueueStore::admit`](super::QueueStore::admit) did.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// The run was recorded `queued`.
    Created(Run),
    /// A run made earlier with the same idempotency key; nothing was recorded.
    Existing(Run),
    /// `dedupe`: the run already holding the key; nothing was recorded.
    Deduplicated(Run),
    /// `skip`: the run blocking the key; nothing was recorded.
    Skipped(Run),
    /// `replace`: the run was recorded `queued`; the older holders of the key were cancelled
    /// (queued ones at once, running ones are marked for their node to cancel).
    Replaced {
        /// The new run.
        run: Run,
        /// The runs being cancelled in its favour.
        cancelled: Vec<RunId>,
    },
}

impl Admitted {
    /// The run the caller should answer with.
    pub fn run(&self) -> &Run {
        match self {
            Self::Created(run)
            | Self::Existing(run)
            | Self::Deduplicated(run)
            | Self::Skipped(run)
            | Self::Replaced { run, .. } => run,
        }
    }
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The node still holds the run; carry on.
    Held,
    /// The node still holds the run, and someone asked to cancel it.
    CancelRequested,
    /// The node no longer holds the run (it ended, or the lease ran out and it was taken).
    Lost,
}

/// One held concurrency key (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LockInfo {
    /// The rendered key.
    pub key: String,
    /// The run holding it.
    pub run_id: RunId,
    /// That run's flow.
    pub flow: String,
    /// That run's status (`running`).
    pub status: RunStatus,
    /// When that run started.
    pub since: Option<DateTime<Utc>>,
    /// The node running it.
    pub node: Option<String>,
}
