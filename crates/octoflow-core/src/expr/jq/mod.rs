//! jq programs (jaq): compiled once when the flow is loaded, run many times — both on
//! threads of their own ([`threads`]), and only within [`limits`]; a run whose work is
//! bounded by a small input runs in place instead ([`quick`]).
//!
//! Programs see jaq's builtins, some of them written in Rust here ([`builtins`]).
//!
//! A program sees `$params`, `$run`, `$state`, `$item` and `$index` as variables ([`JqVars`]):
//! what a caller sends reaches a program as data, never as program text.

mod builtins;
mod limits;
mod quick;
mod threads;

use std::fmt;
use std::sync::Arc;

use jaq_core::compile::Undefined;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::{Num, Val};
use serde::Deserialize;
use serde_json::{Number, Value};
use tokio_util::sync::CancellationToken;

use limits::{MAX_NESTING, MAX_TOKENS};

use super::Scope;

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// The variables every program sees, in this order (the scope's names, with `$`).
const VARIABLES: [&str; 5] = ["$params", "$run", "$state", "$item", "$index"];

/// A compiled jq program. Cloning is cheap.
#[derive(Clone)]
pub struct JqProgram {
    source: Arc<str>,
    filter: Arc<Filter>,
    /// Whether its runs on small inputs may run in place ([`quick::is_quick`]).
    quick: bool,
    /// Which of [`VARIABLES`] the program may read (its text names them); the others are
    /// left null rather than copied and converted for every run.
    reads: [bool; 5],
}

/// A jq program that failed to compile or to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jq: {message}")]
pub struct JqError {
    /// What went wrong.
    pub message: String,
}

impl JqError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// The values of a program's variables: `$params`, `$run`, `$state`, `$item`, `$index`
/// (null when the run has none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JqVars {
    values: [Value; 5],
}

impl fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JqProgram").field(&self.source).finish()
    }
}

impl JqProgram {
    /// Checks a program's size (at most 64 levels of nesting and 4,000 tokens), then parses
    /// and compiles it (on a jq thread).
    pub fn compile(source: &str) -> Result<Self, JqError> {
        let shown = excerpt(source);
        match limits::check(source) {
            Ok(()) => {}
            Err(limits::TooLarge::Nesting) => {
                return Err(JqError::new(format!(
                    "`{shown}` nests more than {MAX_NESTING} levels deep"
                )));
            }
            Err(limits::TooLarge::Tokens) => {
                return Err(JqError::new(format!(
                    "`{shown}` has more than {MAX_TOKENS} tokens"
                )));
            }
        }
        let owned = source.to_owned();
        let filter = threads::run_blocking(move || compile_here(&owned))
            .map_err(|_| JqError::new(format!("cannot compile `{shown}`: jaq panicked")))??;
        Ok(Self {
            source: Arc::from(source),
            filter: Arc::new(filter),
            quick: quick::is_quick(source),
            reads: VARIABLES.map(|var| source.contains(var)),
        })
    }

    /// The program's variables in a step's scope: its run's `params`, `run` and `state`, and
    /// `item` and `index` inside a loop; null for those the program does not read.
    pub fn vars(&self, scope: &Scope) -> JqVars {
        let mut values = VARIABLES.map(|_| Value::Null);
        for ((value, var), read) in values.iter_mut().zip(VARIABLES).zip(self.reads) {
            if let Some(found) = scope.name(var.trim_start_matches('$')).filter(|_| read) {
                value.clone_from(found);
            }
        }
        JqVars { values }
    }

    /// The program as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the program on a jq thread, or in place when it is quick on this input (a short
    /// program of bounded work on a small input); every output value, in order. A cancel of
    /// `cancel` (the step's timeout or its run's cancel) ends the wait at once.
    pub async fn eval(
        &self,
        input: &Value,
        vars: JqVars,
        cancel: &CancellationToken,
    ) -> Result<Vec<Value>, JqError> {
        let panicked = || JqError::new(format!("`{}` panicked", excerpt(&self.source)));
        if self.quick && quick::is_small(std::iter::once(input).chain(&vars.values)) {
            let run = std::panic::AssertUnwindSafe(|| self.run_here(input, &vars));
            return std::panic::catch_unwind(run).map_err(|_| panicked())?;
        }
        let (program, input) = (self.clone(), input.clone());
        let job = threads::run(move || program.run_here(&input, &vars));
        tokio::select! {
            answer = job => answer.map_err(|_| panicked())?,
            () = cancel.cancelled() => Err(JqError::new("stopped: the step was cancelled or timed out")),
        }
    }

