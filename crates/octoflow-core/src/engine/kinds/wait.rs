//! The `wait` kind: waits for a file to appear, or for an expression to hold, checking every
//! `interval` until `timeout` or for at most `checks` checks; or, with `callback: true`, for
//! an external job to report its end to the run's callback URL. Cancellable.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::CallbackStatus;
use crate::expr::{Expr, Tpl, strip_braces};
use crate::flow::{Dur, Problem, format_duration};
use crate::step::{CheckCx, StepCx, StepError, StepKind};

/// Waits for something.
#[derive(Debug, Default)]
pub struct Wait;

/// Settings of a `wait` step: one of `file`, `until` or `callback`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitSettings {
    /// Wait until this file exists.
    #[serde(default)]
    file: Option<WaitFile>,
    /// Wait until this expression holds (re-evaluated every `interval`).
    #[serde(default)]
    until: Option<String>,
    /// Wait until a report with `status: succeeded` or `failed` reaches the run's callback URL.
    #[serde(default)]
    callback: bool,
    /// Time between checks for `until` (default 1s).
    #[serde(default)]
    interval: Option<Tpl<Dur>>,
    /// Give up after this long (default: wait until the step's timeout or a cancel).
    #[serde(default)]
    timeout: Option<Tpl<Dur>>,
    /// Give up after this many checks of `until`, the first at once (default: no limit).
    #[serde(default)]
    checks: Option<Tpl<NonZeroU32>>,
}

/// `wait: {file: {…}}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WaitFile {
    /// The file (relative to the data directory).
    path: Tpl<String>,
    /// Time between checks (default 1s).
    #[serde(default)]
    interval: Option<Tpl<Dur>>,
    /// Give up after this long.
    #[serde(default)]
    timeout: Option<Tpl<Dur>>,
    /// Give up after this many checks, the first at once (default: no limit).
    #[serde(default)]
    checks: Option<Tpl<NonZeroU32>>,
}

/// How often `poll` checks, and when it gives up.
struct Schedule {
    /// Time between checks.
    interval: Duration,
    /// Give up once this much time has passed.
    timeout: Option<Duration>,
    /// Give up after this many checks.
    checks: Option<NonZeroU32>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

impl StepKind for Wait {
    const NAME: &'static str = "wait";
    type Settings = WaitSettings;

    fn check(&self, settings: &WaitSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        let given = usize::from(settings.file.is_some())
            + usize::from(settings.until.is_some())
            + usize::from(settings.callback);
        if given > 1 {
            return vec![Problem::at(
                "",
                "give one of `file`, `until` or `callback`, not several",
            )];
        }
        match (&settings.file, &settings.until) {
            _ if settings.callback => Vec::new(),
            (None, None) => vec![Problem::at(
                "",
                "give what to wait for: `file`, `until` or `callback: true`",
            )],
            (None, Some(until)) => match Expr::parse(strip_braces(until)) {
                Ok(_) => Vec::new(),
                Err(e) => vec![Problem::at("until", format!("invalid expression: {e}"))],
            },
            (Some(_), _) => Vec::new(),
        }
    }

