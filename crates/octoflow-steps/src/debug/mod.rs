//! The `debug` kind: writes a value (or a message) to the step log, one log line per line
//! of text. Result: the value.

#[cfg(test)]
mod tests;

use octoflow_core::error::chain;
use octoflow_core::step::prelude::*;

/// The `debug` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Debug;

/// The settings of a `debug` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DebugSettings {
    /// A message to write instead of a value from `data`; a template (a whole `{{ … }}`
    /// keeps the value's type).
    msg: Option<Tpl<Value>>,
    /// Where the value to write is in `data` (`"."` for all of it); default: all of `data`.
    /// The step's own `data_key` works the same.
    data_key: Option<String>,
    /// How the value is written: `yaml` (default), `json` (pretty) or `text`. A string is
    /// written as-is in `yaml` and `text`.
    #[serde(default)]
    format: DebugFormat,
}

/// How a `debug` step writes its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DebugFormat {
    /// YAML.
    #[default]
    Yaml,
    /// Pretty-printed JSON.
    Json,
    /// A string as-is, other values as pretty-printed JSON.
    Text,
}

impl StepKind for Debug {
    const NAME: &'static str = "debug";
    type Settings = DebugSettings;
    const SIDE_EFFECT_FREE: bool = true;

    fn check(&self, settings: &DebugSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        if settings.msg.is_some() && settings.data_key.is_some() {
            return vec![Problem::at("msg", "give `msg` or `data_key`, not both")];
        }
        Vec::new()
    }

    async fn run(&self, settings: &DebugSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let value = match &settings.msg {
            Some(_) if cx.data_key().is_some() => {
                return Err(StepError::fatal("give `msg` or `data_key`, not both"));
            }
            Some(msg) => cx.render("debug.msg", msg)?,
            None => match cx.input_with(settings.data_key.as_deref())? {
                Some(value) => value,
                None => Value::Object(cx.scope().data().clone()),
            },
        };
        let text = render(&value, settings.format).map_err(|e| StepError::fatal(chain(&e)))?;
        for line in text.lines() {
            cx.log().line(LogStream::Engine, line).await;
        }
        Ok(value)
    }
}

/// Why a value cannot be written as text.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the value as {format}")]
struct RenderError {
    /// The format's name.
    format: &'static str,
    /// The serializer's error.
    #[source]
    source: octoflow_core::error::BoxError,
}

fn render(value: &Value, format: DebugFormat) -> Result<String, RenderError> {
    let pretty = |v: &Value| {
        serde_json::to_string_pretty(v).map_err(|e| RenderError {
            format: "json",
            source: Box::new(e),
        })
    };
    match (format, value) {
        (DebugFormat::Yaml | DebugFormat::Text, Value::String(s)) => Ok(s.clone()),
        (DebugFormat::Yaml, other) => serde_saphyr::to_string(other).map_err(|e| RenderError {
            format: "yaml",
            source: Box::new(e),
        }),
        (DebugFormat::Json | DebugFormat::Text, other) => pretty(other),
    }
}
