//! Declared inputs of a flow, and the check of given values against them.

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Text.
    #[default]
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A map.
    Object,
    /// A file uploaded to a webhook: the path where it was saved in the run's workspace. A
    /// webhook fills it only from a file part of a multipart body, never from a field, the
    /// query or JSON; elsewhere (the API, `octoflow run`) it is a path, which file steps
    /// confine as any other.
    File,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Array => "array",
            Self::Object => "object",
            Self::File => "file",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::String | Self::File => value.is_string(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Number => value.is_number(),
            Self::Boolean => value.is_boolean(),
            Self::Array => value.is_array(),
            Self::Object => value.is_object(),
        }
    }

    /// Reads a command-line or query-string value as this type.
    fn coerce(self, text: &str) -> Option<Value> {
        match self {
            Self::String | Self::File => Some(Value::String(text.to_owned())),
            Self::Integer => text.trim().parse::<i64>().ok().map(Value::from),
            Self::Number => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)),
            Self::Boolean => match text.trim() {
                "true" | "yes" | "1" => Some(Value::Bool(true)),
                "false" | "no" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
            Self::Array | Self::Object => serde_json::from_str::<Value>(text)
                .ok()
                .filter(|v| self.accepts(v)),
        }
    }
}

/// One declared param, as written in the flow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Its type (default `string`).
    #[serde(rename = "type", default)]
    pub kind: ParamType,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The allowed values.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// The value when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether a value must be given (when there is no default).
    #[serde(default)]
    pub required: bool,
    /// Lower bound for numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Upper bound for numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// A regex that strings must match (whole string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A param value that does not fit its declaration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("param `{name}`: {message}")]
pub struct ParamError {
    /// The param.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// The declared params of a flow, in file order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    specs: Vec<(String, ParamSpec, Option<Regex>)>,
}

