//! The `switch` kind: the first case whose regex matches the value's text runs its inline step;
//! the result is that step's result (`null` when no case matches).

use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::expr::{Expr, strip_braces};
use crate::flow::Problem;
use crate::step::{CheckCx, PreparedStep, StepCx, StepError, StepKind};

/// Runs one of several inline steps.
#[derive(Debug, Default)]
pub struct Switch;

/// Settings of a `switch` step.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchSettings {
    /// An expression whose value is matched (else the value at `data_key`).
    #[serde(default)]
    value: Option<String>,
    /// Where the matched value comes from; the step's `data_key` works too.
    #[serde(default)]
    data_key: Option<String>,
    /// `{when: <regex>, step: {<kind>: {…}}}`, tried in order.
    cases: Vec<CaseSettings>,
    /// The compiled value and cases, filled in by the load-time check.
    #[serde(skip)]
    prepared: OnceLock<Prepared>,
}

/// One case as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CaseSettings {
    when: String,
    step: Map<String, Value>,
}

#[derive(Debug)]
struct Prepared {
    value: Option<Expr>,
    cases: Vec<Case>,
}

#[derive(Debug)]
struct Case {
    when: Regex,
    data_key: Option<String>,
    step: Arc<dyn PreparedStep>,
}

impl Switch {
    fn prepare(settings: &SwitchSettings, cx: &CheckCx<'_>) -> Result<Prepared, Vec<Problem>> {
        let mut problems = Vec::new();
        let value = match settings
            .value
            .as_deref()
            .map(|v| Expr::parse(strip_braces(v)))
        {
            Some(Ok(e)) => Some(e),
            Some(Err(e)) => {
                problems.push(Problem::at("value", format!("invalid expression: {e}")));
                None
            }
            None => None,
        };
        let mut cases = Vec::new();
        for (i, case) in settings.cases.iter().enumerate() {
            let when = Regex::new(&case.when)
                .map_err(|e| {
                    problems.push(Problem::at(
                        format!("cases[{i}].when"),
                        format!("invalid regex: {e}"),
                    ));
                })
                .ok();
            let step = prepare_inline(&case.step, cx)
                .map_err(|p| {
                    problems.extend(p.into_iter().map(|p| nest(p, &format!("cases[{i}].step"))));
                })
                .ok();
            if let (Some(when), Some((data_key, step))) = (when, step) {
                cases.push(Case {
                    when,
                    data_key,
                    step,
                });
            }
        }
        if problems.is_empty() {
            Ok(Prepared { value, cases })
        } else {
            Err(problems)
        }
    }
}

/// An inline step's own `data_key` and its prepared kind.
type Inline = (Option<String>, Arc<dyn PreparedStep>);

/// An inline step: one kind block, optionally with `type` and `data_key`.
fn prepare_inline(step: &Map<String, Value>, cx: &CheckCx<'_>) -> Result<Inline, Vec<Problem>> {
    let Some(registry) = cx.registry else {
        return Err(vec![Problem::at(
            "",
            "inline steps need the registry of kinds",
        )]);
    };
    let data_key = step
        .get("data_key")
        .and_then(Value::as_str)
        .map(ToOwned::to_owned);
    let blocks: Vec<&String> = step
        .keys()
        .filter(|k| !["type", "data_key"].contains(&k.as_str()))
        .collect();
    let kind = match (step.get("type").and_then(Value::as_str), blocks.as_slice()) {
        (Some(t), _) => t.to_owned(),
        (None, [one]) => (*one).clone(),
        _ => {
            return Err(vec![Problem::at(
                "",
                "an inline step has exactly one kind block, such as `set_fact: {…}`",
            )]);
        }
    };
    let block = step
        .get(&kind)
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    match registry.prepare(&kind, &block, cx) {
        None => Err(vec![Problem::at("", format!("unknown step kind `{kind}`"))]),
        Some(Err(problems)) => Err(problems.into_iter().map(|p| nest(p, &kind)).collect()),
        Some(Ok(prepared)) => Ok((data_key, prepared)),
    }
}

fn nest(mut problem: Problem, parent: &str) -> Problem {
    problem.path = if problem.path.is_empty() {
        parent.to_owned()
    } else if problem.path.starts_with('[') {
        format!("{parent}{}", problem.path)
    } else {
        format!("{parent}.{}", problem.path)
    };
    problem
}

impl StepKind for Switch {
    const NAME: &'static str = "switch";
    type Settings = SwitchSettings;

    fn check(&self, settings: &SwitchSettings, cx: &CheckCx<'_>) -> Vec<Problem> {
        match Self::prepare(settings, cx) {
            Ok(prepared) => {
                // A freshly parsed settings block is checked once; a second check keeps the first.
                let _ = settings.prepared.set(prepared);
                Vec::new()
            }
            Err(problems) => problems,
        }
    }

    async fn run(
        &self,
        settings: &SwitchSettings,
        cx: &mut StepCx<'_>,
    ) -> Result<Value, StepError> {
        let prepared = settings.prepared.get().ok_or_else(|| {
            StepError::fatal("`switch` settings were not checked when the flow was loaded")
        })?;
        let value = match &prepared.value {
            Some(expr) => expr.eval(cx.scope()).map_err(|e| {
                StepError::fatal(format!("cannot evaluate `value` `{}`: {e}", expr.source()))
            })?,
            None => cx
                .input_with(settings.data_key.as_deref())?
                .unwrap_or(Value::Null),
        };
        let text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let Some(case) = prepared.cases.iter().find(|c| c.when.is_match(&text)) else {
            cx.log().note(format!("No case matches `{text}`.")).await;
            return Ok(Value::Null);
        };
        cx.log()
            .note(format!("Case `{}` matches.", case.when.as_str()))
            .await;
        let mut inner = StepCx {
            step: cx.step,
            visit: cx.visit,
            attempt: cx.attempt,
            scope: cx.scope.clone(),
            data_key: case.data_key.as_deref().or(cx.data_key),
            run: cx.run,
            services: cx.services,
            engine: cx.engine,
            cancel: cx.cancel.clone(),
            log: cx.log.clone(),
            control: None,
        };
        let result = case.step.run(&mut inner).await;
        cx.control = inner.control.take();
        result
    }
}
