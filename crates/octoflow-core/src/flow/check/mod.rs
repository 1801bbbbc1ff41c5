//! Parsed document → [`Flow`], collecting every problem (never only the first).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::flow::load::flow_version;
use crate::flow::model::OnInterrupt;
use crate::flow::model::{Concurrency, Flow, RetryPolicy};
use crate::flow::params::{ParamSpec, Params};
use crate::flow::problem::{Problem, unknown_field};
use crate::flow::source_map::join_key;
use crate::flow::spec::{ConcurrencySpec, RetrySpec};
use crate::flow::trigger::{Schedule, Trigger};
use crate::flow::{Dur, flow_fields, is_valid_flow_name};
use crate::step::clean_serde_message;
use crate::step::{CheckCx, Registry};

mod order;
mod steps;
mod trigger_needs;

use order::{check_jumps_without_depends, check_order, check_targets};
use steps::check_steps;
use trigger_needs::check_trigger_needs;

const DEFAULT_MAX_PARALLEL: usize = 8;

pub(super) struct Checker<'a> {
    problems: Vec<Problem>,
    registry: &'a Registry,
    cx: &'a CheckCx<'a>,
}

impl Checker<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::at(path, message));
    }

    /// Deserializes one field, reporting a shape error at its exact path.
    fn field<T: DeserializeOwned>(&mut self, value: &Value, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(err) => {
                let inner = err.path().to_string();
                let full = if inner == "." {
                    path.to_owned()
                } else if inner.starts_with('[') {
                    format!("{path}{inner}")
                } else {
                    format!("{path}.{inner}")
                };
                let message = clean_serde_message(&err.inner().to_string());
                self.problem(full, message);
                None
            }
        }
    }
}

/// Checks a whole flow document.
pub(crate) fn check_document(
    doc: Value,
    text: &str,
    stem: Option<&str>,
    registry: &Registry,
    cx: &CheckCx<'_>,
) -> Result<Flow, Vec<Problem>> {
    let Value::Object(root) = doc else {
        return Err(vec![Problem::at(
            "",
            "a flow file must be a YAML mapping of flow fields",
        )]);
    };
    let mut c = Checker {
        problems: Vec::new(),
        registry,
        cx,
    };

    for key in root.keys() {
        if !flow_fields().contains(key) {
            let message = unknown_field("the flow", key, flow_fields().iter().map(String::as_str));
            c.problem(join_key("", key), message);
        }
    }

    let name = check_name(&mut c, &root, stem);
    let description = root
        .get("description")
        .and_then(|v| c.field::<String>(v, "description"));
    let params = check_params(&mut c, root.get("params"));
    let schedules = check_schedules(&mut c, &root);
    let triggers = check_triggers(&mut c, root.get("triggers"), params.as_ref());
    let params = check_trigger_needs(&mut c, name.as_deref(), params, root.get("triggers"));
    let concurrency = match root.get("concurrency") {
        Some(v) => check_concurrency(&mut c, v),
        None => spooler_lock(&root),
    };
    let timeout = root
        .get("timeout")
        .and_then(|v| c.field::<Dur>(v, "timeout"))
        .map(Dur::get);
    let retry = root
        .get("retry")
        .and_then(|v| check_retry(&mut c, v, "retry"));
    let env = root
        .get("env")
        .and_then(|v| c.field::<BTreeMap<String, Value>>(v, "env"))
        .map(|m| m.into_iter().map(|(k, v)| (k, scalar_text(&v))).collect())
        .unwrap_or_default();
    let max_parallel = root
        .get("max_parallel")
        .and_then(|v| c.field::<usize>(v, "max_parallel"))
        .unwrap_or(DEFAULT_MAX_PARALLEL);
    if max_parallel == 0 {
        c.problem("max_parallel", "must be at least 1");
    }
    let max_jumps = root
        .get("max_jumps")
        .and_then(|v| c.field::<u32>(v, "max_jumps"))
        .unwrap_or(1000);
    let on_interrupt = root
        .get("on_interrupt")
        .and_then(|v| c.field::<OnInterrupt>(v, "on_interrupt"))
        .unwrap_or_default();
    let resume = root
        .get("resume")
        .and_then(|v| c.field::<bool>(v, "resume"))
        .unwrap_or(false);

    let (steps, heads) = match root.get("steps") {
        None => {
            c.problem("", "a flow needs `steps`");
            (Vec::new(), Vec::new())
        }
        Some(v) => check_steps(&mut c, v, "steps"),
    };
    let on_failure = after_steps(&mut c, &root, "on_failure");
    let on_cancel = after_steps(&mut c, &root, "on_cancel");
    check_order(&mut c, &heads);
    let finally_step = root
        .get("finally_step")
        .and_then(|v| c.field::<String>(v, "finally_step"));
    check_targets(&mut c, &heads, finally_step.as_deref());
    check_jumps_without_depends(&mut c, &steps);

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Flow {
        name: name.unwrap_or_default(),
        description,
        params: params.unwrap_or_default(),
        schedules,
        triggers,
        concurrency,
        timeout,
        retry,
        env,
        steps,
        on_failure,
        on_cancel,
        finally_step,
        max_parallel,
        max_jumps,
        on_interrupt,
        resume,
        path: None,
        source: Arc::from(text),
        version: flow_version(text),
    })
}

