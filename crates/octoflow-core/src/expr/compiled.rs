//! A JSON tree whose strings are templates, compiled: every string that is one whole
//! `{{ … }}` keeps its compiled expression (and the value's JSON type when rendered); other
//! template text renders to text from its source. A setting ([`Tpl`](super::Tpl)) compiles
//! its tree once, when the flow is loaded, so each run only evaluates it.

use std::sync::Arc;

use serde_json::Value;

use std::collections::HashSet;

use super::env::{Expr, ExprError, is_template, names_read, render_str, whole_expression};
use super::scope::Scope;

/// A JSON tree with its templates compiled.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    /// No template inside: the value itself.
    Plain(Value),
    /// A string that is one whole `{{ … }}`: renders to the expression's value, of any type.
    Whole(Arc<Expr>),
    /// Any other string holding template syntax: renders to text.
    Text(String),
    List(Vec<Compiled>),
    Map(Vec<(String, Compiled)>),
}

impl Compiled {
    /// Compiles every whole expression in `raw` (whose syntax has been checked).
    pub(crate) fn new(raw: &Value) -> Self {
        match raw {
            Value::String(s) if is_template(s) => whole_expression(s)
                .and_then(|inner| Expr::parse(inner).ok())
                .map_or_else(|| Self::Text(s.clone()), |expr| Self::Whole(Arc::new(expr))),
            Value::Array(items) => Self::List(items.iter().map(Self::new).collect()),
            Value::Object(map) => {
                Self::Map(map.iter().map(|(k, v)| (k.clone(), Self::new(v))).collect())
            }
            other => Self::Plain(other.clone()),
        }
    }

    /// Whether any template inside reads the top-level name `name`.
    pub(crate) fn reads(&self, name: &str) -> bool {
        let read = |names: HashSet<String>| names.contains(name);
        match self {
            Self::Plain(_) => false,
            Self::Whole(expr) => read(expr.names_read()),
            Self::Text(source) => read(names_read(source)),
            Self::List(items) => items.iter().any(|v| v.reads(name)),
            Self::Map(fields) => fields.iter().any(|(_, v)| v.reads(name)),
        }
    }

    /// Renders against `scope`; an error names its path inside the tree (`[2]`, `.key`).
    pub(crate) fn render(&self, scope: &Scope) -> Result<Value, (String, ExprError)> {
        match self {
            Self::Plain(value) => Ok(value.clone()),
            Self::Whole(expr) => expr.eval(scope).map_err(|e| (String::new(), e)),
            Self::Text(source) => render_str(source, scope)
                .map(Value::String)
                .map_err(|e| (String::new(), e)),
            Self::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| v.render(scope).map_err(|(p, e)| (format!("[{i}]{p}"), e)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Self::Map(fields) => fields
                .iter()
                .map(|(k, v)| {
                    v.render(scope)
                        .map(|v| (k.clone(), v))
                        .map_err(|(p, e)| (format!(".{k}{p}"), e))
                })
                .collect::<Result<serde_json::Map<_, _>, _>>()
                .map(Value::Object),
        }
    }
}

/// Renders every string inside a JSON tree, compiling its templates for this one render;
/// errors name the path inside the tree.
pub fn render_value(value: &Value, scope: &Scope) -> Result<Value, (String, ExprError)> {
    Compiled::new(value).render(scope)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope() -> Scope {
        Scope::builder()
            .data(json!({"count": 3, "items": ["a", "b"], "name": "world"}))
            .name("params", json!({"env": "qas"}))
            .build()
    }

    fn render(raw: &Value) -> Result<Value, (String, ExprError)> {
        Compiled::new(raw).render(&scope())
    }

    #[test]
    fn whole_expression_keeps_the_type() {
        assert_eq!(render(&json!("{{ count }}")).unwrap(), json!(3));
        assert_eq!(render(&json!("{{- items -}}")).unwrap(), json!(["a", "b"]));
        assert_eq!(render(&json!("n={{ count }}")).unwrap(), json!("n=3"));
        assert_eq!(render(&json!("plain")).unwrap(), json!("plain"));
        assert_eq!(
            render(&json!({"a": ["{{ name | upper }}", 1, null], "b": "{% if count > 2 %}big{% endif %}"})).unwrap(),
            json!({"a": ["WORLD", 1, null], "b": "big"})
        );
    }

    #[test]
    fn strict_undefined_is_an_error_named_by_its_path() {
        let (path, err) = render(&json!("{{ missing }}")).unwrap_err();
        assert_eq!(
            (path.as_str(), err.message.as_str()),
            ("", "`missing` is undefined")
        );
        let (path, err) = render(&json!({"a": [0, "a {{ params.nope.x }} b"]})).unwrap_err();
        assert_eq!(path, ".a[1]");
        assert!(err.message.contains("`params.nope"), "{err}");
    }

    #[test]
    fn knows_the_names_its_templates_read() {
        let tree =
            Compiled::new(&json!({"a": "{{ data.x }}", "b": ["{% if run.id %}y{% endif %}"]}));
        assert!(tree.reads("run") && tree.reads("data"));
        assert!(
            !tree.reads("params") && !tree.reads("id"),
            "only top-level names"
        );
        assert!(!Compiled::new(&json!({"run": "run"})).reads("run"));
    }
}
