//! Checking the steps of a flow: each step's name, kind block and common fields.

use std::collections::HashSet;
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use super::{Checker, check_retry};
use crate::expr::{Expr, JqProgram, RESERVED_NAMES};
use crate::flow::model::Step;
use crate::flow::problem::unknown_field;
use crate::flow::source_map::join_key;
use crate::flow::{Dur, step_fields};
use crate::step::PreparedStep;

/// A step's name and `depends` as written, known even when the rest of the step is wrong,
/// so order problems keep the step's real position.
pub(super) struct Head {
    pub(super) name: String,
    pub(super) depends: Option<Vec<String>>,
    pub(super) on_error_goto: Option<String>,
}

impl Head {
    fn of(item: &Value) -> Self {
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let depends = item.get("depends").and_then(Value::as_array).map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(ToOwned::to_owned)
                .collect()
        });
        let on_error_goto = item
            .get("on_error_goto")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned);
        Self {
            name,
            depends,
            on_error_goto,
        }
    }
}

pub(super) fn check_steps(
    c: &mut Checker<'_>,
    value: &Value,
    path: &str,
) -> (Vec<Step>, Vec<Head>) {
    let Some(items) = c.field::<Vec<Value>>(value, path) else {
        return (Vec::new(), Vec::new());
    };
    let heads = items.iter().map(Head::of).collect();
    if items.is_empty() && path == "steps" {
        c.problem(path, "a flow needs at least one step");
    }
    let mut seen = HashSet::new();
    let mut steps = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let step_path = format!("{path}[{i}]");
        if let Some(step) = check_step(c, item, &step_path) {
            if !seen.insert(step.name.clone()) {
                c.problem(
                    format!("{step_path}.name"),
                    format!("duplicate step name `{}`", step.name),
                );
            }
            steps.push(step);
        }
    }
    (steps, heads)
}

fn check_step(c: &mut Checker<'_>, item: Value, path: &str) -> Option<Step> {
    let Value::Object(mut map) = item else {
        c.problem(
            path,
            "a step must be a mapping with a `name` and a kind block",
        );
        return None;
    };
    let before = c.problems.len();
    let name = check_step_name(c, &map, path);
    let label = name.clone().unwrap_or_else(|| path.to_owned());

    let kind = step_kind(c, &map, path, &label);
    let prepared = kind
        .as_deref()
        .and_then(|k| prepare_block(c, &mut map, path, k));

    let when = map
        .get("when")
        .map(|v| check_when(c, v, &format!("{path}.when")))
        .unwrap_or_default();
    let result_key = match map.get("result_key") {
        Some(v) => c.field::<String>(v, &format!("{path}.result_key")),
        None => name.clone(),
    };
    if let Some(key) = &result_key
        && RESERVED_NAMES.contains(&key.as_str())
    {
        let at = if map.contains_key("result_key") {
            format!("{path}.result_key")
        } else {
            format!("{path}.name")
        };
        c.problem(
            at,
            format!("`{key}` is a reserved name; choose another `result_key`"),
        );
    }
    let data_key = map
        .get("data_key")
        .and_then(|v| c.field::<String>(v, &format!("{path}.data_key")));
    let jq_expression = map.get("jq_expression").and_then(|v| {
        let text = c.field::<String>(v, &format!("{path}.jq_expression"))?;
        JqProgram::compile(&text)
            .map_err(|e| c.problem(format!("{path}.jq_expression"), e.to_string()))
            .ok()
    });
    let ignore_errors = map
        .get("ignore_errors")
        .map(|v| check_regexes(c, v, &format!("{path}.ignore_errors")))
        .unwrap_or_default();
    let retry = map
        .get("retry")
        .and_then(|v| check_retry(c, v, &format!("{path}.retry")));
    let timeout = map
        .get("timeout")
        .and_then(|v| c.field::<Dur>(v, &format!("{path}.timeout")))
        .map(Dur::get);
    let depends = map
        .get("depends")
        .and_then(|v| c.field::<Vec<String>>(v, &format!("{path}.depends")));
    let on_error_goto = map
        .get("on_error_goto")
        .and_then(|v| c.field::<String>(v, &format!("{path}.on_error_goto")));
    let private = map
        .get("private")
        .and_then(|v| c.field::<bool>(v, &format!("{path}.private")))
        .unwrap_or(false);

    if c.problems.len() > before {
        return None;
    }
    let (kind, settings, prepared) = prepared?;
    Some(Step {
        name: name?,
        kind,
        settings,
        prepared,
        when,
        result_key: result_key?,
        data_key,
        jq_expression,
        ignore_errors,
        retry,
        timeout,
        depends,
        on_error_goto,
        private,
    })
}

