//! What a flow's folder watches and flow triggers need of the rest of the flow: the params
//! they fill in (declared implicitly when the flow does not declare them), no other param
//! that is required without a default, a folder inside the allowed directories, and no flow
//! triggering itself.

use serde_json::Value;

use super::Checker;
use crate::flow::params::{ParamType, Params};
use crate::flow::trigger::{FlowTrigger, WatchTrigger};
use crate::fs::PathError;

/// The param a folder watch fills in, with the description it gets when implicit.
const WATCH_PARAMS: &[(&str, &str)] = &[(
    "file",
    "The file that started the run (folder watch): relative to the data directory, or absolute in files.roots",
)];

/// The params a flow trigger fills in, with the descriptions they get when implicit.
const FLOW_PARAMS: &[(&str, &str)] = &[
    (
        "upstream_run_id",
        "The id of the run that started this one (flow trigger)",
    ),
    (
        "upstream_flow",
        "The flow of the run that started this one (flow trigger)",
    ),
    (
        "upstream_status",
        "How the run that started this one ended (flow trigger)",
    ),
];

/// Checks the watches and flow triggers of `triggers` (the raw `triggers:` value) against
/// the flow, and returns its params with the ones they fill in added.
pub(super) fn check_trigger_needs(
    c: &mut Checker<'_>,
    name: Option<&str>,
    params: Option<Params>,
    triggers: Option<&Value>,
) -> Option<Params> {
    let Some(Value::Array(items)) = triggers else {
        return params;
    };
    let mut params = params.unwrap_or_default();
    for (i, item) in items.iter().enumerate() {
        if let Some(value) = item.get("watch") {
            let Ok(watch) = serde_json::from_value::<WatchTrigger>(value.clone()) else {
                continue;
            };
            let path = format!("triggers[{i}].watch");
            check_folder(c, &watch, &path);
            check_given(c, &mut params, WATCH_PARAMS, &path, "a watch");
        }
        if let Some(value) = item.get("flow") {
            let Ok(upstream) = serde_json::from_value::<FlowTrigger>(value.clone()) else {
                continue;
            };
            let path = format!("triggers[{i}].flow");
            if name == Some(upstream.name.as_str()) {
                c.problem(
                    format!("{path}.name"),
                    "a flow cannot trigger itself (its run would start the next one forever)",
                );
            }
            check_given(c, &mut params, FLOW_PARAMS, &path, "a flow trigger");
        }
    }
    Some(params)
}

/// The folder must be in the data directory or `files.roots` (when those are known).
fn check_folder(c: &mut Checker<'_>, watch: &WatchTrigger, path: &str) {
    let Some(files) = c.cx.files else {
        return;
    };
    if watch.path.trim().is_empty() {
        return;
    }
    if let Err(PathError::Outside { .. }) = files.resolve(&watch.path) {
        c.problem(
            format!("{path}.path"),
            format!(
                "folder `{}` is outside the data directory and `files.roots`",
                watch.path
            ),
        );
    }
}

/// The trigger gives `given`: each is declared implicitly unless declared as a string, and
/// no other param may be required without a default.
fn check_given(
    c: &mut Checker<'_>,
    params: &mut Params,
    given: &[(&str, &str)],
    path: &str,
    what: &str,
) {
    for (name, description) in given {
        let declared = params.iter().find(|(n, _)| n == name).map(|(_, s)| s.kind);
        match declared {
            Some(kind) if kind != ParamType::String => c.problem(
                format!("params.{name}"),
                format!("`{name}` is filled in by {what} (`{path}`): declare it with type string"),
            ),
            Some(_) => {}
            None => params.add_implicit(name, description),
        }
    }
    let needed: Vec<String> = params
        .iter()
        .filter(|(n, spec)| {
            spec.required && spec.default.is_none() && !given.iter().any(|(g, _)| g == n)
        })
        .map(|(n, _)| format!("`{n}`"))
        .collect();
    if !needed.is_empty() {
        let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
        c.problem(
            path,
            format!(
                "{what} gives only {}, but {} required without a default",
                names.join(", "),
                match needed.as_slice() {
                    [one] => format!("param {one} is"),
                    many => format!("params {} are", many.join(", ")),
                }
            ),
        );
    }
}
