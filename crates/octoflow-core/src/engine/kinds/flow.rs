//! The `flow` kind: runs another flow as a child run; the result is the child's final data.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{check_target, resolve_target};
use crate::engine::child::child_result;
use crate::expr::Tpl;
use crate::flow::Problem;
use crate::step::{CheckCx, StepCx, StepError, StepKind};

/// Runs another flow.
#[derive(Debug, Default)]
pub struct Flow;

/// Settings of a `flow` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowSettings {
    /// The flow's name.
    #[serde(default)]
    name: Option<Tpl<String>>,
    /// The flow file, relative to the flows directory (the spooler's form).
    #[serde(default)]
    path: Option<Tpl<String>>,
    /// Params of the child run.
    #[serde(default)]
    params: Option<Tpl<Map<String, Value>>>,
    /// Where the child's input (its `data`) comes from; the step's `data_key` works too.
    #[serde(default)]
    data_key: Option<String>,
}

impl StepKind for Flow {
    const NAME: &'static str = "flow";
    type Settings = FlowSettings;

    fn check(&self, settings: &FlowSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        check_target(settings.name.as_ref(), settings.path.as_ref())
    }

    async fn run(&self, settings: &FlowSettings, cx: &mut StepCx<'_>) -> Result<Value, StepError> {
        let (flow, params) = resolve_target(
            cx,
            settings.name.as_ref(),
            settings.path.as_ref(),
            settings.params.as_ref(),
        )
        .await?;
        let input = cx
            .input_with(settings.data_key.as_deref())?
            .unwrap_or(Value::Null);
        let cancel = cx.cancel_token().child_token();
        let run = cx
            .engine
            .run_child(cx, flow, input, params, None, cancel)
            .await?;
        if cx.cancel_token().is_cancelled() {
            return Err(StepError::Cancelled);
        }
        child_result(run).map_err(StepError::fatal)
    }
}