/// The steps of `on_failure` or `on_cancel` (none when the key is absent).
fn after_steps(
    c: &mut Checker<'_>,
    root: &Map<String, Value>,
    key: &str,
) -> Vec<crate::flow::Step> {
    root.get(key)
        .map(|v| check_steps(c, v, key).0)
        .unwrap_or_default()
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_name(
    c: &mut Checker<'_>,
    root: &Map<String, Value>,
    stem: Option<&str>,
) -> Option<String> {
    let name = match root.get("name") {
        Some(v) => c.field::<String>(v, "name")?,
        None => {
            if let Some(stem) = stem {
                stem.to_owned()
            } else {
                c.problem("name", "a flow given as text needs a `name`");
                return None;
            }
        }
    };
    if !is_valid_flow_name(&name) {
        let path = if root.contains_key("name") {
            "name"
        } else {
            ""
        };
        c.problem(
            path,
            format!("invalid flow name `{name}`; use lowercase letters, digits, `_`, `.` and `-` (at most 64, starting with a letter or digit)"),
        );
    }
    Some(name)
}

fn check_params(c: &mut Checker<'_>, value: Option<&Value>) -> Option<Params> {
    let value = value?;
    let map = c.field::<Map<String, Value>>(value, "params")?;
    let mut specs = Vec::new();
    for (name, spec) in map {
        let path = join_key("params", &name);
        if let Some(spec) = c.field::<ParamSpec>(&spec, &path) {
            specs.push((name, spec));
        }
    }
    match Params::from_specs(specs) {
        Ok(p) => Some(p),
        Err(problems) => {
            for (path, message) in problems {
                c.problem(format!("params.{path}"), message);
            }
            None
        }
    }
}

fn check_schedules(c: &mut Checker<'_>, root: &Map<String, Value>) -> Vec<Schedule> {
    let mut out = Vec::new();
    if let Some(v) = root.get("schedule")
        && let Some(s) = c.field::<Schedule>(v, "schedule")
    {
        push_schedule(c, s, "schedule", &mut out);
    }
    let cron = root.get("cron").and_then(|v| c.field::<String>(v, "cron"));
    let every = root
        .get("every_seconds")
        .and_then(|v| c.field::<u64>(v, "every_seconds"));
    if cron.is_some() || every.is_some() {
        let s = Schedule {
            cron,
            every_seconds: every,
            timezone: None,
            catchup: super::Catchup::default(),
            params: Map::new(),
        };
        let problems = s.check();
        for (path, message) in problems {
            let path = if path.is_empty() {
                "cron".to_owned()
            } else {
                path
            };
            c.problem(path, message);
        }
        out.push(s);
    }
    out
}

fn push_schedule(c: &mut Checker<'_>, s: Schedule, path: &str, out: &mut Vec<Schedule>) {
    let problems = s.check();
    if problems.is_empty() {
        out.push(s);
    }
    for (sub, message) in problems {
        let full = if sub.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{sub}")
        };
        c.problem(full, message);
    }
}

fn check_triggers(
    c: &mut Checker<'_>,
    value: Option<&Value>,
    params: Option<&Params>,
) -> Vec<Trigger> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = c.field::<Vec<Value>>(value, "triggers") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("triggers[{i}]");
        if let Some(Value::Object(m)) = Some(item)
            && let Some(key) = m
                .keys()
                .find(|k| !["schedule", "webhook", "watch", "flow"].contains(&k.as_str()))
        {
            let message = unknown_field("a trigger", key, ["schedule", "webhook", "watch", "flow"]);
            c.problem(join_key(&path, key), message);
            continue;
        }
        let Some(trigger) = c.field::<Trigger>(item, &path) else {
            continue;
        };
        let (sub, problems) = match &trigger {
            Trigger::Schedule(s) => ("schedule", s.check()),
            Trigger::Webhook(w) => {
                let mut problems = w.check();
                problems.extend(params.map(|p| w.check_params(p)).unwrap_or_default());
                ("webhook", problems)
            }
            Trigger::Watch(w) => ("watch", w.check()),
            Trigger::Flow(f) => ("flow", f.check()),
        };
        for (p, message) in problems {
            let full = if p.is_empty() {
                format!("{path}.{sub}")
            } else {
                format!("{path}.{sub}.{p}")
            };
            c.problem(full, message);
        }
        out.push(trigger);
    }
    out
}

/// A flow in the spooler's form — a top-level `cron` or `every_seconds` — without its own
/// `concurrency` never overlaps itself, as the spooler's per-flow lock did: a run (or a tick)
/// while one holds the flow's key is skipped.
fn spooler_lock(root: &Map<String, Value>) -> Option<Concurrency> {
    (root.contains_key("cron") || root.contains_key("every_seconds")).then_some(Concurrency {
        key: None,
        policy: crate::flow::ConcurrencyPolicy::Skip,
        limit: 1,
    })
}

fn check_concurrency(c: &mut Checker<'_>, value: &Value) -> Option<Concurrency> {
    let spec = c.field::<ConcurrencySpec>(value, "concurrency")?;
    if let Some(key) = &spec.key
        && let Err(e) = crate::expr::Tpl::<String>::from_value(Value::String(key.clone()))
    {
        c.problem("concurrency.key", e);
    }
    let limit = spec.limit.unwrap_or(1);
    if limit == 0 {
        c.problem("concurrency.limit", "must be at least 1");
    }
    Some(Concurrency {
        key: spec.key,
        policy: spec.policy.unwrap_or_default(),
        limit,
    })
}

pub(super) fn check_retry(c: &mut Checker<'_>, value: &Value, path: &str) -> Option<RetryPolicy> {
    let spec = c.field::<RetrySpec>(value, path)?;
    if spec.attempts == 0 {
        c.problem(format!("{path}.attempts"), "must be at least 1");
    }
    Some(RetryPolicy {
        attempts: spec.attempts.max(1),
        delay: spec.delay.map(Dur::get).unwrap_or_default(),
        backoff: spec.backoff.unwrap_or_default(),
        max_delay: spec.max_delay.map(Dur::get),
    })
}
