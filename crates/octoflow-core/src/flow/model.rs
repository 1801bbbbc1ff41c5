//! The validated flow: what the engine runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Params, Schedule, Trigger};
use crate::expr::{Expr, JqProgram};
use crate::step::PreparedStep;

/// A flow, checked and ready to run.
#[derive(Debug)]
pub struct Flow {
    /// Its unique name.
    pub name: String,
    /// One line for lists.
    pub description: Option<String>,
    /// Declared inputs.
    pub params: Params,
    /// Schedules, from `schedule:`, `cron:`/`every_seconds:` and `triggers:`.
    pub schedules: Vec<Schedule>,
    /// The other triggers (webhooks, watches, flow chaining).
    pub triggers: Vec<Trigger>,
    /// The concurrency rule.
    pub concurrency: Option<Concurrency>,
    /// Timeout of the whole run.
    pub timeout: Option<Duration>,
    /// Default retry of every step.
    pub retry: Option<RetryPolicy>,
    /// Added to every `exec` step's environment.
    pub env: BTreeMap<String, String>,
    /// The steps, in file order.
    pub steps: Vec<Step>,
    /// Steps run after a failed run.
    pub on_failure: Vec<Step>,
    /// Steps run after a cancelled run.
    pub on_cancel: Vec<Step>,
    /// The spooler's `finally_step`: a step run after a failure, `when` ignored.
    pub finally_step: Option<String>,
    /// How many steps may run at once.
    pub max_parallel: usize,
    /// How many `goto` jumps a run may make.
    pub max_jumps: u32,
    /// What happens to a run whose node died.
    pub on_interrupt: OnInterrupt,
    /// Whether a re-queued run skips the steps that already succeeded.
    pub resume: bool,
    /// The source file, when loaded from one.
    pub path: Option<PathBuf>,
    /// The source text.
    pub source: Arc<str>,
    /// Hash of the source text.
    pub version: String,
}

impl Flow {
    /// A step by name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Whether every step a run of this flow may run — its steps, `on_failure` and
    /// `on_cancel` — touches nothing outside the run ([`StepKind::SIDE_EFFECT_FREE`]).
    ///
    /// [`StepKind::SIDE_EFFECT_FREE`]: crate::step::StepKind::SIDE_EFFECT_FREE
    pub fn side_effect_free(&self) -> bool {
        self.steps
            .iter()
            .chain(&self.on_failure)
            .chain(&self.on_cancel)
            .all(|step| step.prepared.side_effect_free())
    }
}

/// One step, checked.
#[derive(Debug)]
pub struct Step {
    /// Unique name in the flow.
    pub name: String,
    /// The kind's name.
    pub kind: &'static str,
    /// The settings block as written (for dry runs).
    pub settings: Value,
    /// The parsed settings.
    pub prepared: Arc<dyn PreparedStep>,
    /// Conditions that must all hold.
    pub when: Vec<Expr>,
    /// Where the result goes in `data`.
    pub result_key: String,
    /// Where the input comes from in `data`.
    pub data_key: Option<String>,
    /// Applied to the result before it is stored.
    pub jq_expression: Option<JqProgram>,
    /// Error texts that do not fail the flow.
    pub ignore_errors: Vec<Regex>,
    /// Retry rule (the flow's when absent).
    pub retry: Option<RetryPolicy>,
    /// Timeout of one attempt.
    pub timeout: Option<Duration>,
    /// Steps this one waits for; `None` means "the step before it".
    pub depends: Option<Vec<String>>,
    /// Where to jump when this step fails.
    pub on_error_goto: Option<String>,
    /// The result stays in the run's memory: later steps read it, but it is never written
    /// to the step's record, the run's data, the tracker or a live view.
    pub private: bool,
}

/// How a failed step is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Delay before the second attempt.
    pub delay: Duration,
    /// How the delay grows.
    pub backoff: Backoff,
    /// Upper bound of the delay.
    pub max_delay: Option<Duration>,
}

impl RetryPolicy {
    /// The delay before attempt `next` (2, 3, …).
    pub fn delay_before(&self, next: u32) -> Duration {
        let delay = match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(next.saturating_sub(2));
                self.delay.saturating_mul(factor)
            }
        };
        self.max_delay.map_or(delay, |max| delay.min(max))
    }
}

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// The same delay every time.
    #[default]
    Fixed,
    /// Doubling delays.
    Exponential,
}

/// The concurrency rule (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concurrency {
    /// Template of the key (default: the flow name).
    pub key: Option<String>,
    /// What a new run does when `limit` runs hold the key.
    pub policy: ConcurrencyPolicy,
    /// How many runs may hold the key.
    pub limit: u32,
}

/// Concurrency policies (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    /// No limit.
    Allow,
    /// Wait for a slot.
    #[default]
    Queue,
    /// Refuse the new run.
    Skip,
    /// Answer with the running run.
    Dedupe,
    /// Cancel the running run.
    Replace,
}

/// What happens to a run whose node died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnInterrupt {
    /// End it `failed` with error `interrupted`.
    #[default]
    Fail,
    /// Queue it again.
    Retry,
}
