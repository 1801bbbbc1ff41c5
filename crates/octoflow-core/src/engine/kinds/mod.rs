//! Kinds that need the engine itself: sub-flows, branching, jumps and waits.

mod flow;
mod flow_loop;
mod goto;
mod state;
mod switch;
mod wait;

pub use flow::Flow;
pub use flow_loop::FlowLoop;
pub use goto::Goto;
pub use state::State;
pub use switch::Switch;
pub use wait::Wait;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::expr::Tpl;
use crate::flow::{Flow as FlowModel, Problem};
use crate::step::{StepCx, StepError};

/// `name` or `path` of the flow a `flow` / `flow_loop` step runs: exactly one.
fn check_target(name: Option<&Tpl<String>>, path: Option<&Tpl<String>>) -> Vec<Problem> {
    match (name, path) {
        (Some(_), Some(_)) => vec![Problem::at(
            "",
            "give the flow's `name` or its `path`, not both",
        )],
        (None, None) => vec![Problem::at("", "give the flow's `name` or its `path`")],
        _ => Vec::new(),
    }
}

/// The flow to run and the child's params, rendered.
async fn resolve_target(
    cx: &StepCx<'_>,
    name: Option<&Tpl<String>>,
    path: Option<&Tpl<String>>,
    params: Option<&Tpl<Map<String, Value>>>,
) -> Result<(Arc<FlowModel>, Map<String, Value>), StepError> {
    let name = name.map(|n| cx.render("name", n)).transpose()?;
    let path = path.map(|p| cx.render("path", p)).transpose()?;
    let params = params
        .map(|p| cx.render("params", p))
        .transpose()?
        .unwrap_or_default();
    let flow = cx
        .engine
        .resolve_flow(name.as_deref(), path.as_deref())
        .await?;
    Ok((flow, params))
}
