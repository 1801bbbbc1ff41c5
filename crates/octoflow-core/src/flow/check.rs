//! Parsed document → [`Flow`], collecting every problem (never only the first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::model::{Concurrency, Flow, RetryPolicy, Step};
use super::params::{ParamSpec, Params};
use super::problem::{Problem, unknown_field};
use super::source_map::join_key;
use super::spec::{ConcurrencySpec, RetrySpec};
use super::trigger::{Schedule, Trigger};
use super::{Dur, is_valid_flow_name};
use crate::expr::{Expr, JqProgram, RESERVED_NAMES};
use crate::flow::load::flow_version;
use crate::flow::model::OnInterrupt;
use crate::step::clean_serde_message;
use crate::step::{CheckCx, PreparedStep, Registry};

/// The fields a flow file may have at its top level.
pub const FLOW_FIELDS: &[&str] = &[
    "name",
    "description",
    "params",
    "schedule",
    "cron",
    "every_seconds",
    "triggers",
    "concurrency",
    "timeout",
    "retry",
    "env",
    "steps",
    "on_failure",
    "finally_step",
    "max_parallel",
    "max_jumps",
    "on_interrupt",
    "resume",
];

/// The fields every step may have besides its kind block.
pub const STEP_FIELDS: &[&str] = &[
    "name",
    "type",
    "description",
    "when",
    "result_key",
    "data_key",
    "jq_expression",
    "ignore_errors",
    "retry",
    "timeout",
    "depends",
    "on_error_goto",
];

const DEFAULT_MAX_PARALLEL: usize = 8;

struct Checker<'a> {
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
        if !FLOW_FIELDS.contains(&key.as_str()) {
            let message = unknown_field("the flow", key, FLOW_FIELDS.iter().copied());
            c.problem(join_key("", key), message);
        }
    }

    let name = check_name(&mut c, &root, stem);
    let description = root
        .get("description")
        .and_then(|v| c.field::<String>(v, "description"));
    let params = check_params(&mut c, root.get("params"));
    let schedules = check_schedules(&mut c, &root);
    let triggers = check_triggers(&mut c, root.get("triggers"));
    let concurrency = root
        .get("concurrency")
        .and_then(|v| check_concurrency(&mut c, v));
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
    let on_failure = root
        .get("on_failure")
        .map(|v| check_steps(&mut c, v, "on_failure").0)
        .unwrap_or_default();
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

fn check_triggers(c: &mut Checker<'_>, value: Option<&Value>) -> Vec<Trigger> {
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
            Trigger::Webhook(w) => ("webhook", w.check()),
            Trigger::Watch(_) | Trigger::Flow(_) => ("", Vec::new()),
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

fn check_retry(c: &mut Checker<'_>, value: &Value, path: &str) -> Option<RetryPolicy> {
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

/// A step's name and `depends` as written, known even when the rest of the step is wrong,
/// so order problems keep the step's real position.
struct Head {
    name: String,
    depends: Option<Vec<String>>,
    on_error_goto: Option<String>,
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

fn check_steps(c: &mut Checker<'_>, value: &Value, path: &str) -> (Vec<Step>, Vec<Head>) {
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
        .filter(|k| !STEP_FIELDS.contains(&k.as_str()) && c.registry.contains(k))
        .cloned()
        .collect();
    for key in map.keys() {
        // A block named like an unknown `type` is reported once, as the unknown kind.
        let is_declared_block = declared.as_deref() == Some(key.as_str());
        if !STEP_FIELDS.contains(&key.as_str()) && !c.registry.contains(key) && !is_declared_block {
            let candidates: Vec<&str> = STEP_FIELDS
                .iter()
                .copied()
                .chain(c.registry.names())
                .collect();
            let message = unknown_field(&format!("step `{label}`"), key, candidates);
            c.problem(join_key(path, key), message);
        }
    }
    match (&declared, kind_keys.as_slice()) {
        (Some(t), _) if !c.registry.contains(t) => {
            let message = match super::suggest(t, c.registry.names()) {
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

/// `finally_step` and every `on_error_goto` name steps of the flow.
fn check_targets(c: &mut Checker<'_>, steps: &[Head], finally_step: Option<&str>) {
    let known = |target: &str| steps.iter().any(|s| s.name == target);
    let unknown = |target: &str| match super::suggest(target, steps.iter().map(|s| s.name.as_str()))
    {
        Some(s) => format!("unknown step `{target}`; did you mean `{s}`?"),
        None => format!("unknown step `{target}`"),
    };
    if let Some(target) = finally_step.filter(|t| !known(t)) {
        c.problem("finally_step", unknown(target));
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(target) = step.on_error_goto.as_deref().filter(|t| !known(t)) {
            c.problem(format!("steps[{i}].on_error_goto"), unknown(target));
        }
    }
}

/// Jumps move through file order, so they cannot be mixed with `depends`.
fn check_jumps_without_depends(c: &mut Checker<'_>, steps: &[Step]) {
    if !steps.iter().any(|s| s.depends.is_some()) {
        return;
    }
    for (i, step) in steps.iter().enumerate() {
        if step.kind == "goto" || step.on_error_goto.is_some() {
            c.problem(
                format!("steps[{i}]"),
                format!(
                    "step `{}` jumps, which a flow that uses `depends` cannot do",
                    step.name
                ),
            );
        }
    }
}

/// `depends` names known steps and the graph has no cycle.
fn check_order(c: &mut Checker<'_>, steps: &[Head]) {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let mut mine = Vec::new();
        match &step.depends {
            None => mine.extend(i.checked_sub(1)),
            Some(names) => {
                for (j, name) in names.iter().enumerate() {
                    let at = format!("steps[{i}].depends[{j}]");
                    match index.get(name.as_str()) {
                        Some(&k) if k == i => {
                            c.problem(at, format!("step `{}` depends on itself", step.name));
                        }
                        Some(&k) => mine.push(k),
                        None => {
                            let hint = super::suggest(name, steps.iter().map(|s| s.name.as_str()))
                                .map(|s| format!("; did you mean `{s}`?"))
                                .unwrap_or_default();
                            let message = format!(
                                "step `{}` depends on unknown step `{name}`{hint}",
                                step.name
                            );
                            c.problem(at, message);
                        }
                    }
                }
            }
        }
        deps.push(mine);
    }
    if let Some(cycle) = find_cycle(&deps) {
        let names: Vec<&str> = cycle.iter().map(|&i| steps[i].name.as_str()).collect();
        let first = cycle[0];
        c.problem(
            format!("steps[{first}].depends"),
            format!("steps form a cycle: {}", names.join(" → ")),
        );
    }
}

/// A dependency cycle as step indexes, first repeated at the end.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; deps.len()];
    let mut stack = Vec::new();
    (0..deps.len()).find_map(|n| {
        if state[n] == 0 {
            visit(n, deps, &mut state, &mut stack)
        } else {
            None
        }
    })
}

/// Depth-first search from `n`; returns a cycle when it meets a node on the stack.
fn visit(
    n: usize,
    deps: &[Vec<usize>],
    state: &mut [u8],
    stack: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    state[n] = 1;
    stack.push(n);
    for &d in &deps[n] {
        if state[d] == 1 {
            let start = stack.iter().position(|&s| s == d).unwrap_or(0);
            let mut cycle: Vec<usize> = stack[start..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Some(cycle);
        }
        if state[d] == 0
            && let Some(c) = visit(d, deps, state, stack)
        {
            return Some(c);
        }
    }
    stack.pop();
    state[n] = 2;
    None
}
