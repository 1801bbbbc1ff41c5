//! The `goto` kind: continues the run at another step (`__start__`, `__end__` or a name).

use serde::Deserialize;
use serde_json::Value;

use crate::expr::Tpl;
use crate::step::{Control, StepCx, StepError, StepKind};

/// Jumps to another step.
#[derive(Debug, Default)]
pub struct Goto;

/// Settings of a `goto` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GotoSettings {
    /// The step to continue at: a name, `__start__` or `__end__` (template).
    step_name: Tpl<String>,
}

impl StepKind for Goto {
    const NAME: &'static str = "goto";
    type Settings = GotoSettings;
    const SIDE_EFFECT_FREE: bool = true;

    async fn run(&self, settings: &GotoSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let target = cx.render("step_name", &settings.step_name)?;
        cx.log().note(format!("Jumping to `{target}`.")).await;
        cx.control = Some(Control::Goto {
            target: target.clone(),
        });
        Ok(serde_json::json!({ "goto": target }))
    }
}
