//! Events a run emits while it goes, for live views and trackers.

use std::time::Duration;

use crate::store::{Run, StepStatus};

/// Something that happened in a run.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The run started.
    RunStarted(&'a Run),
    /// A step attempt started.
    StepStarted {
        /// The step.
        step: &'a str,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A step attempt ended (or the step was skipped).
    StepFinished {
        /// The step.
        step: &'a str,
        /// The attempt, from 1.
        attempt: u32,
        /// How it ended.
        status: StepStatus,
        /// How long it took.
        duration: Duration,
        /// Its error text (redacted).
        error: Option<&'a str>,
    },
    /// The run ended.
    RunFinished(&'a Run),
}

/// Receives a run's events, in order. Must not block.
pub trait Observer: Send + Sync {
    /// Called for every event.
    fn on_event(&self, event: &RunEvent<'_>);
}
