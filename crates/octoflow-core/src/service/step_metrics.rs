//! Step durations for the node's Prometheus metrics (`octoflow_step_seconds`).

use crate::engine::{Observer, RunEvent};

/// Records every finished step attempt of one flow's run.
pub(crate) struct StepMetrics {
    flow: String,
}

impl StepMetrics {
    pub(crate) fn new(flow: &str) -> Self {
        Self {
            flow: flow.to_owned(),
        }
    }
}

impl Observer for StepMetrics {
    fn on_event(&self, event: &RunEvent<'_>) {
        if let RunEvent::StepFinished {
            step,
            status,
            duration,
            ..
        } = event
        {
            metrics::histogram!(
                "octoflow_step_seconds",
                "flow" => self.flow.clone(),
                "step" => (*step).to_owned(),
                "status" => status.as_str(),
            )
            .record(duration.as_secs_f64());
        }
    }
}
