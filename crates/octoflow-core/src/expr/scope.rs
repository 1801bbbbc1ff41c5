//! The names a template or expression can see: `data` keys at the top level, plus the
//! reserved names `params`, `data`, `state`, `secrets`, `env`, `run`, `item`, `index`, `error`.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object};
use serde_json::{Map, Value};

/// Names that a `result_key` may not take, because the context gives them another meaning.
pub const RESERVED_NAMES: &[&str] = &[
    "params", "data", "state", "secrets", "env", "run", "item", "index", "error",
];

/// A read-only view of a run's context for one render. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Arc<Map<String, Value>>,
    names: Arc<BTreeMap<String, Value>>,
}

impl Scope {
    /// Starts a scope.
    pub fn builder() -> ScopeBuilder {
        ScopeBuilder::default()
    }

    /// The whole `data` map.
    pub fn data(&self) -> &Map<String, Value> {
        &self.inner.data
    }

    /// A reserved name's value (`params`, `run`, `item`, …).
    pub fn name(&self, name: &str) -> Option<&Value> {
        self.inner.names.get(name)
    }

    /// Looks a name up as a template would: reserved names first, then `data` keys.
    pub fn lookup(&self, name: &str) -> Option<Value> {
        if name == "data" {
            return Some(Value::Object((*self.inner.data).clone()));
        }
        self.inner
            .names
            .get(name)
            .or_else(|| self.inner.data.get(name))
            .cloned()
    }

    /// The whole context as one JSON object (for a `jinja` step without `data_key`).
    pub fn to_json(&self) -> Value {
        let mut all = (*self.inner.data).clone();
        all.insert("data".to_owned(), Value::Object((*self.inner.data).clone()));
        for (k, v) in self.inner.names.iter() {
            all.insert(k.clone(), v.clone());
        }
        Value::Object(all)
    }

    /// A copy of this scope with one more name (for `item`, `index`, `error`).
    #[must_use]
    pub fn with_name(&self, name: &str, value: Value) -> Scope {
        let mut names = self.inner.names.clone();
        Arc::make_mut(&mut names).insert(name.to_owned(), value);
        Scope {
            inner: Arc::new(Inner {
                data: self.inner.data.clone(),
                names,
            }),
        }
    }

    pub(crate) fn to_value(&self) -> minijinja::Value {
        minijinja::Value::from_dyn_object(self.inner.clone())
    }
}

impl Object for Inner {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let key = key.as_str()?;
        if key == "data" {
            return Some(minijinja::Value::from_object(DataMap(self.data.clone())));
        }
        if key == "env"
            && let Some(Value::Object(vars)) = self.names.get("env")
        {
            return Some(minijinja::Value::from_object(EnvVars(vars.clone())));
        }
        self.names
            .get(key)
            .or_else(|| self.data.get(key))
            .map(|v| minijinja::Value::from(minijinja::value::Serde(v)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<minijinja::Value> = self
            .names
            .keys()
            .map(|k| minijinja::Value::from(k.as_str()))
            .collect();
        keys.push(minijinja::Value::from("data"));
        keys.extend(self.data.keys().map(|k| minijinja::Value::from(k.as_str())));
        Enumerator::Values(keys)
    }
}

/// `data`: its values are converted for the template one by one, as it reads them (a run's
/// data holds the whole posted input, most of which a template never reads).
#[derive(Debug)]
struct DataMap(Arc<Map<String, Value>>);

impl Object for DataMap {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        lazy_value(&self.0, key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        lazy_keys(&self.0)
    }
}

/// A value of `map` for a template, converted only now.
fn lazy_value(map: &Map<String, Value>, key: &minijinja::Value) -> Option<minijinja::Value> {
    map.get(key.as_str()?)
        .map(|v| minijinja::Value::from(minijinja::value::Serde(v)))
}

/// The keys of `map`, for a template.
fn lazy_keys(map: &Map<String, Value>) -> Enumerator {
    Enumerator::Values(
        map.keys()
            .map(|k| minijinja::Value::from(k.as_str()))
            .collect(),
    )
}

/// `env`: readable as a map (`env.HOME`) and callable as a function (`env("HOME")`).
#[derive(Debug)]
struct EnvVars(Map<String, Value>);

impl Object for EnvVars {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        lazy_value(&self.0, key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        lazy_keys(&self.0)
    }

    fn call(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        args: &[minijinja::Value],
    ) -> Result<minijinja::Value, minijinja::Error> {
        let (name,): (&str,) = minijinja::value::from_args(args)?;
        self.0
            .get(name)
            .map(|v| minijinja::Value::from(minijinja::value::Serde(v)))
            .ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::UndefinedError,
                    format!("environment variable `{name}` is not set"),
                )
            })
    }
}

/// Builds a [`Scope`].
#[derive(Debug, Default)]
pub struct ScopeBuilder {
    data: Arc<Map<String, Value>>,
    names: Arc<BTreeMap<String, Value>>,
}

impl ScopeBuilder {
    /// The run's `data`; a non-object value gives an empty map.
    #[must_use]
    pub fn data(mut self, data: Value) -> Self {
        self.data = Arc::new(match data {
            Value::Object(map) => map,
            _ => Map::new(),
        });
        self
    }

    /// The run's `data`, shared without copying.
    #[must_use]
    pub fn shared_data(mut self, data: Arc<Map<String, Value>>) -> Self {
        self.data = data;
        self
    }

    /// The reserved names, shared without copying (a run's names, for each of its steps).
    #[must_use]
    pub fn shared_names(mut self, names: Arc<BTreeMap<String, Value>>) -> Self {
        self.names = names;
        self
    }

    /// A reserved name.
    #[must_use]
    pub fn name(mut self, name: &str, value: Value) -> Self {
        Arc::make_mut(&mut self.names).insert(name.to_owned(), value);
        self
    }

    /// The finished scope.
    pub fn build(self) -> Scope {
        Scope {
            inner: Arc::new(Inner {
                data: self.data,
                names: self.names,
            }),
        }
    }
}
