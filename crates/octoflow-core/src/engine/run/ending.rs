//! How a run's course ends: its final status from why it halted, the reason a step is
//! skipped, and the steps that run after it — the spooler's `finally_step`, `on_failure`
//! after a failure or a timeout, `on_cancel` after a cancel.

use serde_json::{Value, json};

use super::{Execution, Halt};
use crate::engine::step::StepRunner;
use crate::flow::{Flow, Step, format_duration};
use crate::store::{RunError, RunStatus, StoreError};

impl Execution<'_> {
    /// After a failure: the spooler's `finally_step` (when it was skipped), then `on_failure`.
    pub(super) async fn run_recovery(
        &mut self,
        runner: &StepRunner<'_>,
        flow: &Flow,
        skipped: Vec<usize>,
        failure: Option<&RunError>,
        status: RunStatus,
    ) -> Result<(), StoreError> {
        if let Some(name) = &flow.finally_step
            && let Some(i) = flow.steps.iter().position(|s| &s.name == name)
            && skipped.contains(&i)
        {
            let outcome = runner.run(&flow.steps[i], self.scope(), true).await?;
            self.apply(&flow.steps[i], outcome);
        }
        let error = json!({
            "step": failure.and_then(|f| f.step.clone()),
            "message": failure.map(|f| f.message.clone()).unwrap_or_default(),
            "kind": status.as_str(),
        });
        self.run_after(runner, &flow.on_failure, &error).await
    }

    /// The steps of `on_failure` or `on_cancel`, in order, each seeing `error`.
    pub(super) async fn run_after(
        &mut self,
        runner: &StepRunner<'_>,
        steps: &[Step],
        error: &Value,
    ) -> Result<(), StoreError> {
        for step in steps {
            let scope = self.scope().with_name("error", error.clone());
            let outcome = runner.run(step, scope, false).await?;
            self.apply(step, outcome);
        }
        Ok(())
    }
}

/// Why a step is skipped: the run halted, or a step it depends on did not succeed.
pub(super) fn skip_reason(halt: Option<&Halt>, blocked: bool) -> &'static str {
    match (halt, blocked) {
        (Some(Halt::Exit(_)), _) => "the run exited",
        (Some(Halt::End), _) => "the run jumped to `__end__`",
        (Some(Halt::Cancelled), _) => "the run was cancelled",
        (Some(Halt::TimedOut), _) => "the run timed out",
        (None, true) => "an earlier step did not succeed",
        (None, false) => "not run",
    }
}

/// The run's status from why it halted and its first failure.
pub(super) fn final_status(
    halt: Option<&Halt>,
    failure: Option<RunError>,
    flow: &Flow,
) -> (RunStatus, Option<RunError>) {
    match (halt, failure) {
        (Some(Halt::Cancelled), _) => (
            RunStatus::Cancelled,
            Some(RunError {
                step: None,
                message: "cancelled".to_owned(),
            }),
        ),
        (Some(Halt::TimedOut), _) => {
            let limit = flow.timeout.map(format_duration).unwrap_or_default();
            let message = format!("run timed out after {limit}");
            (
                RunStatus::TimedOut,
                Some(RunError {
                    step: None,
                    message,
                }),
            )
        }
        (_, Some(failure)) => (RunStatus::Failed, Some(failure)),
        (_, None) => (RunStatus::Succeeded, None),
    }
}