    /// Runs the program as [`eval`](Self::eval) does; one output stays itself, several
    /// become an array, none is null.
    pub async fn eval_one(
        &self,
        input: &Value,
        vars: JqVars,
        cancel: &CancellationToken,
    ) -> Result<Value, JqError> {
        let mut out = self.eval(input, vars, cancel).await?;
        Ok(match out.len() {
            0 => Value::Null,
            1 => out.remove(0),
            _ => Value::Array(out),
        })
    }

    /// Runs the program on the calling thread, which must have a jq thread's stack unless
    /// the run is quick.
    fn run_here(&self, input: &Value, vars: &JqVars) -> Result<Vec<Value>, JqError> {
        let input = Val::deserialize(input).map_err(|e| JqError::new(e.to_string()))?;
        let mut values = Vec::with_capacity(VARIABLES.len());
        for value in &vars.values {
            values.push(Val::deserialize(value).map_err(|e| JqError::new(e.to_string()))?);
        }
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new(values));
        self.filter
            .id
            .run((ctx, input))
            .map(unwrap_valr)
            .map(|out| {
                out.map(|v| to_json(&v))
                    .map_err(|e| JqError::new(e.to_string()))
            })
            .collect()
    }
}

/// Parses and compiles on the calling thread, which must have a jq thread's stack.
fn compile_here(source: &str) -> Result<Filter, JqError> {
    let loader = Loader::new(builtins::defs());
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: source,
                path: (),
            },
        )
        .map_err(|errs| {
            JqError::new(format!("cannot parse `{source}`: {}", describe_load(&errs)))
        })?;
    Compiler::default()
        .with_funs(builtins::funs())
        .with_global_vars(VARIABLES)
        .compile(modules)
        .map_err(|errs| {
            JqError::new(format!(
                "cannot compile `{source}`: {}",
                describe_compile(&errs)
            ))
        })
}

/// The start of a long program, for messages.
fn excerpt(source: &str) -> String {
    const SHOWN: usize = 60;
    if source.chars().count() <= SHOWN {
        return source.to_owned();
    }
    let mut text: String = source.chars().take(SHOWN).collect();
    text.push('…');
    text
}

/// The text near an error: the start of what the parser found, or "end of input".
fn near(found: &str) -> String {
    let text: String = found.chars().take(20).collect();
    if text.trim().is_empty() {
        "end of input".to_owned()
    } else {
        format!("`{}`", text.trim())
    }
}

fn describe_load(errs: &[(File<&str, ()>, load::Error<&str>)]) -> String {
    let mut out = Vec::new();
    for (_, err) in errs {
        match err {
            load::Error::Io(items) => {
                out.extend(
                    items
                        .iter()
                        .map(|(name, msg)| format!("cannot load `{name}`: {msg}")),
                );
            }
            load::Error::Lex(items) => out.extend(items.iter().map(|(expect, found)| {
                format!("expected {} near {}", expect.as_str(), near(found))
            })),
            load::Error::Parse(items) => out.extend(items.iter().map(|(expect, found)| {
                format!("expected {} near {}", expect.as_str(), near(found))
            })),
        }
    }
    out.join("; ")
}

fn describe_compile(errs: &jaq_core::compile::Errors<&str, ()>) -> String {
    let mut out = Vec::new();
    for (_, items) in errs {
        for (name, what) in items {
            out.push(match what {
                Undefined::Var => format!("undefined variable `${name}`"),
                Undefined::Filter(arity) => format!("undefined filter `{name}/{arity}`"),
                Undefined::Mod => format!("undefined module `{name}`"),
                Undefined::Label => format!("undefined label `{name}`"),
                _ => format!("undefined `{name}`"),
            });
        }
    }
    out.join("; ")
}