impl Params {
    /// Checks the declarations themselves; problems are `(param name, message)`.
    pub fn from_specs(specs: Vec<(String, ParamSpec)>) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut out = Vec::new();
        for (name, spec) in specs {
            let regex = match spec
                .pattern
                .as_deref()
                .map(|p| Regex::new(&format!("^(?:{p})$")))
            {
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    problems.push((format!("{name}.pattern"), format!("invalid regex: {e}")));
                    None
                }
                None => None,
            };
            let entry = (name, spec, regex);
            if let Some(default) = &entry.1.default
                && let Err(message) = check_value(&entry.1, entry.2.as_ref(), default)
            {
                problems.push((format!("{}.default", entry.0), message));
            }
            for allowed in entry.1.allowed.iter().flatten() {
                if !entry.1.kind.accepts(allowed) {
                    problems.push((
                        format!("{}.enum", entry.0),
                        format!("`{allowed}` is not of type {}", entry.1.kind.name()),
                    ));
                }
            }
            out.push(entry);
        }
        if problems.is_empty() {
            Ok(Self { specs: out })
        } else {
            Err(problems)
        }
    }

    /// Whether no param is declared.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The declarations, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamSpec)> {
        self.specs.iter().map(|(n, s, _)| (n.as_str(), s))
    }

    /// Whether `name` is declared.
    pub fn declares(&self, name: &str) -> bool {
        self.specs.iter().any(|(n, ..)| n == name)
    }

    /// Whether `name` is declared `type: file` (a webhook fills it only from an upload).
    pub fn is_file(&self, name: &str) -> bool {
        self.specs
            .iter()
            .any(|(n, spec, _)| n == name && spec.kind == ParamType::File)
    }

    /// Declares an optional string param that a trigger fills in (a watch's `file`), unless
    /// the flow declares it itself.
    pub(crate) fn add_implicit(&mut self, name: &str, description: &str) {
        if self.declares(name) {
            return;
        }
        let spec = ParamSpec {
            kind: ParamType::String,
            description: Some(description.to_owned()),
            allowed: None,
            default: None,
            required: false,
            minimum: None,
            maximum: None,
            pattern: None,
        };
        self.specs.push((name.to_owned(), spec, None));
    }

    /// Reads text values (`-p key=value`, query strings) by their declared types; an
    /// undeclared name is an error.
    pub fn coerce_text(
        &self,
        given: &[(String, String)],
    ) -> Result<Map<String, Value>, Vec<ParamError>> {
        let mut out = Map::new();
        let mut errors = Vec::new();
        for (name, text) in given {
            match self.specs.iter().find(|(n, ..)| n == name) {
                None => errors.push(self.undeclared(name)),
                Some((_, spec, _)) => match spec.kind.coerce(text) {
                    Some(v) => {
                        out.insert(name.clone(), v);
                    }
                    None => errors.push(ParamError {
                        name: name.clone(),
                        message: format!("`{text}` is not a valid {}", spec.kind.name()),
                    }),
                },
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Checks given values, fills in defaults and reports every problem.
    pub fn validate(
        &self,
        given: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Vec<ParamError>> {
        let mut errors: Vec<ParamError> = given
            .keys()
            .filter(|k| !self.declares(k))
            .map(|k| self.undeclared(k))
            .collect();
        let mut out = Map::new();
        for (name, spec, regex) in &self.specs {
            match given.get(name).or(spec.default.as_ref()) {
                Some(value) => match check_value(spec, regex.as_ref(), value) {
                    Ok(()) => {
                        out.insert(name.clone(), value.clone());
                    }
                    Err(message) => errors.push(ParamError {
                        name: name.clone(),
                        message,
                    }),
                },
                None if spec.required => errors.push(ParamError {
                    name: name.clone(),
                    message: "is required".to_owned(),
                }),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn undeclared(&self, name: &str) -> ParamError {
        let names: Vec<&str> = self.specs.iter().map(|(n, ..)| n.as_str()).collect();
        let message = match super::suggest(name, names.iter().copied()) {
            Some(s) => format!("is not declared by the flow; did you mean `{s}`?"),
            None if names.is_empty() => {
                "is not declared by the flow (it declares no params)".to_owned()
            }
            None => format!(
                "is not declared by the flow (declared: {})",
                names.join(", ")
            ),
        };
        ParamError {
            name: name.to_owned(),
            message,
        }
    }
}

fn check_value(spec: &ParamSpec, regex: Option<&Regex>, value: &Value) -> Result<(), String> {
    if !spec.kind.accepts(value) {
        return Err(format!("`{value}` is not of type {}", spec.kind.name()));
    }
    if let Some(allowed) = &spec.allowed
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        return Err(format!("`{value}` is not one of {}", list.join(", ")));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = spec.minimum.filter(|min| n < *min) {
            return Err(format!("{n} is less than the minimum {min}"));
        }
        if let Some(max) = spec.maximum.filter(|max| n > *max) {
            return Err(format!("{n} is more than the maximum {max}"));
        }
    }
    if let (Some(regex), Some(text)) = (regex, value.as_str())
        && !regex.is_match(text)
    {
        return Err(format!(
            "`{text}` does not match the pattern `{}`",
            spec.pattern.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params() -> Params {
        let specs: Vec<(String, ParamSpec)> = serde_json::from_value::<Map<String, Value>>(json!({
            "project": {"type": "string", "enum": ["avo", "cp"], "required": true},
            "batch": {"type": "integer", "default": 1000, "minimum": 1},
            "tag": {"pattern": "v[0-9]+"},
        }))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_value(v).unwrap()))
        .collect();
        Params::from_specs(specs).unwrap()
    }

    #[test]
    fn fills_defaults_and_checks_values() {
        let p = params();
        let out = p
            .validate(json!({"project": "avo"}).as_object().unwrap())
            .unwrap();
        assert_eq!(Value::Object(out), json!({"project": "avo", "batch": 1000}));
        let errs = p
            .validate(
                json!({"batch": 0, "tag": "x", "projekt": 1})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "param `projekt`: is not declared by the flow; did you mean `project`?",
                "param `project`: is required",
                "param `batch`: 0 is less than the minimum 1",
                "param `tag`: `x` does not match the pattern `v[0-9]+`",
            ]
        );
    }

    #[test]
    fn coerces_text_by_type() {
        let p = params();
        let given = vec![
            ("batch".to_owned(), "50".to_owned()),
            ("project".to_owned(), "cp".to_owned()),
        ];
        assert_eq!(
            Value::Object(p.coerce_text(&given).unwrap()),
            json!({"batch": 50, "project": "cp"})
        );
        assert!(
            p.coerce_text(&[("batch".to_owned(), "x".to_owned())])
                .is_err()
        );
    }
}