    async fn run(&self, settings: &WaitSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let render = |name: &str, t: Option<&Tpl<Dur>>| {
            t.map(|t| cx.render(name, t).map(Dur::get)).transpose()
        };
        if settings.callback {
            let timeout = render("timeout", settings.timeout.as_ref())?;
            return wait_for_callback(cx, timeout).await;
        }
        if let Some(file) = &settings.file {
            let schedule = Schedule {
                interval: render("file.interval", file.interval.as_ref())?
                    .unwrap_or(DEFAULT_INTERVAL),
                timeout: render("file.timeout", file.timeout.as_ref())?,
                checks: file
                    .checks
                    .as_ref()
                    .map(|t| cx.render("file.checks", t))
                    .transpose()?,
            };
            let shown = cx.render("file.path", &file.path)?;
            let path = cx
                .files()
                .resolve(&shown)
                .map_err(|e| StepError::fatal(crate::error::chain(&e)))?;
            let what = format!("file `{shown}`");
            let waited = poll(cx, &schedule, &what, || {
                let path = path.as_path().to_path_buf();
                async move { Ok(tokio::fs::try_exists(&path).await.unwrap_or(false)) }
            })
            .await?;
            return Ok(json!({ "path": shown, "waited_ms": waited }));
        }
        let until = settings.until.as_deref().unwrap_or_default();
        let expr = Expr::parse(strip_braces(until))
            .map_err(|e| StepError::fatal(format!("invalid expression `{until}`: {e}")))?;
        let schedule = Schedule {
            interval: render("interval", settings.interval.as_ref())?.unwrap_or(DEFAULT_INTERVAL),
            timeout: render("timeout", settings.timeout.as_ref())?,
            checks: settings
                .checks
                .as_ref()
                .map(|t| cx.render("checks", t))
                .transpose()?,
        };
        let scope = cx.scope().clone();
        let what = format!("`{}` to hold", expr.source());
        let waited = poll(cx, &schedule, &what, || {
            let result = expr
                .is_true(&scope)
                .map_err(|e| StepError::fatal(format!("cannot evaluate `until`: {e}")));
            async move { result }
        })
        .await?;
        Ok(json!({ "until": until, "waited_ms": waited }))
    }
}

/// Waits for the run's final callback report: its `data` is the result, a `failed` report
/// fails the step with the report's message.
async fn wait_for_callback(cx: &StepCx<'_>, timeout: Option<Duration>) -> Result<Value, StepError> {
    if cx.engine.callbacks().is_none() {
        return Err(StepError::fatal(
            "`wait: callback` needs a server: this run has no callback URL (start it with `octoflow serve`)",
        ));
    }
    let hub = cx.engine.callback_hub().clone();
    let id = cx.run().id;
    let mut reports = hub.wait_for(id);
    let start = Instant::now();
    let report = async {
        loop {
            if let Some(report) = reports.borrow_and_update().clone() {
                return Some(report);
            }
            if reports.changed().await.is_err() {
                return None;
            }
        }
    };
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        report = report => report,
        () = limit => {
            hub.forget(&id);
            return Err(StepError::failed(format!(
                "waited {} for the job's callback; none came",
                format_duration(timeout.unwrap_or_default())
            )));
        }
        () = cx.cancel_token().cancelled() => {
            hub.forget(&id);
            return Err(StepError::Cancelled);
        }
    };
    hub.forget(&id);
    let Some(report) = outcome else {
        return Err(StepError::failed("the callback channel closed"));
    };
    let waited = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    if report.status == Some(CallbackStatus::Failed) {
        let message = report.message.unwrap_or_else(|| "no message".to_owned());
        return Err(StepError::failed(format!(
            "the job reported failure: {message}"
        )));
    }
    Ok(json!({
        "status": "succeeded",
        "message": report.message,
        "data": report.data,
        "waited_ms": waited,
    }))
}

/// Checks `ready` now and every `interval` until it holds, `timeout` passes, `checks` checks
/// are done or the step is cancelled. Returns how long it waited, in milliseconds.
async fn poll<F, Fut>(
    cx: &StepCx<'_>,
    schedule: &Schedule,
    what: &str,
    mut ready: F,
) -> Result<u64, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, StepError>>,
{
    let start = Instant::now();
    let mut done: u32 = 0;
    loop {
        if ready().await? {
            return Ok(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        }
        done = done.saturating_add(1);
        if let Some(checks) = schedule.checks
            && done >= checks.get()
        {
            return Err(out_of_checks(checks, schedule.interval, what));
        }
        let pause = match schedule.timeout {
            Some(limit) => {
                let left = limit.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(StepError::failed(format!(
                        "waited {} for {what}; it did not happen",
                        format_duration(limit)
                    )));
                }
                schedule.interval.min(left)
            }
            None => schedule.interval,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cx.cancel_token().cancelled() => return Err(StepError::Cancelled),
        }
    }
}

/// The failure after the last of `checks` checks: the wait they span, as scheduled.
fn out_of_checks(checks: NonZeroU32, interval: Duration, what: &str) -> StepError {
    let span = interval.saturating_mul(checks.get() - 1);
    let plural = if checks.get() == 1 { "" } else { "s" };
    StepError::failed(format!(
        "waited {} ({checks} check{plural}, every {}) for {what}; it did not happen",
        format_duration(span),
        format_duration(interval)
    ))
}
