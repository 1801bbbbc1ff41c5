//! Bulk export and import of a store's records exactly as it keeps them, for copying one
//! store into another (`octoflow store copy`, see [`copy_store`](super::copy_store)).
//!
//! A run travels with all its store keeps of it: its claim generation, concurrency limit,
//! idempotency key, lease, cancel request and freed lock, its step runs and its log lines.
//! Beside the runs travel users (with their password hashes), tokens (with the digests of
//! their secrets), API schedules, schedule marks (last fire, pause flag, removal), flow
//! state and the node key.
//!
//! Runs are exported in pages ordered by id: ids are `UUIDv7`, so id order is creation
//! order, and it is one order on every backend (the bytes of the id). Imports never
//! overwrite: a record whose key the target already holds is left as it is (`INSERT … ON
//! CONFLICT DO NOTHING`), so an import given twice changes nothing the second time.
//!
//! Two things are the target's own and not copied as numbers: step run ids (the rows' ids,
//! used only by the executor that wrote them) and log places ([`LogLine::seq`]); both are
//! given by the target in the same order as the source's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ApiToken, LogLine, Run, RunId, ScheduleMark, StepRun, StoreError, StoredSchedule, User,
};

/// A run as a store keeps it, with everything that belongs to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run, with its claim generation.
    pub run: Run,
    /// How many runs may hold its concurrency key while it is claimed (`None`: no limit).
    pub concurrency_limit: Option<u32>,
    /// The idempotency key it was admitted with.
    pub idempotency_key: Option<String>,
    /// When its executor's lease ends (a running run).
    pub lease_until: Option<DateTime<Utc>>,
    /// Whether someone asked to cancel it while it ran.
    pub cancel_requested: bool,
    /// Whether its concurrency key was freed by hand.
    pub lock_released: bool,
    /// Its step runs, in the order they were recorded.
    pub steps: Vec<StepRun>,
    /// Its log lines, in the order they were appended (`seq` is the exporting store's).
    pub logs: Vec<LogLine>,
}

/// An API token with the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token.
    pub token: ApiToken,
    /// The SHA-256 hex digest of its secret.
    pub digest: String,
}

/// A schedule key's mark, with when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRecord {
    /// The mark.
    pub mark: ScheduleMark,
    /// When it was last written; `None` from a store that does not keep it (the in-memory
    /// one): the importing store then writes the time of the import.
    pub updated_at: Option<DateTime<Utc>>,
}

/// One key of a flow's state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRecord {
    /// The flow.
    pub flow: String,
    /// The key.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// When it was last set; `None` as for [`MarkRecord::updated_at`].
    pub updated_at: Option<DateTime<Utc>>,
}

/// Everything a store keeps beside its runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreRecords {
    /// Users, by name.
    pub users: Vec<User>,
    /// API tokens and login sessions, revoked or not.
    pub tokens: Vec<TokenRecord>,
    /// Schedules added through the API. Their pause flag lives in their mark: an import
    /// records the schedule and takes the flag from [`marks`](Self::marks) only.
    pub schedules: Vec<StoredSchedule>,
    /// The mark of every schedule key, file or API.
    pub marks: Vec<MarkRecord>,
    /// Every key of every flow's state.
    pub state: Vec<StateRecord>,
    /// The node-shared key, when one was made.
    pub node_key: Option<Vec<u8>>,
}

/// How many records of each kind: what an import wrote, or what a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyCounts {
    /// Runs.
    pub runs: u64,
    /// Step runs.
    pub step_runs: u64,
    /// Log lines.
    pub log_lines: u64,
    /// Users.
    pub users: u64,
    /// Tokens.
    pub tokens: u64,
    /// API schedules.
    pub schedules: u64,
    /// Schedule marks.
    pub schedule_marks: u64,
    /// Keys of flow state.
    pub state_keys: u64,
    /// The node key (0 or 1).
    pub node_keys: u64,
}

impl std::ops::AddAssign for CopyCounts {
    fn add_assign(&mut self, other: Self) {
        self.runs += other.runs;
        self.step_runs += other.step_runs;
        self.log_lines += other.log_lines;
        self.users += other.users;
        self.tokens += other.tokens;
        self.schedules += other.schedules;
        self.schedule_marks += other.schedule_marks;
        self.state_keys += other.state_keys;
        self.node_keys += other.node_keys;
    }
}

/// Bulk export and import of raw records, for copying a store into another.
#[async_trait]
pub trait CopyStore: Send + Sync {
    /// The ids of up to `limit` runs whose ids sort after `after` (from the first when
    /// `None`), in id order.
    async fn run_ids(&self, after: Option<RunId>, limit: u32) -> Result<Vec<RunId>, StoreError>;
    /// Up to `limit` runs whose ids sort after `after` (from the first when `None`), in id
    /// order, each with everything that belongs to it, read at one moment.
    async fn export_runs(
        &self,
        after: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;
    /// Records runs exactly as given, with their step runs and log lines, all or none. A run
    /// whose id the store already holds is left as it is, and nothing of it is added.
    /// Returns what was recorded (runs, step runs, log lines).
    async fn import_runs(&self, runs: &[RunRecord]) -> Result<CopyCounts, StoreError>;
    /// Everything the store keeps beside its runs.
    async fn export_records(&self) -> Result<StoreRecords, StoreError>;
    /// Records users, tokens, schedules, marks, state and the node key exactly as given,
    /// all or none; each only where the store holds none with its key (a user's name, a
    /// token's id or digest, a schedule's id, a mark's key, a flow and state key, the node
    /// key). Returns what was recorded.
    async fn import_records(&self, records: &StoreRecords) -> Result<CopyCounts, StoreError>;
}
