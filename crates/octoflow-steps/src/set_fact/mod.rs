//! The `set_fact` kind: stores a rendered value. Result: the value.

#[cfg(test)]
mod tests;

use octoflow_core::step::prelude::*;

/// The `set_fact` kind.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SetFact;

/// The settings of a `set_fact` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetFactSettings {
    /// The value to store: any YAML value whose strings are templates; a string that is one
    /// whole `{{ … }}` keeps the value's type (list, number, object).
    value: Tpl<Value>,
}

impl StepKind for SetFact {
    const NAME: &'static str = "set_fact";
    type Settings = SetFactSettings;
    const SIDE_EFFECT_FREE: bool = true;

    async fn run(
        &self,
        settings: &SetFactSettings,
        cx: &mut StepCx<'_>,
    ) -> Result<Value, StepError> {
        cx.render("set_fact.value", &settings.value)
    }
}
