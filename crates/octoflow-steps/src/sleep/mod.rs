//! The `sleep` kind: waits, and stops at once when the run is cancelled. Result: null.

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use octoflow_core::flow::parse_duration;
use octoflow_core::step::prelude::*;
use serde::de::{self, Deserializer, Visitor};

/// The `sleep` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sleep;

/// The settings of a `sleep` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SleepSettings {
    /// How long: a number of seconds (`1.5`) or a duration (`500ms`, `30s`, `5m`); a template.
    seconds: Tpl<Seconds>,
}

/// A wait, written as seconds or as a duration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seconds(Duration);

/// The forms a wait may take, for messages.
const FORMS: &str = "use a number of seconds (1.5) or a duration (500ms, 30s, 5m, 2h, 1d)";

impl schemars::JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Wait".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = generator.subschema_for::<octoflow_core::flow::Dur>();
        schemars::json_schema!({
            "anyOf": [duration, {"type": "string", "pattern": "^\\s*\\d+(\\.\\d+)?\\s*$"}]
        })
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds or a duration such as 500ms")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(|v| Seconds(Duration::from_secs(v)))
                    .map_err(|_| E::custom(format!("invalid wait `{v}`; it must not be negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Duration::try_from_secs_f64(v)
                    .map(Seconds)
                    .map_err(|_| E::custom(format!("invalid wait `{v}`; {FORMS}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                if let Ok(number) = v.trim().parse::<f64>() {
                    return self.visit_f64(number);
                }
                parse_duration(v)
                    .map(Seconds)
                    .map_err(|_| E::custom(format!("invalid wait `{v}`; {FORMS}")))
            }
        }
        deserializer.deserialize_any(SecondsVisitor)
    }
}

impl StepKind for Sleep {
    const NAME: &'static str = "sleep";
    type Settings = SleepSettings;
    const SIDE_EFFECT_FREE: bool = true;

    async fn run(&self, settings: &SleepSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let Seconds(wait) = cx.render("sleep.seconds", &settings.seconds)?;
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(Value::Null),
            () = cx.cancel_token().cancelled() => Err(StepError::Cancelled),
        }
    }
}
