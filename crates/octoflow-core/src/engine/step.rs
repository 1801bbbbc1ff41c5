//! One step of a run: `when`, attempts with retry and timeout, `jq_expression`,
//! `ignore_errors`, and the step-run records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::recording::Recording;
use super::{Engine, Observer, RunEvent};
use crate::error::chain;
use crate::expr::Scope;
use crate::flow::{RetryPolicy, Step, format_duration};
use crate::step::{Control, RunInfo, StepCx, StepError, StepLog, StepServices};
use crate::store::{Fence, LogLine, StepFinish, StepRun, StepRunId, StepStatus, StoreError};

/// How a step ended, as the run sees it.
#[derive(Debug)]
pub(super) struct Outcome {
    pub status: StepStatus,
    /// The value stored under `result_key` (succeeded or ignored).
    pub value: Option<Value>,
    /// The error text (redacted).
    pub error: Option<String>,
    pub control: Option<Control>,
    /// The record of the step's last attempt, not yet written: left to the run when the
    /// runner holds records ([`StepRunner::hold_records`]).
    pub held: Option<StepRun>,
}

impl Outcome {
    fn new(status: StepStatus) -> Self {
        Self {
            status,
            value: None,
            error: None,
            control: None,
            held: None,
        }
    }

    fn failed(status: StepStatus, error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::new(status)
        }
    }
}

/// Everything a step needs from its run.
pub(super) struct StepRunner<'a> {
    pub engine: &'a Engine,
    /// The run's right to be written; every step record names it.
    pub fence: Fence,
    pub info: &'a RunInfo,
    pub services: &'a StepServices,
    pub logs: &'a mpsc::Sender<LogLine>,
    pub token: &'a CancellationToken,
    pub run_timed_out: &'a AtomicBool,
    pub observer: Option<&'a Arc<dyn Observer>>,
    pub flow_retry: Option<RetryPolicy>,
    /// Whether a step that ends quickly leaves the record of its last attempt to the run, in
    /// [`Outcome::held`], instead of writing it: the run writes it before it starts or skips
    /// another step, or while other steps still run — or, when nothing follows, together
    /// with the run's end, one write instead of two.
    pub hold_records: bool,
    /// How many times each step has started in this run.
    pub visits: &'a Visits,
    /// The run's own record, written before any step record if it is not yet.
    pub recording: &'a Recording,
}

