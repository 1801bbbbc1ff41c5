//! The `jq` kind: a jq program (jaq) over all of `data` or the value at `data_key`.
//! Result: the single output, or a list when the program yields several.

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use octoflow_core::expr::JqProgram;
use octoflow_core::step::prelude::*;
use serde::Deserializer;

/// The `jq` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Jq;

/// The settings of a `jq` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JqSettings {
    /// The jq program; compiled when the flow is loaded, so a syntax error is a load error.
    expression: JqSource,
    /// Where the input is in `data` (`"."` for all of it); default: all of `data`. The
    /// step's own `data_key` works the same.
    data_key: Option<String>,
    /// Keep only the first output (an error when there is none) instead of turning several
    /// outputs into a list.
    #[serde(default)]
    single: bool,
}

/// A jq program, compiled while the settings are read.
#[derive(Debug, schemars::JsonSchema)]
#[schemars(transparent)]
pub(crate) struct JqSource(#[schemars(with = "String")] JqProgram);

impl<'de> Deserialize<'de> for JqSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        JqProgram::compile(&source)
            .map(JqSource)
            .map_err(serde::de::Error::custom)
    }
}

impl StepKind for Jq {
    const NAME: &'static str = "jq";
    type Settings = JqSettings;
    const SIDE_EFFECT_FREE: bool = true;

    async fn run(&self, settings: &JqSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        // Read in place: converted for jaq without a copy (copied only for a jq thread).
        let input = match cx.input_seen_with(settings.data_key.as_deref())? {
            Some(value) => value,
            None => Cow::Owned(Value::Object(cx.scope().data().clone())),
        };
        let program = &settings.expression.0;
        let vars = program.vars(cx.scope());
        let cancel = cx.cancel_token().clone();
        if !settings.single {
            return program
                .eval_one(&input, vars, &cancel)
                .await
                .map_err(|e| StepError::fatal(e.to_string()));
        }
        let outputs = program
            .eval(&input, vars, &cancel)
            .await
            .map_err(|e| StepError::fatal(e.to_string()))?;
        outputs.into_iter().next().ok_or_else(|| {
            StepError::fatal(format!(
                "jq: `{}` yielded no output; `single: true` needs one",
                program.source()
            ))
        })
    }
}
