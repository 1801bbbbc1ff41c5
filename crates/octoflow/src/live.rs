//! What `octoflow run` shows while a run goes, on stderr: on a terminal a live view (one
//! line per step, a spinner while it runs, then ✔ ✖ ↷ with its duration and the error
//! under a failed step); elsewhere one plain line per finished step. Both start with a
//! line naming the run and its flow, and end with one summary line such as
//! `run <id> succeeded in 1.2s`.
#![allow(clippy::print_stderr)] // this module is the run's terminal output

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use octoflow_core::engine::{Observer, RunEvent};
use octoflow_core::store::{Run, RunStatus, StepStatus};

use crate::output::human_duration;

/// Shows a run's progress; also the place for notes printed while a run goes.
pub(crate) struct Progress {
    view: View,
}

enum View {
    /// Nothing but notes (`--quiet`).
    Quiet,
    /// One line per finished step.
    Plain,
    /// Spinners on a terminal.
    Live(Live),
}

struct Live {
    multi: MultiProgress,
    running: Mutex<HashMap<(String, u32), ProgressBar>>,
}

impl Progress {
    /// A live view when `terminal`, plain lines otherwise, nothing when `quiet`.
    pub(crate) fn new(terminal: bool, quiet: bool) -> Self {
        let view = if quiet {
            View::Quiet
        } else if terminal {
            View::Live(Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                running: Mutex::new(HashMap::new()),
            })
        } else {
            View::Plain
        };
        Self { view }
    }

    /// Prints a line on stderr unless quiet.
    pub(crate) fn info(&self, text: &str) {
        if !matches!(self.view, View::Quiet) {
            self.note(text);
        }
    }

    /// Prints a line on stderr, even when quiet, without breaking the live view.
    pub(crate) fn note(&self, text: &str) {
        match &self.view {
            View::Live(live) => {
                if live.multi.println(text).is_err() {
                    eprintln!("{text}");
                }
            }
            View::Quiet | View::Plain => eprintln!("{text}"),
        }
    }
}

impl Observer for Progress {
    fn on_event(&self, event: &RunEvent<'_>) {
        match (&self.view, event) {
            (View::Quiet, _)
            | (View::Plain, RunEvent::StepStarted { .. })
            | (_, RunEvent::DataChanged(_) | RunEvent::LogsStored { .. }) => {}
            (_, RunEvent::RunStarted(run)) => {
                self.note(&format!("run {} of flow `{}` started", run.id, run.flow));
            }
            (View::Live(live), RunEvent::StepStarted { step, attempt }) => {
                live.started(step, *attempt);
            }
            (
                View::Live(live),
                RunEvent::StepFinished {
                    step,
                    attempt,
                    status,
                    duration,
                    error,
                },
            ) => {
                live.finished(step, *attempt, *status, *duration, *error);
            }
            (
                View::Plain,
                RunEvent::StepFinished {
                    step,
                    attempt,
                    status,
                    duration,
                    error,
                },
            ) => {
                eprintln!("{}", step_line(step, *attempt, *status, *duration, *error));
            }
            // Every bar is finished by now: the summary goes below them.
            (_, RunEvent::RunFinished(run)) => eprintln!("{}", summary(run)),
        }
    }
}

impl Live {
    fn started(&self, step: &str, attempt: u32) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(with_attempt(step, attempt));
        bar.enable_steady_tick(Duration::from_millis(100));
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((step.to_owned(), attempt), bar);
    }

    fn finished(
        &self,
        step: &str,
        attempt: u32,
        status: StepStatus,
        duration: Duration,
        error: Option<&str>,
    ) {
        let started = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(step.to_owned(), attempt));
        // A skipped step never started: it gets its line now.
        let bar = started.unwrap_or_else(|| self.multi.add(ProgressBar::new_spinner()));
        let (mark, color) = match status {
            StepStatus::Succeeded => ("✔", "green"),
            StepStatus::Skipped => ("↷", "yellow"),
            StepStatus::Ignored => ("✔", "yellow"),
            _ => ("✖", "red"),
        };
        let template = format!("{{prefix:.{color}}} {{msg}}");
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(mark);
        let mut message = with_attempt(step, attempt);
        match status {
            StepStatus::Succeeded => {
                let _ = write!(message, " ({})", human_duration(duration));
            }
            StepStatus::Skipped => {
                let _ = write!(message, " skipped");
                if let Some(reason) = error {
                    let _ = write!(message, ": {reason}");
                }
            }
            other => {
                let _ = write!(
                    message,
                    " {} ({})",
                    status_words(other),
                    human_duration(duration)
                );
                for line in shown_error(other, error).unwrap_or_default().lines() {
                    let _ = write!(message, "\n    {line}");
                }
            }
        }
        bar.finish_with_message(message);
    }
}

fn with_attempt(step: &str, attempt: u32) -> String {
    if attempt > 1 {
        format!("{step} (attempt {attempt})")
    } else {
        step.to_owned()
    }
}

/// A status as words: `timed out`, not `timed_out`.
fn status_words(status: StepStatus) -> String {
    words(status.as_str())
}

fn words(status: &str) -> String {
    status.replace('_', " ")
}

/// The plain line of a finished step: `step build succeeded (12ms)`,
/// `step x failed (3ms): exit code 3: boom`, `step y skipped: <reason>`.
fn step_line(
    step: &str,
    attempt: u32,
    status: StepStatus,
    duration: Duration,
    error: Option<&str>,
) -> String {
    let mut line = format!("step {step} {}", status_words(status));
    match (status, attempt) {
        (StepStatus::Skipped, _) => {}
        (_, 1) => {
            let _ = write!(line, " ({})", human_duration(duration));
        }
        (_, n) => {
            let _ = write!(line, " (attempt {n}, {})", human_duration(duration));
        }
    }
    if let Some(error) = shown_error(status, error) {
        let _ = write!(line, ": {error}");
    }
    line
}

/// A step's error text, unless it only repeats the status (`cancelled`).
fn shown_error(status: StepStatus, error: Option<&str>) -> Option<&str> {
    error.filter(|e| *e != status.as_str())
}

/// The last line: `run <id> succeeded in 1.2s`, with the reason when it did not.
pub(crate) fn summary(run: &Run) -> String {
    let took = match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => (end - start).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let mut line = format!(
        "run {} {} in {}",
        run.id,
        words(run.status.as_str()),
        human_duration(took)
    );
    if let Some(message) = &run.message {
        let _ = write!(line, ": {message}");
    }
    if let Some(error) = run
        .error
        .as_ref()
        .filter(|_| run.status != RunStatus::Succeeded)
    {
        match &error.step {
            Some(step) => {
                let _ = write!(line, ": step `{step}`: {}", error.message);
            }
            None if error.message != run.status.as_str() => {
                let _ = write!(line, ": {}", error.message);
            }
            None => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines() {
        let ms = Duration::from_millis;
        assert_eq!(
            step_line("build", 1, StepStatus::Succeeded, ms(12), None),
            "step build succeeded (12ms)"
        );
        assert_eq!(
            step_line("x", 1, StepStatus::Failed, ms(3), Some("exit code 3: boom")),
            "step x failed (3ms): exit code 3: boom"
        );
        assert_eq!(
            step_line(
                "x",
                2,
                StepStatus::TimedOut,
                ms(1500),
                Some("timed out after 1s")
            ),
            "step x timed out (attempt 2, 1.5s): timed out after 1s"
        );
        assert_eq!(
            step_line(
                "y",
                1,
                StepStatus::Skipped,
                ms(0),
                Some("`when` is false: false")
            ),
            "step y skipped: `when` is false: false"
        );
    }
}