/// How many times each step of a run has started (not counting retries): a `goto` loop
/// visits a step again. Kinds use it for ids that differ between visits but not between
/// attempts ([`StepCx::visit`]).
#[derive(Debug, Default)]
pub(super) struct Visits(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Visits {
    /// Counts a new visit of `step`; the first is 1.
    fn next(&self, step: &str) -> u32 {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(step.to_owned()).or_insert(0);
        *count += 1;
        *count
    }
}

/// The key of the note that stands for a `private` step's result in its record.
pub(super) const PRIVATE_RESULT: &str = "$private";

/// A step still going after this long is recorded `running` before it ends.
const RECORD_RUNNING_AFTER: Duration = Duration::from_millis(100);

const ONE_ATTEMPT: RetryPolicy = RetryPolicy {
    attempts: 1,
    delay: Duration::ZERO,
    backoff: crate::flow::Backoff::Fixed,
    max_delay: None,
};

impl StepRunner<'_> {
    fn emit(&self, event: &RunEvent<'_>) {
        if let Some(o) = self.observer {
            o.on_event(event);
        }
    }

    /// Writes a step record; the run's own first, when it is not recorded yet.
    async fn record(&self, record: &StepRun) -> Result<StepRunId, StoreError> {
        self.recording.ensure().await?;
        self.engine.store.insert_step_run(&self.fence, record).await
    }

    /// Records a step that does not run, with the reason.
    pub(super) async fn skip(&self, step: &Step, reason: &str) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let record = StepRun {
            run_id: self.info.id,
            step: step.name.clone(),
            attempt: 1,
            status: StepStatus::Skipped,
            started_at: now,
            finished_at: Some(now),
            result: None,
            error: Some(reason.to_owned()),
        };
        self.record(&record).await?;
        self.emit(&RunEvent::StepFinished {
            step: &step.name,
            attempt: 1,
            status: StepStatus::Skipped,
            duration: Duration::ZERO,
            error: Some(reason),
        });
        Ok(Outcome::new(StepStatus::Skipped))
    }

    /// Takes a step's result from an earlier run instead of running it (`resume: true`, a
    /// retry `from_failed`). `record` writes a step run saying so (not for the same run).
    pub(super) async fn reuse(
        &self,
        step: &Step,
        result: Value,
        record: bool,
    ) -> Result<Outcome, StoreError> {
        if record {
            let now = Utc::now();
            let reused = StepRun {
                run_id: self.info.id,
                step: step.name.clone(),
                attempt: 1,
                status: StepStatus::Succeeded,
                started_at: now,
                finished_at: Some(now),
                result: Some(result.clone()),
                error: None,
            };
            self.record(&reused).await?;
        }
        self.emit(&RunEvent::StepFinished {
            step: &step.name,
            attempt: 1,
            status: StepStatus::Succeeded,
            duration: Duration::ZERO,
            error: None,
        });
        let mut outcome = Outcome::new(StepStatus::Succeeded);
        outcome.value = Some(result);
        Ok(outcome)
    }

    /// Runs a step to its end: every attempt recorded.
    pub(super) async fn run(
        &self,
        step: &Step,
        scope: Scope,
        ignore_when: bool,
    ) -> Result<Outcome, StoreError> {
        if !ignore_when {
            for expr in &step.when {
                match expr.is_true(&scope) {
                    Ok(true) => {}
                    Ok(false) => {
                        return self
                            .skip(step, &format!("`when` is false: {}", expr.source()))
                            .await;
                    }
                    Err(e) => {
                        let text = self
                            .engine
                            .redactor
                            .text(&format!(
                                "cannot evaluate `when` of step `{}`: `{}`: {e}",
                                step.name,
                                expr.source()
                            ))
                            .into_owned();
                        return self.fail_before_start(step, text).await;
                    }
                }
            }
        }
        let policy = step.retry.or(self.flow_retry).unwrap_or(ONE_ATTEMPT);
        let visit = self.visits.next(&step.name);
        let mut attempt = 1;
        loop {
            let (outcome, retry) = self
                .attempt(step, &scope, (visit, attempt), attempt < policy.attempts)
                .await?;
            if !retry {
                return Ok(outcome);
            }
            attempt += 1;
            let delay = policy.delay_before(attempt);
            let log = StepLog::new(self.logs.clone(), self.info.id, &step.name, attempt - 1);
            log.note(format!(
                "Attempt {} failed; retrying in {}.",
                attempt - 1,
                format_duration(delay)
            ))
            .await;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.token.cancelled() => {
                    return Ok(Outcome::failed(self.cancel_status(), "cancelled".to_owned()));
                }
            }
        }
    }

    fn cancel_status(&self) -> StepStatus {
        if self.run_timed_out.load(Ordering::SeqCst) {
            StepStatus::TimedOut
        } else {
            StepStatus::Cancelled
        }
    }

    async fn fail_before_start(&self, step: &Step, text: String) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        let record = StepRun {
            run_id: self.info.id,
            step: step.name.clone(),
            attempt: 1,
            status: StepStatus::Failed,
            started_at: now,
            finished_at: Some(now),
            result: None,
            error: Some(text.clone()),
        };
        self.record(&record).await?;
        self.emit(&RunEvent::StepFinished {
            step: &step.name,
            attempt: 1,
            status: StepStatus::Failed,
            duration: Duration::ZERO,
            error: Some(&text),
        });
        Ok(Outcome::failed(StepStatus::Failed, text))
    }

    /// What one attempt of `step` sees.
    fn context<'s>(
        &'s self,
        step: &'s Step,
        scope: &Scope,
        (visit, attempt): (u32, u32),
        token: CancellationToken,
    ) -> StepCx<'s> {
        StepCx {
            step: &step.name,
            visit,
            attempt,
            scope: scope.clone(),
            data_key: step.data_key.as_deref(),
            run: self.info,
            services: self.services,
            engine: self.engine,
            cancel: token,
            log: if step.private {
                StepLog::new(self.logs.clone(), self.info.id, &step.name, attempt).muted()
            } else {
                StepLog::new(self.logs.clone(), self.info.id, &step.name, attempt)
            },
            control: None,
        }
    }

    /// One attempt; returns the outcome and whether to try again.
    async fn attempt(
        &self,
        step: &Step,
        scope: &Scope,
        (visit, attempt): (u32, u32),
        may_retry: bool,
    ) -> Result<(Outcome, bool), StoreError> {
        let started = Instant::now();
        let record = StepRun {
            run_id: self.info.id,
            step: step.name.clone(),
            attempt,
            status: StepStatus::Running,
            started_at: Utc::now(),
            finished_at: None,
            result: None,
            error: None,
        };
        self.emit(&RunEvent::StepStarted {
            step: &step.name,
            attempt,
        });

        if step.private {
            StepLog::new(self.logs.clone(), self.info.id, &step.name, attempt)
                .note("Private step: its output and result are not kept.")
                .await;
        }
        let token = self.token.child_token();
        let mut cx = self.context(step, scope, (visit, attempt), token.clone());
        let (result, id) = {
            let work = run_with_limits(step, &mut cx, &token, self.services.kill_grace);
            tokio::pin!(work);
            // A step that ends quickly is recorded once, when it ends; one that takes longer
            // is recorded `running` first, so lists and live views see it.
            tokio::select! {
                result = &mut work => (result, None),
                () = tokio::time::sleep(RECORD_RUNNING_AFTER) => {
                    let id = self.record(&record).await?;
                    (work.await, Some(id))
                }
            }
        };
        let control = cx.control.take();
        drop(cx);

        let (outcome, retry) = match result {
            Ok(value) => {
                let recorded = self.cap_result(step, attempt, &value).await;
                let held = self
                    .finish(
                        (&record, id, started),
                        StepStatus::Succeeded,
                        Some(recorded),
                        None,
                        self.hold_records,
                    )
                    .await?;
                (
                    Outcome {
                        status: StepStatus::Succeeded,
                        value: Some(value),
                        error: None,
                        control,
                        held,
                    },
                    false,
                )
            }
            Err(err) => {
                self.failed(step, (&record, id, started), err, may_retry)
                    .await?
            }
        };
        Ok((outcome, retry))
    }

    /// Ends an attempt that failed: ignored when `ignore_errors` matches, else failed (timed
    /// out, cancelled); returns the outcome and whether to try again.
    async fn failed(
        &self,
        step: &Step,
        started: (&StepRun, Option<StepRunId>, Instant),
        err: StepError,
        may_retry: bool,
    ) -> Result<(Outcome, bool), StoreError> {
        let text = self.engine.redactor.text(&chain(&err)).into_owned();
        let status = match err {
            StepError::TimedOut(_) => StepStatus::TimedOut,
            StepError::Cancelled => self.cancel_status(),
            _ => StepStatus::Failed,
        };
        let run_stopping = self.token.is_cancelled();
        if !run_stopping && step.ignore_errors.iter().any(|re| re.is_match(&text)) {
            let value = json!({ "error": text });
            let held = self
                .finish(
                    started,
                    StepStatus::Ignored,
                    Some(value.clone()),
                    Some(&text),
                    self.hold_records,
                )
                .await?;
            let outcome = Outcome {
                status: StepStatus::Ignored,
                value: Some(value),
                error: Some(text),
                control: None,
                held,
            };
            return Ok((outcome, false));
        }
        let retry = !run_stopping && may_retry && err.is_retryable();
        let leave = self.hold_records && !retry;
        let held = self
            .finish(started, status, None, Some(&text), leave)
            .await?;
        let outcome = Outcome {
            held,
            ..Outcome::failed(status, text)
        };
        Ok((outcome, retry))
    }

    /// Records an attempt's end: completes its `running` record, or — for an attempt that
    /// ended before it had one — writes its whole record, or with `leave_to_run` returns it
    /// unwritten.
    async fn finish(
        &self,
        started: (&StepRun, Option<StepRunId>, Instant),
        status: StepStatus,
        result: Option<Value>,
        error: Option<&str>,
        leave_to_run: bool,
    ) -> Result<Option<StepRun>, StoreError> {
        let (record, id, started) = started;
        let finish = StepFinish {
            status,
            finished_at: Utc::now(),
            result: result.map(|v| self.engine.redactor.redact(v)),
            error: error.map(ToOwned::to_owned),
        };
        let mut held = None;
        if let Some(id) = id {
            self.engine
                .store
                .finish_step_run(&self.fence, id, &finish)
                .await?;
        } else {
            let done = StepRun {
                status: finish.status,
                finished_at: Some(finish.finished_at),
                result: finish.result,
                error: finish.error,
                ..record.clone()
            };
            if leave_to_run {
                held = Some(done);
            } else {
                self.record(&done).await?;
            }
        }
        let (step, attempt) = (&record.step, record.attempt);
        self.emit(&RunEvent::StepFinished {
            step,
            attempt,
            status,
            duration: started.elapsed(),
            error,
        });
        Ok(held)
    }

    /// A result small enough for the record, or a reference to the run file holding it; for
    /// a `private` step, only a note saying the result was kept in memory.
    async fn cap_result(&self, step: &Step, attempt: u32, value: &Value) -> Value {
        if step.private {
            return json!({ PRIVATE_RESULT: true });
        }
        let max = self.engine.config.max_result_bytes;
        let redactor = &self.engine.redactor;
        let redacted;
        let shown = if redactor.needs(value) {
            redacted = redactor.value(value);
            &redacted
        } else {
            value
        };
        if !larger_than(shown, max) {
            return value.clone();
        }
        let Ok(text) = serde_json::to_vec(shown) else {
            return value.clone();
        };
        let name = format!("results/{}.{attempt}.json", step.name);
        let path = self.info.workdir.join(&name);
        let bytes = text.len();
        let written =
            tokio::task::spawn_blocking(move || crate::fs::write_atomic(&path, &text)).await;
        match written {
            Ok(Ok(())) => json!({ "$file": name, "bytes": bytes }),
            Ok(Err(e)) => json!({ "truncated": true, "bytes": bytes, "error": e.to_string() }),
            Err(e) => json!({ "truncated": true, "bytes": bytes, "error": e.to_string() }),
        }
    }
}