fn check_step_name(c: &mut Checker<'_>, map: &Map<String, Value>, path: &str) -> Option<String> {
    let Some(v) = map.get("name") else {
        c.problem(path, "a step needs a `name`");
        return None;
    };
    let name = c.field::<String>(v, &format!("{path}.name"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
    {
        c.problem(
            format!("{path}.name"),
            format!("invalid step name `{name}`; use letters, digits, `_`, `.` and `-`"),
        );
    }
    Some(name)
}

/// The step's kind: its `type`, or the one key that names a kind. Unknown keys are
/// reported here too.
fn step_kind(
    c: &mut Checker<'_>,
    map: &Map<String, Value>,
    path: &str,
    label: &str,
) -> Option<String> {
    let declared = map
        .get("type")
        .and_then(|v| c.field::<String>(v, &format!("{path}.type")));
    let kind_keys: Vec<String> = map
        .keys()
        .filter(|k| !step_fields().contains(k) && c.registry.contains(k))
        .cloned()
        .collect();
    for key in map.keys() {
        // A block named like an unknown `type` is reported once, as the unknown kind.
        let is_declared_block = declared.as_deref() == Some(key.as_str());
        if !step_fields().contains(key) && !c.registry.contains(key) && !is_declared_block {
            let candidates: Vec<&str> = step_fields()
                .iter()
                .map(String::as_str)
                .chain(c.registry.names())
                .collect();
            let message = unknown_field(&format!("step `{label}`"), key, candidates);
            c.problem(join_key(path, key), message);
        }
    }
    match (&declared, kind_keys.as_slice()) {
        (Some(t), _) if !c.registry.contains(t) => {
            let message = match crate::flow::suggest(t, c.registry.names()) {
                Some(s) => format!("unknown step kind `{t}`; did you mean `{s}`?"),
                None => format!("unknown step kind `{t}`"),
            };
            c.problem(format!("{path}.type"), message);
            None
        }
        (Some(t), keys) => {
            if let Some(other) = keys.iter().find(|k| *k != t) {
                c.problem(
                    join_key(path, other),
                    format!("step `{label}` is of type `{t}` but has a `{other}` block"),
                );
            }
            Some(t.clone())
        }
        (None, [one]) => Some(one.clone()),
        (None, []) => {
            c.problem(
                path,
                format!("step `{label}` needs a `type` or a kind block such as `exec:`"),
            );
            None
        }
        (None, many) => {
            c.problem(
                path,
                format!(
                    "step `{label}` has several kind blocks ({}); keep one",
                    many.join(", ")
                ),
            );
            None
        }
    }
}

/// Parses the kind block with the kind's own settings type.
fn prepare_block(
    c: &mut Checker<'_>,
    map: &mut Map<String, Value>,
    path: &str,
    k: &str,
) -> Option<(&'static str, Value, Arc<dyn PreparedStep>)> {
    let block = map.remove(k).unwrap_or(Value::Object(Map::new()));
    let block = if block.is_null() {
        Value::Object(Map::new())
    } else {
        block
    };
    let block_path = join_key(path, k);
    match c.registry.prepare(k, &block, c.cx)? {
        Ok(prepared) => Some((c.registry.names().find(|n| *n == k)?, block, prepared)),
        Err(problems) => {
            for p in problems {
                let full = if p.path.is_empty() {
                    block_path.clone()
                } else if p.path.starts_with('[') {
                    format!("{block_path}{}", p.path)
                } else {
                    format!("{block_path}.{}", p.path)
                };
                c.problem(full, p.message);
            }
            None
        }
    }
}

fn check_when(c: &mut Checker<'_>, value: &Value, path: &str) -> Vec<Expr> {
    let items: Vec<(String, Value)> = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}[{i}]"), v.clone()))
            .collect(),
        other => vec![(path.to_owned(), other.clone())],
    };
    let mut out = Vec::new();
    for (p, v) in items {
        let text = match v {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            other => {
                c.problem(
                    p,
                    format!("`when` must be an expression or a list of them, found `{other}`"),
                );
                continue;
            }
        };
        let text = crate::expr::strip_braces(&text);
        match Expr::parse(text) {
            Ok(e) => out.push(e),
            Err(e) => c.problem(p, format!("invalid expression `{text}`: {e}")),
        }
    }
    out
}

fn check_regexes(c: &mut Checker<'_>, value: &Value, path: &str) -> Vec<Regex> {
    let Some(items) = c.field::<Vec<String>>(value, path) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            Regex::new(text)
                .map_err(|e| {
                    c.problem(
                        format!("{path}[{i}]"),
                        format!("invalid regex `{text}`: {e}"),
                    );
                })
                .ok()
        })
        .collect()
}
