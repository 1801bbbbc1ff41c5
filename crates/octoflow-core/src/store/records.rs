//! Plain records that cross the store boundary.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The current time at the precision every store keeps (microseconds): a time taken here
/// reads back from the store unchanged.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A run's id: a `UUIDv7`, so ids sort by creation time.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct RunId(pub uuid::Uuid);

impl RunId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The word stored and shown for this value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!("unknown {} `{s}`", stringify!($name))),
                }
            }
        }
    };
}

text_enum! {
    /// Where a run is in its life (SPEC §6).
    RunStatus {
        /// Accepted, waiting for a worker.
        Queued = "queued",
        /// A worker is running it.
        Running = "running",
        /// Every step succeeded, was ignored or skipped.
        Succeeded = "succeeded",
        /// A step failed, or the process died.
        Failed = "failed",
        /// Someone cancelled it.
        Cancelled = "cancelled",
        /// The run's timeout ran out.
        TimedOut = "timed_out",
    }
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

text_enum! {
    /// Where a step attempt is in its life (SPEC §6).
    StepStatus {
        /// Not started yet.
        Pending = "pending",
        /// Running now.
        Running = "running",
        /// Done, result stored.
        Succeeded = "succeeded",
        /// Failed; the run fails.
        Failed = "failed",
        /// Failed with an error matched by `ignore_errors`; the flow went on.
        Ignored = "ignored",
        /// Not run (`when` was false, or an earlier step failed).
        Skipped = "skipped",
        /// Cancelled with its run.
        Cancelled = "cancelled",
        /// The step's timeout ran out.
        TimedOut = "timed_out",
    }
}

/// What started a run: `{kind, detail}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerInfo {
    /// `manual`, `schedule`, `webhook`, `watch`, `flow`, `cli`.
    pub kind: String,
    /// Kind-specific detail (the schedule, the hook path, the upstream run).
    #[serde(default)]
    pub detail: Value,
}

impl TriggerInfo {
    /// A trigger without detail.
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            detail: Value::Null,
        }
    }
}

/// Why a run did not succeed: `{step, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunError {
    /// The step that failed, when one did.
    pub step: Option<String>,
    /// What happened (redacted).
    pub message: String,
}

/// A run record (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// The flow's name.
    pub flow: String,
    /// Hash of the flow file it ran.
    pub flow_version: String,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Validated inputs.
    pub params: Value,
    /// What started it.
    pub trigger: TriggerInfo,
    /// Rendered concurrency key, when the flow has one.
    pub concurrency_key: Option<String>,
    /// The run whose `flow` step started this one.
    pub parent_run_id: Option<RunId>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it did not succeed.
    pub error: Option<RunError>,
    /// The run's data: initially its input, finally every step's result (redacted).
    pub data: Value,
    /// The node that ran it (`host:pid:nonce`).
    pub node: Option<String>,
    /// The message an `exit` step ended the run with.
    pub message: Option<String>,
    /// What the run last reported about its progress (through its callback URL).
    #[serde(default)]
    pub progress: Option<Progress>,
    /// How many times the run was claimed: the fencing token of its current executor, which
    /// every write of that executor names (0: never claimed). Kept in the store only.
    #[serde(skip)]
    pub generation: u64,
}

impl Run {
    /// The right of this run's current executor to write it (see [`Fence`]).
    pub fn fence(&self) -> Fence {
        Fence {
            run: self.id,
            generation: self.generation,
        }
    }
}

/// The right to write a running run, given by the claim that started it (a fencing token).
///
/// Every write of an executor — a lease renewal, a step record, the run's end, a hand-back —
/// names its fence, and the store applies it only while the run is still `running` under
/// that generation. A write with an older fence (a lease taken over, a run that ended) is
/// refused with [`StoreError::Fenced`](super::StoreError::Fenced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The run.
    pub run: RunId,
    /// The generation of the claim.
    pub generation: u64,
}

/// How far a run has got: `{current, total, message}` (SPEC §6).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Units done.
    #[serde(default)]
    pub current: Option<f64>,
    /// Units in all.
    #[serde(default)]
    pub total: Option<f64>,
    /// What is happening now.
    #[serde(default)]
    pub message: Option<String>,
}

/// A change to a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunUpdate {
    /// Which run.
    pub id: RunId,
    /// Its new status.
    pub status: RunStatus,
    /// Set when it starts.
    pub started_at: Option<DateTime<Utc>>,
    /// Set when it ends.
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when it fails.
    pub error: Option<RunError>,
    /// The final data.
    pub data: Option<Value>,
    /// The node running it.
    pub node: Option<String>,
    /// An `exit` step's message.
    pub message: Option<String>,
}

impl RunUpdate {
    /// An update that only changes the status.
    pub fn status(id: RunId, status: RunStatus) -> Self {
        Self {
            id,
            status,
            started_at: None,
            finished_at: None,
            error: None,
            data: None,
            node: None,
            message: None,
        }
    }
}

impl RunUpdate {
    /// The update that gives a run's record the end `run` reached.
    pub fn ended(run: &Run) -> Self {
        Self {
            id: run.id,
            status: run.status,
            started_at: run.started_at,
            finished_at: run.finished_at,
            error: run.error.clone(),
            data: Some(run.data.clone()),
            node: run.node.clone(),
            message: run.message.clone(),
        }
    }
}

/// The id of a step run row.
pub type StepRunId = i64;

/// One attempt of one step (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRun {
    /// The run.
    pub run_id: RunId,
    /// The step's name.
    pub step: String,
    /// 1-based attempt.
    pub attempt: u32,
    /// Its status.
    pub status: StepStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its result (capped; a large one is `{"$file": …, "bytes": …}`).
    pub result: Option<Value>,
    /// Its error text (redacted).
    pub error: Option<String>,
}

/// How a step attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFinish {
    /// Final status.
    pub status: StepStatus,
    /// When.
    pub finished_at: DateTime<Utc>,
    /// The result, capped.
    pub result: Option<Value>,
    /// The error text, redacted.
    pub error: Option<String>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// A process's standard output.
    Stdout,
    /// A process's standard error.
    Stderr,
    /// The engine's own notes.
    Engine,
}

impl LogStream {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Engine => "engine",
        }
    }
}

impl FromStr for LogStream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stdout" => Ok(Self::Stdout),
            "stderr" => Ok(Self::Stderr),
            "engine" => Ok(Self::Engine),
            _ => Err(format!("unknown log stream `{s}`")),
        }
    }
}

/// One timestamped log line of a step attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step: String,
    /// The attempt.
    pub attempt: u32,
    /// When the line was written.
    pub ts: DateTime<Utc>,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line break, redacted.
    pub line: String,
    /// Its place in the store's log, increasing in the order lines were appended (given by
    /// the store; 0 for a line not stored yet). A follower reads the lines after the last
    /// one it has.
    #[serde(skip)]
    pub seq: u64,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only this flow.
    pub flow: Option<String>,
    /// Only these statuses.
    pub status: Vec<RunStatus>,
    /// Only this trigger kind.
    pub trigger: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Only the children of this run (started by its `flow` steps).
    pub parent: Option<RunId>,
}

/// A page request: 1-based page and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: 50,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paged<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
    /// Items in all pages.
    pub total: u64,
}
