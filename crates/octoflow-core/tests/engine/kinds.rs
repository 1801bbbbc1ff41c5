//! Test kinds: `echo` returns its rendered value, `fail` fails, `nap` sleeps (cancellable)
//! and records when it ran, `stop` ends the run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use octoflow_core::step::Registry;
use octoflow_core::step::prelude::*;

/// Returns `value`, rendered.
pub(crate) struct Echo;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EchoSettings {
    value: Tpl<Value>,
}

impl StepKind for Echo {
    const NAME: &'static str = "echo";
    type Settings = EchoSettings;

    async fn run(&self, settings: &EchoSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let value = cx.render("value", &settings.value)?;
        cx.log().note(format!("echo {value}")).await;
        Ok(value)
    }
}

/// Fails with `message`; with `until_attempt`, succeeds from that attempt on.
pub(crate) struct Fail;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailSettings {
    message: Tpl<String>,
    #[serde(default)]
    until_attempt: Option<u32>,
}

impl StepKind for Fail {
    const NAME: &'static str = "fail";
    type Settings = FailSettings;

    async fn run(&self, settings: &FailSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        if settings.until_attempt.is_some_and(|n| cx.attempt() >= n) {
            return Ok(json!({"attempt": cx.attempt()}));
        }
        Err(StepError::failed(cx.render("message", &settings.message)?))
    }
}

/// Sleeps `ms`, ignoring cancellation when `stubborn` (the engine must still end it).
pub(crate) struct Nap {
    pub started: &'static AtomicU32,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NapSettings {
    ms: u64,
    #[serde(default)]
    stubborn: bool,
}

impl StepKind for Nap {
    const NAME: &'static str = "nap";
    type Settings = NapSettings;

    async fn run(&self, settings: &NapSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        let nap = tokio::time::sleep(Duration::from_millis(settings.ms));
        if settings.stubborn {
            nap.await;
        } else {
            tokio::select! {
                () = nap => {}
                () = cx.cancel_token().cancelled() => return Err(StepError::Cancelled),
            }
        }
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let end_ms = u64::try_from(epoch.as_millis()).unwrap_or(0);
        let took = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
        Ok(json!({"end_ms": end_ms, "start_ms": end_ms - took}))
    }
}

/// Ends the run with `message`.
pub(crate) struct Stop;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopSettings {
    message: String,
}

impl StepKind for Stop {
    const NAME: &'static str = "stop";
    type Settings = StopSettings;

    async fn run(&self, settings: &StopSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        cx.exit(settings.message.clone());
        Ok(Value::Null)
    }
}

/// Panics: a kind with a bug.
pub(crate) struct Panic;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PanicSettings {
    message: String,
}

impl StepKind for Panic {
    const NAME: &'static str = "panic";
    type Settings = PanicSettings;

    #[allow(clippy::panic)] // what this kind is for
    async fn run(
        &self,
        settings: &PanicSettings,
        _cx: &mut StepCx<'_>,
    ) -> Result<Value, StepError> {
        panic!("{}", settings.message)
    }
}

/// A registry with the test kinds; `counter` counts `nap` starts.
pub(crate) fn registry(counter: &'static AtomicU32) -> Registry {
    let mut r = Registry::with_core_kinds();
    r.register(Echo)
        .register(Fail)
        .register(Nap { started: counter })
        .register(Panic)
        .register(Stop);
    r
}

/// A fresh counter for one test.
pub(crate) fn counter() -> &'static AtomicU32 {
    Box::leak(Box::new(AtomicU32::new(0)))
}
