//! A setting's template tree compiled once, when the flow is loaded: every string that is one
//! whole `{{ … }}` keeps its compiled expression, so rendering it for each run only
//! evaluates it. Other template text is rendered from its source, as
//! [`render_value`](super::render_value) does; both render to the same values and errors.

use std::sync::Arc;

use serde_json::Value;

use super::env::{Expr, ExprError, is_template, render_str, whole_expression};
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::expr::render_value;

    /// A compiled tree renders what rendering its source renders, errors included.
    #[test]
    fn renders_as_its_source_does() {
        let scope = Scope::builder()
            .data(json!({"n": 3, "items": ["a", "b"], "name": "x"}))
            .name("params", json!({"env": "qas"}))
            .build();
        let trees = [
            json!("{{ n }}"),
            json!("{{- items -}}"),
            json!("n={{ n }} in {{ params.env }}"),
            json!({"a": ["{{ name | upper }}", 1, null, "plain"], "b": {"c": "{% if n > 2 %}big{% endif %}"}}),
            json!({"a": [0, {"b": "{{ missing.x }}"}]}),
            json!("{{ params.nope }}"),
            json!(["{{ n / 0 }}"]),
        ];
        for raw in trees {
            assert_eq!(
                Compiled::new(&raw).render(&scope),
                render_value(&raw, &scope),
                "{raw}"
            );
        }
    }
}
