//! Events a run emits while it goes, for live views and trackers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

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
    /// A step's result was stored: the run's data now (secrets redacted). Sent only to
    /// observers that [want it](Observer::wants_data).
    DataChanged(&'a Map<String, Value>),
    /// Log lines of the run were stored (sent from the run's log writer, so it may arrive
    /// between other events).
    LogsStored {
        /// How many lines.
        lines: usize,
    },
    /// The run ended.
    RunFinished(&'a Run),
}

/// Receives a run's events, in order. Must not block.
pub trait Observer: Send + Sync {
    /// Called for every event.
    fn on_event(&self, event: &RunEvent<'_>);

    /// Whether to receive [`RunEvent::DataChanged`] (it costs a redacted copy of the data).
    fn wants_data(&self) -> bool {
        false
    }
}

/// Several observers as one.
pub struct Observers(pub Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn on_event(&self, event: &RunEvent<'_>) {
        for o in &self.0 {
            if o.wants_data() || !matches!(event, RunEvent::DataChanged(_)) {
                o.on_event(event);
            }
        }
    }

    fn wants_data(&self) -> bool {
        self.0.iter().any(|o| o.wants_data())
    }
}
