//! Records of schedules (SPEC §7, §11.4): the schedules added through the API, and what the
//! store remembers of every schedule, file or API, by its key: when it last fired and whether
//! someone paused it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Admission, Run};
use crate::flow::Schedule;

/// The prefix of the keys of schedules declared in flow files: `flow:<name>:<index>`.
pub const FILE_KEY_PREFIX: &str = "flow:";

text_enum! {
    /// Where a schedule was declared.
    ScheduleSource {
        /// In a flow file (`schedule:`, `cron:`/`every_seconds:` or `triggers:`); keyed
        /// `flow:<name>:<index>`.
        File = "file",
        /// Added through `POST /api/v1/schedules`; keyed by its id.
        Api = "api",
    }
}

impl ScheduleSource {
    /// The source a key belongs to: file keys start with [`FILE_KEY_PREFIX`].
    pub fn of_key(key: &str) -> Self {
        if key.starts_with(FILE_KEY_PREFIX) {
            Self::File
        } else {
            Self::Api
        }
    }
}

/// A schedule added through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    /// Its id (also its key).
    pub id: String,
    /// The flow it starts.
    pub flow: String,
    /// When, in which time zone, what to catch up, with which params.
    pub schedule: Schedule,
    /// Whether it is paused (kept in its [`ScheduleMark`]).
    pub paused: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// One tick to fire: the schedule's key, the tick, and the run to admit for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// The schedule's key.
    pub key: String,
    /// The tick.
    pub tick: DateTime<Utc>,
    /// The run to admit when the tick fires.
    pub run: Run,
    /// The run's concurrency rule.
    pub admission: Admission,
}

/// What the store remembers of one schedule key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleMark {
    /// The schedule's key: an API schedule's id, or `flow:<name>:<index>`.
    pub key: String,
    /// The tick it last fired (or skipped, on resume); `None` when it never fired.
    pub last_fire: Option<DateTime<Utc>>,
    /// `Some(true)` paused and `Some(false)` resumed through the API; `None` when nobody
    /// said (a file schedule then follows `autostart`).
    pub paused: Option<bool>,
    /// For a file schedule removed through the API: the cadence that was removed.
    pub removed: Option<String>,
}
