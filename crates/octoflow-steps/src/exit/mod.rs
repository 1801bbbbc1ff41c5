//! The `exit` kind: ends the run `succeeded` once this step is done; later steps are
//! skipped. Result: `{"message": …}`.

#[cfg(test)]
mod tests;

use octoflow_core::step::prelude::*;

/// The `exit` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Exit;

/// The settings of an `exit` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExitSettings {
    /// Why the run ends, recorded as the run's message; a template. Default: `exit`.
    message: Option<Tpl<String>>,
}

/// The message when none is given.
const DEFAULT_MESSAGE: &str = "exit";

impl StepKind for Exit {
    const NAME: &'static str = "exit";
    type Settings = ExitSettings;
    const SIDE_EFFECT_FREE: bool = true;

    async fn run(&self, settings: &ExitSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let message = match &settings.message {
            Some(tpl) => cx.render("exit.message", tpl)?,
            None => DEFAULT_MESSAGE.to_owned(),
        };
        cx.exit(message.clone());
        Ok(json!({ "message": message }))
    }
}
