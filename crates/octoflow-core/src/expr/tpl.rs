//! `Tpl<T>`: a templated setting. Its shape and template syntax are checked when the flow is
//! loaded; its value exists only after rendering against a scope, so no kind can use the raw
//! text by mistake.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::compiled::Compiled;
use super::env::{check_template, is_template};
use super::scope::Scope;

/// A setting whose strings are templates, rendered to a `T` at run time.
#[derive(Clone)]
pub struct Tpl<T> {
    raw: Value,
    form: Form<T>,
}

/// What a setting is once loaded.
#[derive(Clone)]
enum Form<T> {
    /// It holds no template: its value, checked at load.
    Literal(T),
    /// Its templates, compiled once; its type is checked when rendered.
    Templated(Arc<Compiled>, PhantomData<fn() -> T>),
}

/// Why a template could not be rendered into its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TplError {
    /// A template inside the setting failed.
    #[error("{}{message}", path_prefix(.path))]
    Render {
        /// Where inside the setting (`[2]`, `.key`), empty for the setting itself.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The rendered value has the wrong shape for the setting.
    #[error("rendered value does not fit: {message}")]
    Shape {
        /// The type error.
        message: String,
    },
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("at `{path}`: ")
    }
}

impl<T: DeserializeOwned + Clone> Tpl<T> {
    /// Builds a template from a JSON tree, checking every template's syntax, and the shape
    /// right away when the tree holds no template at all.
    pub fn from_value(raw: Value) -> Result<Self, String> {
        let mut templated = false;
        check_tree(&raw, &mut templated)?;
        let form = if templated {
            Form::Templated(Arc::new(Compiled::new(&raw)), PhantomData)
        } else {
            Form::Literal(serde_json::from_value::<T>(raw.clone()).map_err(|e| e.to_string())?)
        };
        Ok(Self { raw, form })
    }

    /// A setting with a fixed value (for defaults in code).
    pub fn literal(value: T) -> Self
    where
        T: Serialize,
    {
        let raw = serde_json::to_value(&value).unwrap_or(Value::Null);
        Self {
            raw,
            form: Form::Literal(value),
        }
    }

    /// Renders against `scope` and converts to `T`.
    pub fn render(&self, scope: &Scope) -> Result<T, TplError> {
        let compiled = match &self.form {
            Form::Literal(value) => return Ok(value.clone()),
            Form::Templated(compiled, _) => compiled,
        };
        let value = compiled
            .render(scope)
            .map_err(|(path, e)| TplError::Render {
                path,
                message: e.message,
            })?;
        serde_json::from_value(value).map_err(|e| TplError::Shape {
            message: e.to_string(),
        })
    }

    /// Whether the value depends on the run (holds at least one template).
    pub fn is_templated(&self) -> bool {
        matches!(self.form, Form::Templated(..))
    }

    /// The value when it holds no template.
    pub fn as_literal(&self) -> Option<&T> {
        match &self.form {
            Form::Literal(value) => Some(value),
            Form::Templated(..) => None,
        }
    }

    /// Whether any template inside reads the top-level name `name` (`run`, `params`, a
    /// `data` key …), so a caller can leave out of the scope what no template reads.
    pub fn reads(&self, name: &str) -> bool {
        match &self.form {
            Form::Literal(_) => false,
            Form::Templated(compiled, _) => compiled.reads(name),
        }
    }
}

fn check_tree(value: &Value, templated: &mut bool) -> Result<(), String> {
    match value {
        Value::String(s) if is_template(s) => {
            *templated = true;
            check_template(s).map_err(|e| e.message)
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_tree(v, templated)),
        Value::Object(map) => map.values().try_for_each(|v| check_tree(v, templated)),
        _ => Ok(()),
    }
}

impl<'de, T: DeserializeOwned + Clone> Deserialize<'de> for Tpl<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        Tpl::from_value(raw).map_err(serde::de::Error::custom)
    }
}

/// A templated field takes its type's values, or text holding a template (`{{ … }}`,
/// `{% … %}`) that renders to one when the step runs.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Tpl<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Templated_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let literal = generator.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [literal, {"type": "string", "pattern": "\\{[{%#]"}]
        })
    }
}

impl<T> Serialize for Tpl<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<T> fmt::Debug for Tpl<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tpl({})", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::flow::Dur;

    #[test]
    fn literal_shape_is_checked_at_load() {
        let err = Tpl::<Dur>::from_value(json!("10 minutes")).unwrap_err();
        assert!(err.contains("invalid duration `10 minutes`"), "{err}");
        assert!(Tpl::<Dur>::from_value(json!("{{ t }}")).is_ok());
    }

    #[test]
    fn renders_nested_templates() {
        let scope = Scope::builder()
            .data(json!({"cmd": "ls", "t": "5s"}))
            .build();
        let tpl = Tpl::<Vec<String>>::from_value(json!(["sh", "-c", "{{ cmd }} -l"])).unwrap();
        assert_eq!(tpl.render(&scope).unwrap(), vec!["sh", "-c", "ls -l"]);
        let dur = Tpl::<Dur>::from_value(json!("{{ t }}")).unwrap();
        assert_eq!(dur.render(&scope).unwrap().get(), Duration::from_secs(5));
    }

    #[test]
    fn syntax_errors_are_load_errors() {
        assert!(Tpl::<String>::from_value(json!("{{ a ")).is_err());
    }
}
