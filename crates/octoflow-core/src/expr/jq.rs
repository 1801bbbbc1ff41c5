//! jq programs (jaq): compiled once when the flow is loaded, run many times.

use std::fmt;

use jaq_core::compile::Undefined;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::{Num, Val};
use serde::Deserialize;
use serde_json::{Number, Value};

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled jq program.
pub struct JqProgram {
    source: String,
    filter: Filter,
}

/// A jq program that failed to compile or to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jq: {message}")]
pub struct JqError {
    /// What went wrong.
    pub message: String,
}

impl fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JqProgram").field(&self.source).finish()
    }
}

impl JqProgram {
    /// Parses and compiles a jq program.
    pub fn compile(source: &str) -> Result<Self, JqError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: source,
                    path: (),
                },
            )
            .map_err(|errs| JqError {
                message: format!("cannot parse `{source}`: {}", describe_load(&errs)),
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| JqError {
                message: format!("cannot compile `{source}`: {}", describe_compile(&errs)),
            })?;
        Ok(Self {
            source: source.to_owned(),
            filter,
        })
    }

    /// The program as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the program; every output value, in order.
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, JqError> {
        let input = Val::deserialize(input).map_err(|e| JqError {
            message: e.to_string(),
        })?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, input))
            .map(unwrap_valr)
            .map(|out| {
                out.map(|v| to_json(&v)).map_err(|e| JqError {
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Runs the program; one output stays itself, several become an array, none is null.
    pub fn run_one(&self, input: &Value) -> Result<Value, JqError> {
        let mut out = self.run(input)?;
        Ok(match out.len() {
            0 => Value::Null,
            1 => out.remove(0),
            _ => Value::Array(out),
        })
    }
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

    #[test]
    fn runs_std_filters() {
        let jq = JqProgram::compile("[.[] | select(.open) | .id] | length").unwrap();
        let input = json!([{"id": 1, "open": true}, {"id": 2, "open": false}]);
        assert_eq!(jq.run_one(&input).unwrap(), json!(1));
    }

    #[test]
    fn several_outputs_become_a_list() {
        let jq = JqProgram::compile(".[] | .a").unwrap();
        assert_eq!(
            jq.run_one(&json!([{"a": "x"}, {"a": 2.5}])).unwrap(),
            json!(["x", 2.5])
        );
    }

    #[test]
    fn keeps_object_order_and_parses_json_text() {
        let jq = JqProgram::compile(".stdout | fromjson").unwrap();
        assert_eq!(
            jq.run_one(&json!({"stdout": "{\"b\":1,\"a\":2}"})).unwrap(),
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
    fn runtime_errors_are_reported() {
        let jq = JqProgram::compile(".a + 1").unwrap();
        assert!(jq.run(&json!({"a": "x"})).is_err());
    }
}