/// Whether `value` written as JSON takes more than `max` bytes; counted as it is written
/// (nothing kept), and only until it is.
fn larger_than(value: &Value, max: usize) -> bool {
    /// Takes bytes until `left` runs out.
    struct Budget {
        left: usize,
    }
    impl std::io::Write for Budget {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| std::io::Error::other("over the budget"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Budget { left: max }, value).is_err()
}

/// One attempt: the kind, then the step's `jq_expression` over its result.
async fn attempt_with_jq(
    step: &Step,
    cx: &mut StepCx<'_>,
    token: &CancellationToken,
) -> Result<Value, StepError> {
    let value = step.prepared.run(cx).await?;
    match &step.jq_expression {
        None => Ok(value),
        Some(jq) => jq
            .eval_one(&value, jq.vars(cx.scope()), token)
            .await
            .map_err(|e| StepError::fatal(e.to_string())),
    }
}

/// Runs one attempt (with its `jq_expression`) under the step's timeout and the run's
/// cancellation. A kind that does not stop on its token within the grace period is dropped.
async fn run_with_limits(
    step: &Step,
    cx: &mut StepCx<'_>,
    token: &CancellationToken,
    grace: Duration,
) -> Result<Value, StepError> {
    let timeout = step.timeout;
    // A panic in a kind (or a template or jq program it runs) fails this attempt, and only
    // it: the run goes on to record its end.
    let fut = std::panic::AssertUnwindSafe(attempt_with_jq(step, cx, token))
        .catch_unwind()
        .map(|caught| {
            caught.unwrap_or_else(|panic| {
                Err(StepError::fatal(format!(
                    "internal error: the step panicked: {}",
                    crate::error::panic_message(&*panic)
                )))
            })
        });
    tokio::pin!(fut);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let grace = grace + Duration::from_secs(1);
    tokio::select! {
        result = &mut fut => result,
        () = deadline => {
            token.cancel();
            let _ = tokio::time::timeout(grace, &mut fut).await;
            Err(StepError::TimedOut(timeout.unwrap_or_default()))
        }
        () = token.cancelled() => {
            let _ = tokio::time::timeout(grace, &mut fut).await;
            Err(StepError::Cancelled)
        }
    }
}
