//! The `flow_loop` kind: runs another flow once per item of a list, at most `concurrency` at
//! a time; the result is every child's final data, in input order.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{check_target, resolve_target};
use crate::engine::child::child_result;
use crate::expr::Tpl;
use crate::flow::Problem;
use crate::step::{CheckCx, StepCx, StepError, StepKind, value_kind};

/// Runs another flow for each item of a list.
#[derive(Debug, Default)]
pub struct FlowLoop;

/// Settings of a `flow_loop` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowLoopSettings {
    /// The flow's name.
    #[serde(default)]
    name: Option<Tpl<String>>,
    /// The flow file, relative to the flows directory (the spooler's form).
    #[serde(default)]
    path: Option<Tpl<String>>,
    /// Params of every child run.
    #[serde(default)]
    params: Option<Tpl<Map<String, Value>>>,
    /// The list to loop over; the step's `data_key` works too.
    #[serde(default)]
    data_key: Option<String>,
    /// How many children run at once (default 1).
    #[serde(default)]
    concurrency: Option<Tpl<usize>>,
}

impl StepKind for FlowLoop {
    const NAME: &'static str = "flow_loop";
    type Settings = FlowLoopSettings;

    fn check(&self, settings: &FlowLoopSettings, _cx: &CheckCx<'_>) -> Vec<Problem> {
        check_target(settings.name.as_ref(), settings.path.as_ref())
    }

    async fn run(
        &self,
        settings: &FlowLoopSettings,
        cx: &mut StepCx<'_>,
    ) -> Result<Value, StepError> {
        let items = match cx.input_with(settings.data_key.as_deref())? {
            Some(Value::Array(items)) => items,
            Some(other) => {
                let key = settings
                    .data_key
                    .as_deref()
                    .or(cx.data_key())
                    .unwrap_or_default();
                return Err(StepError::fatal(format!(
                    "`data_key` of a `flow_loop` must name a list; `{key}` is {}",
                    value_kind(&other)
                )));
            }
            None => {
                return Err(StepError::fatal(
                    "a `flow_loop` needs a `data_key` naming a list",
                ));
            }
        };
        let concurrency = settings
            .concurrency
            .as_ref()
            .map(|c| cx.render("concurrency", c))
            .transpose()?;
        let concurrency = concurrency.unwrap_or(1).max(1);
        let (flow, params) = resolve_target(
            cx,
            settings.name.as_ref(),
            settings.path.as_ref(),
            settings.params.as_ref(),
        )
        .await?;
        let cx = &*cx;
        let total = items.len();
        let mut results = vec![Value::Null; total];
        let mut failures = Vec::new();
        let mut items = items.into_iter().enumerate();
        let mut running = FuturesUnordered::new();
        loop {
            // Start children while there is room; after a failure, start no more.
            while running.len() < concurrency
                && failures.is_empty()
                && !cx.cancel_token().is_cancelled()
            {
                let Some((i, item)) = items.next() else { break };
                let (flow, params) = (flow.clone(), params.clone());
                let cancel = cx.cancel_token().child_token();
                running.push(async move {
                    (
                        i,
                        cx.engine
                            .run_child(cx, flow, item, params, Some(i + 1), cancel)
                            .await,
                    )
                });
            }
            let Some((i, outcome)) = running.next().await else {
                break;
            };
            match child_result(outcome?) {
                Ok(data) => results[i] = data,
                Err(reason) => failures.push(format!("item {}: {reason}", i + 1)),
            }
        }
        if cx.cancel_token().is_cancelled() {
            return Err(StepError::Cancelled);
        }
        if !failures.is_empty() {
            return Err(StepError::fatal(format!(
                "{} of {total} child runs failed: {}",
                failures.len(),
                failures.join("; ")
            )));
        }
        Ok(Value::Array(results))
    }
}