/// Converts a jq value back to JSON.
fn to_json(val: &Val) -> Value {
    match val {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::BStr(b) | Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::Number(Number::from(*i as i64)),
        Num::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Num::BigInt(_) | Num::Dec(_) => {
            let text = n.to_string();
            serde_json::from_str::<Number>(&text).map_or(Value::String(text), Value::Number)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run_one(jq: &JqProgram, input: &Value) -> Result<Value, JqError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(jq.eval_one(input, JqVars::default(), &CancellationToken::new()))
    }

    #[test]
    fn runs_std_filters() {
        let jq = JqProgram::compile("[.[] | select(.open) | .id] | length").unwrap();
        let input = json!([{"id": 1, "open": true}, {"id": 2, "open": false}]);
        assert_eq!(run_one(&jq, &input).unwrap(), json!(1));
    }

    #[test]
    fn several_outputs_become_a_list() {
        let jq = JqProgram::compile(".[] | .a").unwrap();
        assert_eq!(
            run_one(&jq, &json!([{"a": "x"}, {"a": 2.5}])).unwrap(),
            json!(["x", 2.5])
        );
    }

    #[test]
    fn keeps_object_order_and_parses_json_text() {
        let jq = JqProgram::compile(".stdout | fromjson").unwrap();
        assert_eq!(
            run_one(&jq, &json!({"stdout": "{\"b\":1,\"a\":2}"})).unwrap(),
            json!({"b": 1, "a": 2})
        );
    }

    #[test]
    fn bad_programs_fail_to_compile() {
        let err = JqProgram::compile(".[ | ").unwrap_err().to_string();
        assert!(
            err.starts_with("jq: cannot parse `.[ | `: expected "),
            "{err}"
        );
        assert!(!err.contains("File {"), "{err}");
        let err = JqProgram::compile("nosuchfn(1)").unwrap_err().to_string();
        assert_eq!(
            err,
            "jq: cannot compile `nosuchfn(1)`: undefined filter `nosuchfn/1`"
        );
    }

    #[test]
    fn oversized_programs_are_refused_before_parsing() {
        let err = JqProgram::compile(&"(".repeat(20_000))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("jq: `{}…` nests more than 64 levels deep", "(".repeat(60))
        );
        let err = JqProgram::compile(&". | ".repeat(5_000))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("has more than 4000 tokens"), "{err}");
    }

    #[test]
    fn the_largest_programs_allowed_compile_and_run() {
        // As deep and as long as allowed: jq threads have the stack for it.
        let deep = format!("{}.{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        let jq = JqProgram::compile(&deep).unwrap();
        assert!(run_one(&jq, &json!(1)).is_ok());
        let long = format!("{}.", "1 + ".repeat(MAX_TOKENS / 2 - 1));
        let jq = JqProgram::compile(&long).unwrap();
        assert!(run_one(&jq, &json!(1)).is_ok());
    }

    #[test]
    fn variables_come_from_the_scope() {
        let scope = Scope::builder()
            .name("params", json!({"env": "prd"}))
            .name("run", json!({"id": "r1"}))
            .build();
        let jq = JqProgram::compile("[$params.env, $run.id, $state, $item, $index]").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = runtime
            .block_on(jq.eval_one(&Value::Null, jq.vars(&scope), &CancellationToken::new()))
            .unwrap();
        assert_eq!(out, json!(["prd", "r1", null, null, null]));
        // A variable the program does not name is not copied for it.
        let params_only = JqProgram::compile("$params.env").unwrap();
        assert_eq!(params_only.vars(&scope).values[1], Value::Null);
    }

    #[test]
    fn runtime_errors_are_reported() {
        let jq = JqProgram::compile(".a + 1").unwrap();
        assert!(run_one(&jq, &json!({"a": "x"})).is_err());
    }

    #[tokio::test]
    async fn an_endless_program_stops_waiting_on_cancel() {
        let jq = JqProgram::compile("last(repeat(1))").unwrap();
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            stopper.cancel();
        });
        let err = jq
            .eval(&Value::Null, JqVars::default(), &cancel)
            .await
            .unwrap_err();
        assert!(err.message.starts_with("stopped"), "{err}");
    }
}
